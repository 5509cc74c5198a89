//! Playlist writer (RFC 8216bis §4) for the egress path (`HlsStore` snapshot -> here -> HTTP
//! body): the multivariant playlist and LL-HLS media playlists with `EXT-X-SERVER-CONTROL`,
//! `EXT-X-PART-INF`, `EXT-X-MAP`, `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-PART`, one
//! `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`, `EXT-X-DISCONTINUITY` and `EXT-X-SKIP` delta
//! updates. Pure: text out.

use std::collections::VecDeque;
use std::fmt::Write;

use super::{HlsTiming, PlaylistPosition};

/// One part as listed by `EXT-X-PART` (§4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    /// Seconds.
    pub duration: f64,
    /// Starts with a sync sample (`INDEPENDENT=YES`).
    pub independent: bool,
    /// Relative URI.
    pub uri: String,
}

/// One segment: complete, or the one in progress (then only its parts are listed).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// Seconds (the sum of its parts while in progress).
    pub duration: f64,
    /// Its parts, in order.
    pub parts: Vec<PartEntry>,
    /// All parts are in and `EXTINF` can be written.
    pub complete: bool,
    /// `EXT-X-DISCONTINUITY` before it (a new publisher session, new parameter sets).
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of its first sample, in Unix milliseconds.
    pub program_date_time_ms: u64,
    /// Relative URI of the segment.
    pub uri: String,
    /// Relative URI of its init segment (`EXT-X-MAP`).
    pub map_uri: String,
}

/// `EXT-X-RENDITION-REPORT` for another media playlist of the same variant (§4.4.5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// Its URI relative to this playlist.
    pub uri: String,
    /// `LAST-MSN`.
    pub last_msn: u64,
    /// `LAST-PART`.
    pub last_part: u64,
}

/// Everything a media playlist shows.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// Timing rules.
    pub timing: HlsTiming,
    /// Segments in the window, oldest first; the last may be in progress.
    pub segments: VecDeque<SegmentEntry>,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities that left the window.
    pub discontinuity_sequence: u64,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
    /// URI of the next part (`EXT-X-PRELOAD-HINT`), absent once ended.
    pub preload_hint: Option<String>,
    /// The other rendition, if any.
    pub rendition_report: Option<RenditionReport>,
}

impl MediaPlaylist {
    /// An empty playlist.
    pub fn new(timing: HlsTiming) -> Self {
        Self {
            timing,
            segments: VecDeque::new(),
            discontinuity_sequence: 0,
            ended: false,
            preload_hint: None,
            rendition_report: None,
        }
    }

    /// The last complete segment and the last part, for blocking decisions.
    pub fn position(&self) -> PlaylistPosition {
        let last_segment = self
            .segments
            .iter()
            .rev()
            .find(|s| s.complete)
            .map(|s| s.msn);
        let last_part = self
            .segments
            .iter()
            .rev()
            .find(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() as u64 - 1));
        PlaylistPosition {
            last_segment,
            last_part,
            ended: self.ended,
        }
    }

    /// `EXT-X-MEDIA-SEQUENCE`.
    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map_or(0, |s| s.msn)
    }

    /// Writes the playlist; with `skip`, segments older than `CAN-SKIP-UNTIL` become one
    /// `EXT-X-SKIP` (a Playlist Delta Update, §6.2.5.1), unless the playlist has ended.
    pub fn render(&self, skip: bool) -> String {
        let t = &self.timing;
        let mut out = String::with_capacity(4096);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", t.target_duration);
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3}",
            t.can_skip_until(),
            t.part_hold_back()
        );
        let _ = writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={:.3}",
            t.part_target.as_secs_f64()
        );
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );

        // Age of each segment's end, measured back from the end of the playlist.
        let total: f64 = self.segments.iter().map(|s| s.duration).sum();
        let mut ends = Vec::with_capacity(self.segments.len());
        let mut at = 0.0;
        for s in &self.segments {
            at += s.duration;
            ends.push(total - at);
        }
        let skipped = if skip && !self.ended {
            self.segments
                .iter()
                .zip(&ends)
                .take_while(|(s, age)| s.complete && **age >= t.can_skip_until())
                .count()
        } else {
            0
        };
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let part_window = 3.0 * t.target_duration as f64;
        let mut map: Option<&str> = None;
        for (s, age) in self.segments.iter().zip(&ends).skip(skipped) {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(s.map_uri.as_str()) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", s.map_uri);
                map = Some(&s.map_uri);
            }
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                format_pdt(s.program_date_time_ms)
            );
            // §6.2.2: parts more than three target durations from the end are dropped.
            if !s.complete || *age < part_window {
                for p in &s.parts {
                    let _ = write!(
                        out,
                        "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
                        p.duration, p.uri
                    );
                    out.push_str(if p.independent {
                        ",INDEPENDENT=YES\n"
                    } else {
                        "\n"
                    });
                }
            }
            if s.complete {
                let _ = writeln!(out, "#EXTINF:{:.5},\n{}", s.duration, s.uri);
            }
        }
        if let Some(hint) = self.preload_hint.as_ref().filter(|_| !self.ended) {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
        }
        if let Some(r) = &self.rendition_report {
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
                r.uri, r.last_msn, r.last_part
            );
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// The multivariant playlist of a room: one variant (video), an optional Opus rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Multivariant {
    /// RFC 6381 codec of the video, e.g. `avc1.42c01e`; `None` for an audio-only stream.
    pub video_codec: Option<String>,
    /// Width and height.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second, when known.
    pub frame_rate: Option<f64>,
    /// Opus channels when the stream has audio.
    pub audio_channels: Option<u8>,
    /// Peak bits per second of all renditions together (`BANDWIDTH`).
    pub bandwidth: u64,
}

impl Multivariant {
    /// Writes the playlist (§4.4.6): `EXT-X-MEDIA` for the Opus rendition, one
    /// `EXT-X-STREAM-INF` whose `CODECS` lists every format, with Opus as lowercase `opus`.
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
        let mut codecs: Vec<&str> = Vec::new();
        if let Some(v) = &self.video_codec {
            codecs.push(v);
        }
        if self.audio_channels.is_some() {
            codecs.push("opus");
        }
        match (&self.video_codec, self.audio_channels) {
            (Some(_), Some(channels)) => {
                let _ = writeln!(
                    out,
                    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Opus\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{channels}\",URI=\"audio.m3u8\""
                );
                let _ = write!(
                    out,
                    "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
                    self.bandwidth,
                    codecs.join(",")
                );
                self.video_attributes(&mut out);
                out.push_str(",AUDIO=\"audio\"\nvideo.m3u8\n");
            }
            (Some(_), None) => {
                let _ = write!(
                    out,
                    "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
                    self.bandwidth,
                    codecs.join(",")
                );
                self.video_attributes(&mut out);
                out.push_str("\nvideo.m3u8\n");
            }
            (None, _) => {
                let _ = writeln!(
                    out,
                    "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"opus\"\naudio.m3u8",
                    self.bandwidth
                );
            }
        }
        out
    }

    fn video_attributes(&self, out: &mut String) {
        if let Some((w, h)) = self.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = self.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
    }
}

/// Appends `query` (e.g. `token=...`, already percent-encoded) to every URI of a rendered
/// playlist: the URI lines (§4.1) and every quoted `URI="..."` attribute (`EXT-X-MAP`,
/// `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`, `EXT-X-MEDIA`). Players
/// resolve each relative URI with its own query (RFC 3986 §5.2), so a private room's token
/// must ride on every one of them. An empty `query` returns the text unchanged.
pub fn with_query(text: &str, query: &str) -> String {
    if query.is_empty() {
        return text.to_owned();
    }
    let join = |uri: &str, out: &mut String| {
        out.push_str(uri);
        out.push(if uri.contains('?') { '&' } else { '?' });
        out.push_str(query);
    };
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.is_empty() {
            out.push_str(line);
            continue;
        }
        if !body.starts_with('#') {
            join(body, &mut out);
            out.push_str(end);
            continue;
        }
        let mut rest = body;
        while let Some(at) = rest.find("URI=\"") {
            let value_start = at + 5;
            let Some(len) = rest[value_start..].find('"') else {
                break;
            };
            out.push_str(&rest[..value_start]);
            join(&rest[value_start..value_start + len], &mut out);
            rest = &rest[value_start + len..];
        }
        out.push_str(rest);
        out.push_str(end);
    }
    out
}

/// `EXT-X-PROGRAM-DATE-TIME` value: ISO 8601 UTC with milliseconds (§4.4.4.6).
pub fn format_pdt(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
#[path = "playlist_tests.rs"]
mod tests;
