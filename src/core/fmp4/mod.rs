//! Fragmented MP4 (ISO/IEC 14496-12, CMAF-style) for the HLS parts and the recordings (media
//! path: `core::h264`/`core::opus` samples -> here -> `egress::hls` store and
//! `egress::recorder` files), written with `mp4-atom`: the init segment, `moof`+`mdat`
//! fragments, reading fragments back, and rewriting a fragmented recording as a progressive
//! faststart MP4. Pure: bytes in, bytes out; the shells do the file I/O.

mod fragment;
mod init;
mod progressive;
mod recording;
mod scan;
mod vod;

pub use fragment::{Sample, TrackRun, fragment};
pub use init::{TrackConfig, init_segment, video_dimensions};
pub use progressive::{CopyRange, Progressive, progressive};
pub use recording::RecordingFragmenter;
pub use scan::{
    BoxHeader, InitInfo, Run, RunSample, TrackInfo, box_header, parse_init, parse_moof,
};
pub use vod::{
    IndexedSample, TrackIndex, VodSegment, fragmented_init, sample_index, vod_fragment,
    vod_playlist, vod_segments,
};

/// Track id of H.264 video in every init segment onair writes.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of Opus audio in every init segment onair writes.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Media timescale of video tracks: the H.264 RTP clock (RFC 6184 §8.2.1).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Media timescale of audio tracks: the Opus RTP clock (RFC 7587 §4.1).
pub const AUDIO_TIMESCALE: u32 = 48_000;

/// `sample_flags` of a sync sample: `sample_depends_on` = 2, it depends on no other sample
/// (ISO/IEC 14496-12 §8.8.3.1).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on` = 1 and
/// `sample_is_non_sync_sample` = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Whether `sample_flags` describe a sync sample (`sample_is_non_sync_sample` clear).
pub fn is_sync(flags: u32) -> bool {
    flags & 0x0001_0000 == 0
}

/// Why an MP4 structure could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fmp4Error {
    /// `mp4-atom` refused to encode or decode a box.
    #[error("MP4 box: {0}")]
    Atom(String),
    /// The SPS could not be parsed for the sample entry.
    #[error("SPS: {0}")]
    Sps(#[from] crate::core::h264::H264Error),
    /// The bytes end inside a box.
    #[error("truncated MP4 data")]
    Truncated,
    /// Something onair does not write and so does not read (e.g. a fragment for an unknown
    /// track, or sample data outside its `mdat`).
    #[error("unsupported MP4 layout: {0}")]
    Unsupported(&'static str),
    /// A fragment without any sample, or an init segment without any track.
    #[error("nothing to write")]
    Empty,
}

impl From<mp4_atom::Error> for Fmp4Error {
    fn from(e: mp4_atom::Error) -> Self {
        Fmp4Error::Atom(e.to_string())
    }
}
