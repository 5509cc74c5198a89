//! Test/load client: what a WHEP viewer measured — lock-free counters written by the track
//! readers, and the cloneable snapshot tests and the load generator read. Pure, no I/O.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::seq::SeqCounts;
use crate::histogram::Histogram;
use crate::media::LumaFrame;
use crate::probe::LatencyProbe;

/// Decode instants kept per track (about 30 s at 30 fps).
const DECODED_AT_KEEP: usize = 1024;

/// A snapshot of one received track (video or audio; decode fields stay zero for audio and for
/// non-decoding viewers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackStats {
    /// Whether the server sent this track at all.
    pub present: bool,
    /// RTP packets received.
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Sequence numbers never received (net of late arrivals).
    pub seq_gaps: u64,
    /// Packets further behind the highest sequence number than the reorder window (64).
    pub seq_backwards: u64,
    /// Packets received twice.
    pub seq_duplicates: u64,
    /// Packets that arrived late but within the reorder window.
    pub seq_reordered: u64,
    /// In-order packets whose RTP timestamp went back.
    pub ts_backwards: u64,
    /// Times the SSRC differed from the previous packet's.
    pub ssrc_changes: u64,
    /// Distinct SSRCs seen (onair promises exactly 1 per viewer track).
    pub distinct_ssrcs: u64,
    /// The SSRC of the latest packet.
    pub ssrc: Option<u32>,
    /// Video: access units that began with a keyframe (SPS or IDR at the start of a frame).
    pub keyframes: u64,
    /// Video: whether the very first packet received began a keyframe.
    pub first_packet_keyframe: Option<bool>,
    /// When the first packet arrived, since [`super::Viewer::connect`] began.
    pub first_packet_at: Option<Duration>,
    /// Video: when the first packet that begins a keyframe arrived, since
    /// [`super::Viewer::connect`] began.
    pub first_keyframe_at: Option<Duration>,
    /// Video, decoding: pictures decoded.
    pub frames_decoded: u64,
    /// Video, decoding: access units openh264 rejected.
    pub decode_errors: u64,
    /// Video, decoding: frames dropped because a packet was missing or came too late.
    pub frames_incomplete: u64,
    /// Video, decoding: complete frames skipped while waiting for an IDR (start or after loss).
    pub frames_skipped: u64,
    /// Video, decoding: frames whose payloads broke RFC 6184.
    pub frames_malformed: u64,
    /// Video, decoding: PLIs this viewer sent (only with `request_keyframes`).
    pub plis_sent: u64,
    /// Video, decoding: size of the last decoded picture.
    pub width: u32,
    /// Video, decoding: size of the last decoded picture.
    pub height: u32,
    /// Video, decoding: when each recent picture was decoded, as time since the viewer
    /// connected (the last 1024).
    pub decoded_at: Vec<Duration>,
}

impl TrackStats {
    /// Decoded pictures per second over the last `window` (ending at the latest decode).
    pub fn decoded_fps(&self, window: Duration) -> f64 {
        let Some(&last) = self.decoded_at.last() else {
            return 0.0;
        };
        let from = last.saturating_sub(window);
        let frames = self.decoded_at.iter().filter(|t| **t > from).count();
        frames as f64 / window.as_secs_f64().max(f64::EPSILON)
    }
}

/// When each step of a viewer's join happened, as time since [`super::Viewer::connect`]
/// began (offer creation and ICE gathering come before `posted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JoinTimeline {
    /// The WHEP POST was sent.
    pub posted: Option<Duration>,
    /// The `201` and its SDP answer had arrived.
    pub answered: Option<Duration>,
    /// ICE was up (a nominated pair): the DTLS handshake starts here.
    pub ice_connected: Option<Duration>,
    /// ICE and DTLS were up (`Connected`).
    pub connected: Option<Duration>,
    /// The first RTP packet of any track arrived (audio is not held for a keyframe).
    pub first_packet: Option<Duration>,
    /// The first video packet arrived.
    pub first_video_packet: Option<Duration>,
    /// The first video packet that begins a keyframe arrived.
    pub first_keyframe: Option<Duration>,
}

impl JoinTimeline {
    /// POST to the first packet that begins a keyframe: how long a user waits for a picture.
    pub fn join_to_keyframe(&self) -> Option<Duration> {
        Some(self.first_keyframe?.saturating_sub(self.posted?))
    }
}

/// Per-packet forwarding latency bookkeeping of a viewer ([`crate::LatencyProbe`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyCounts {
    /// Video packets matched to their send instant (samples in the viewer's histogram).
    pub matched: u64,
    /// Video packets whose payload the probe had not seen sent.
    pub unmatched: u64,
}

/// A snapshot of a viewer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ViewerStats {
    /// The video track.
    pub video: TrackStats,
    /// The audio track.
    pub audio: TrackStats,
    /// Whether the peer connection is currently connected.
    pub connected: bool,
    /// Whether reading is stalled ([`super::Viewer::stall`]).
    pub stalled: bool,
    /// The steps of the join.
    pub timeline: JoinTimeline,
    /// Forwarding-latency matches (zero without a probe).
    pub latency: LatencyCounts,
}

/// A viewer's forwarding-latency recorder: looks each received video payload up in the shared
/// probe and counts the trip in microseconds. Lock- and allocation-free.
#[derive(Debug)]
pub(crate) struct LatencyRecorder {
    probe: Arc<LatencyProbe>,
    pub histogram: Histogram,
    pub unmatched: AtomicU64,
}

impl LatencyRecorder {
    pub(crate) fn new(probe: Arc<LatencyProbe>) -> Self {
        Self {
            probe,
            histogram: Histogram::new(),
            unmatched: AtomicU64::new(0),
        }
    }

    /// Looks one received payload up.
    pub(crate) fn observe(&self, payload: &[u8]) {
        match self.probe.elapsed_since_send(payload) {
            Some(trip) => self.histogram.record(trip.as_micros() as u64),
            None => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Lock-free counters of one track, written by its reader task only.
#[derive(Debug, Default)]
pub(crate) struct TrackCounters {
    pub present: AtomicU8,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub seq_gaps: AtomicU64,
    pub seq_backwards: AtomicU64,
    pub seq_duplicates: AtomicU64,
    pub seq_reordered: AtomicU64,
    pub ts_backwards: AtomicU64,
    pub ssrc_changes: AtomicU64,
    pub distinct_ssrcs: AtomicU64,
    /// `u64::MAX` = none yet.
    pub ssrc: AtomicU64,
    pub keyframes: AtomicU64,
    /// 0 unknown, 1 yes, 2 no.
    pub first_packet_keyframe: AtomicU8,
    /// Nanoseconds since the viewer started, 0 = not yet.
    pub first_packet_ns: AtomicU64,
    /// Nanoseconds since the viewer started, 0 = not yet.
    pub first_keyframe_ns: AtomicU64,
    pub frames_decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub frames_incomplete: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub frames_malformed: AtomicU64,
    pub plis_sent: AtomicU64,
    pub width: AtomicU32,
    pub height: AtomicU32,
    /// Touched once per decoded picture only.
    pub decoded_at: Mutex<VecDeque<Duration>>,
    /// The last decoded luma plane (decoding viewers only); buffer reused.
    pub last_luma: Mutex<Option<LumaFrame>>,
}

impl TrackCounters {
    pub(crate) fn new() -> Self {
        Self {
            ssrc: AtomicU64::new(u64::MAX),
            ..Self::default()
        }
    }

    /// Publishes the sequence tracker's counters (plain stores: one writer).
    pub(crate) fn store_seq(&self, counts: &SeqCounts) {
        self.seq_gaps.store(counts.gaps, Ordering::Relaxed);
        self.seq_backwards
            .store(counts.backwards, Ordering::Relaxed);
        self.seq_duplicates
            .store(counts.duplicates, Ordering::Relaxed);
        self.seq_reordered
            .store(counts.reordered, Ordering::Relaxed);
        self.ts_backwards
            .store(counts.ts_backwards, Ordering::Relaxed);
    }

    /// Stores `at` in `slot` unless it already holds an instant (one writer: the reader).
    pub(crate) fn mark_first(slot: &AtomicU64, at: Duration) {
        if slot.load(Ordering::Relaxed) == 0 {
            slot.store((at.as_nanos() as u64).max(1), Ordering::Relaxed);
        }
    }

    pub(crate) fn record_decoded(&self, at: Duration, width: usize, height: usize) {
        self.frames_decoded.fetch_add(1, Ordering::Relaxed);
        self.width.store(width as u32, Ordering::Relaxed);
        self.height.store(height as u32, Ordering::Relaxed);
        let mut times = self
            .decoded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if times.len() == DECODED_AT_KEEP {
            times.pop_front();
        }
        times.push_back(at);
    }

    pub(crate) fn snapshot(&self) -> TrackStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ssrc = load(&self.ssrc);
        TrackStats {
            present: self.present.load(Ordering::Relaxed) != 0,
            packets: load(&self.packets),
            bytes: load(&self.bytes),
            seq_gaps: load(&self.seq_gaps),
            seq_backwards: load(&self.seq_backwards),
            seq_duplicates: load(&self.seq_duplicates),
            seq_reordered: load(&self.seq_reordered),
            ts_backwards: load(&self.ts_backwards),
            ssrc_changes: load(&self.ssrc_changes),
            distinct_ssrcs: load(&self.distinct_ssrcs),
            ssrc: u32::try_from(ssrc).ok(),
            keyframes: load(&self.keyframes),
            first_packet_keyframe: match self.first_packet_keyframe.load(Ordering::Relaxed) {
                0 => None,
                v => Some(v == 1),
            },
            first_packet_at: instant(&self.first_packet_ns),
            first_keyframe_at: instant(&self.first_keyframe_ns),
            frames_decoded: load(&self.frames_decoded),
            decode_errors: load(&self.decode_errors),
            frames_incomplete: load(&self.frames_incomplete),
            frames_skipped: load(&self.frames_skipped),
            frames_malformed: load(&self.frames_malformed),
            plis_sent: load(&self.plis_sent),
            width: self.width.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            decoded_at: self
                .decoded_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .copied()
                .collect(),
        }
    }
}

fn instant(slot: &AtomicU64) -> Option<Duration> {
    match slot.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_fps_counts_the_window() {
        let stats = TrackStats {
            decoded_at: (0..90).map(|i| Duration::from_millis(i * 33)).collect(),
            ..TrackStats::default()
        };
        let fps = stats.decoded_fps(Duration::from_secs(2));
        assert!((29.0..=31.0).contains(&fps), "{fps}");
        assert_eq!(
            TrackStats::default().decoded_fps(Duration::from_secs(1)),
            0.0
        );
    }
}
