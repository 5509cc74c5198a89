//! Fast start for a joining WHEP viewer (egress path: `room::TrackHub` history ->
//! `egress::Viewer`): when the track's newest keyframe began moments ago and every packet since
//! is still in the hub's history, the viewer is sent that keyframe and what followed it at
//! once, instead of waiting for the next keyframe a PLI brings. Pure: time is passed in.

use std::time::{Duration, Instant};

/// Most packets replayed to one viewer: a keyframe and the frames after it must fit in the
/// connection's send queue (256 events in webrtc-rs) with room to spare for live packets.
pub const MAX_REPLAY_PACKETS: u16 = 160;

/// Where the newest keyframe of a track began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeMark {
    /// Upstream source (publisher session) that sent it.
    pub source: u64,
    /// Upstream sequence number of its first packet.
    pub seq: u16,
    /// Its RTP timestamp (every packet of one access unit shares it).
    pub ts: u32,
    /// When that packet arrived.
    pub at: Instant,
}

impl KeyframeMark {
    /// The mark after a packet flagged as a keyframe start arrives. An access unit can hold
    /// several such packets (the SPS, then the first slice of each IDR picture part): only the
    /// first one of an access unit marks it, or a viewer would start after its SPS and PPS.
    pub fn next(current: Option<KeyframeMark>, flagged: KeyframeMark) -> KeyframeMark {
        match current {
            Some(mark) if mark.source == flagged.source && mark.ts == flagged.ts => mark,
            _ => flagged,
        }
    }
}

/// How far back a joining viewer may be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The keyframe must have begun at most this long ago (zero: never replay). The replayed
    /// frames reach the viewer late by up to this much, and its player catches up on them.
    pub max_age: Duration,
    /// At most this many packets before the current one.
    pub max_packets: u16,
}

impl ReplayWindow {
    /// A window of `max_age` and [`MAX_REPLAY_PACKETS`].
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            max_packets: MAX_REPLAY_PACKETS,
        }
    }

    /// Whether a viewer starting at `now` could begin at the keyframe `mark` (it is recent
    /// enough), so asking the publisher for a new one can wait for the next packet.
    pub fn covers(&self, mark: Option<KeyframeMark>, now: Instant) -> bool {
        mark.is_some_and(|m| {
            !self.max_age.is_zero() && now.saturating_duration_since(m.at) <= self.max_age
        })
    }

    /// How many packets, from `mark.seq` on, come before the packet (`source`, `seq`) that
    /// arrived at `now`, when a viewer whose first video packet this would be can start at
    /// the keyframe instead. `None` when it must wait for a new keyframe: no keyframe seen,
    /// another source, too old, too many packets, or `seq` is not after the keyframe.
    pub fn packets_before(
        &self,
        mark: Option<KeyframeMark>,
        source: u64,
        seq: u16,
        now: Instant,
    ) -> Option<u16> {
        let mark = mark.filter(|m| m.source == source && self.covers(Some(*m), now))?;
        let count = seq.wrapping_sub(mark.seq);
        // Zero is the keyframe itself (the gate opens on it); a "count" past half the
        // sequence space is a packet from before the keyframe.
        (1..=self.max_packets.min(1 << 14))
            .contains(&count)
            .then_some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(t0: Instant, seq: u16) -> Option<KeyframeMark> {
        Some(KeyframeMark {
            source: 7,
            seq,
            ts: 9000,
            at: t0,
        })
    }

    #[test]
    fn an_access_unit_is_marked_at_its_first_flagged_packet() {
        let t0 = Instant::now();
        let sps = mark(t0, 100).unwrap();
        let idr_slice = KeyframeMark { seq: 102, ..sps };
        assert_eq!(KeyframeMark::next(None, sps), sps);
        assert_eq!(
            KeyframeMark::next(Some(sps), idr_slice),
            sps,
            "the IDR after its SPS and PPS keeps the mark at the SPS"
        );
        let next_keyframe = KeyframeMark {
            seq: 400,
            ts: 9000 + 90_000,
            ..sps
        };
        assert_eq!(KeyframeMark::next(Some(sps), next_keyframe), next_keyframe);
        let new_source = KeyframeMark { source: 8, ..sps };
        assert_eq!(KeyframeMark::next(Some(sps), new_source), new_source);
    }

    fn window(ms: u64) -> ReplayWindow {
        ReplayWindow::new(Duration::from_millis(ms))
    }

    #[test]
    fn a_recent_keyframe_is_replayed_up_to_the_current_packet() {
        let t0 = Instant::now();
        let w = window(100);
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 1030, t0 + Duration::from_millis(60)),
            Some(30)
        );
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 1001, t0 + Duration::from_millis(100)),
            Some(1),
            "the age bound is inclusive"
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        assert_eq!(
            window(100).packets_before(mark(t0, 65_530), 7, 4, t0),
            Some(10)
        );
    }

    #[test]
    fn the_viewer_waits_when_the_keyframe_is_too_old_or_too_long_ago() {
        let t0 = Instant::now();
        let w = window(100);
        let late = t0 + Duration::from_millis(101);
        assert_eq!(w.packets_before(mark(t0, 1000), 7, 1010, late), None);
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 1000 + MAX_REPLAY_PACKETS + 1, t0),
            None,
            "more than fits the connection's queue"
        );
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 1000 + MAX_REPLAY_PACKETS, t0),
            Some(MAX_REPLAY_PACKETS)
        );
    }

    #[test]
    fn nothing_to_replay_without_a_keyframe_of_this_source_before_the_packet() {
        let t0 = Instant::now();
        let w = window(100);
        assert_eq!(w.packets_before(None, 7, 10, t0), None);
        assert_eq!(w.packets_before(mark(t0, 1000), 8, 1010, t0), None);
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 1000, t0),
            None,
            "the keyframe itself opens the gate"
        );
        assert_eq!(
            w.packets_before(mark(t0, 1000), 7, 990, t0),
            None,
            "a straggler from before the keyframe"
        );
    }

    #[test]
    fn a_zero_window_turns_replay_off() {
        let t0 = Instant::now();
        assert_eq!(window(0).packets_before(mark(t0, 1000), 7, 1010, t0), None);
        assert!(!window(0).covers(mark(t0, 1000), t0));
    }

    #[test]
    fn a_window_covers_a_keyframe_for_its_age() {
        let t0 = Instant::now();
        let w = window(100);
        assert!(w.covers(mark(t0, 1), t0 + Duration::from_millis(100)));
        assert!(!w.covers(mark(t0, 1), t0 + Duration::from_millis(101)));
        assert!(!w.covers(None, t0));
    }
}
