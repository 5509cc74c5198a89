//! Low-Latency HLS (draft-pantos-hls-rfc8216bis) decisions for the egress path (`egress::hls`
//! tap -> here -> `HlsStore` and the HTTP handlers): the A/V clock, the segmenter cutting
//! parts and segments, the playlist writer, resource names and the blocking-reload rules.
//! Pure: no I/O, time passed in.

pub mod av_sync;
mod blocking;
mod clock;
mod names;
mod playlist;
mod segmenter;

pub use blocking::{
    Decision, Directives, PartDecision, PlaylistPosition, Skip, advance_part_limit, decide,
    decide_part, parse_directives,
};
pub use clock::{SourceClock, SyncChange};
pub use names::Resource;
pub use playlist::{
    MediaPlaylist, Multivariant, PartEntry, RenditionReport, SegmentEntry, format_pdt, with_query,
};
pub use segmenter::{PartOut, Segmenter, SegmenterEvent, SegmenterStats};

use std::time::Duration;

/// One of the two media playlists of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rendition {
    /// H.264, the variant stream.
    Video,
    /// Opus, an `EXT-X-MEDIA` audio rendition.
    Audio,
}

impl Rendition {
    /// The name used in URIs (`video.m3u8`, `video-...m4s`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rendition::Video => "video",
            Rendition::Audio => "audio",
        }
    }

    /// The other rendition (for `EXT-X-RENDITION-REPORT`).
    pub fn other(self) -> Self {
        match self {
            Rendition::Video => Rendition::Audio,
            Rendition::Audio => Rendition::Video,
        }
    }
}

/// The timing rules of the stream; every playlist of a room uses the same values
/// (RFC 8216bis §6.2.4: one Target Duration and one `EXT-X-SERVER-CONTROL` for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsTiming {
    /// `PART-TARGET`: every part lasts at most this, and at least 85 % of it unless it is
    /// independent or the last of its segment (§4.4.4.9).
    pub part_target: Duration,
    /// Segments are cut at the first IDR after this much media.
    pub segment_target: Duration,
    /// `EXT-X-TARGETDURATION` in seconds: no segment rounds above it (§4.4.3.1).
    pub target_duration: u64,
    /// Segments listed in a playlist (a sliding window).
    pub window_segments: usize,
}

impl Default for HlsTiming {
    /// 220 ms parts (~200 ms at every common frame rate, with room for timestamp jitter), 2 s
    /// segments, `TARGETDURATION:2`, a 20-segment window (~40 s).
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(220),
            segment_target: Duration::from_secs(2),
            target_duration: 2,
            window_segments: 20,
        }
    }
}

impl HlsTiming {
    /// `PART-HOLD-BACK`: three part targets (§4.4.3.8 says at least three is recommended).
    pub fn part_hold_back(&self) -> f64 {
        3.0 * self.part_target.as_secs_f64()
    }

    /// `CAN-SKIP-UNTIL`: six target durations, the minimum §4.4.3.8 allows.
    pub fn can_skip_until(&self) -> f64 {
        6.0 * self.target_duration as f64
    }

    /// How long a blocking request may wait before `503` (§6.2.5.2: three target durations).
    pub fn block_limit(&self) -> Duration {
        Duration::from_secs(3 * self.target_duration)
    }
}

/// Why an HLS request was refused (each is a `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    /// `_HLS_part` without `_HLS_msn` (RFC 8216bis §6.2.5.2).
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// A directive value that is not a decimal integer.
    #[error("{0} must be a decimal integer")]
    NotAnInteger(&'static str),
    /// `_HLS_skip` other than `YES` or `v2` (§6.2.5.1).
    #[error("_HLS_skip must be YES or v2")]
    BadSkip,
    /// A directive given twice.
    #[error("{0} given more than once")]
    Repeated(&'static str),
    /// A reserved `_HLS_` parameter this server does not know.
    #[error("unknown delivery directive {0}")]
    UnknownDirective(String),
    /// `_HLS_msn` more than two segments past the last one (§6.2.5.2).
    #[error("_HLS_msn {requested} is more than two segments past the last ({last})")]
    MsnTooFar {
        /// Requested.
        requested: u64,
        /// Last complete segment, if any.
        last: i64,
    },
    /// `_HLS_part` past the Advance Part Limit (§6.2.5.2).
    #[error("_HLS_part {requested} is past the Advance Part Limit")]
    PartTooFar {
        /// Requested.
        requested: u64,
    },
}
