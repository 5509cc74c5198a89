//! Test/load client: receive-side RTP sequence and timestamp analysis for one SSRC — extends
//! 16-bit sequence numbers across wraps and classifies every arrival (RFC 3550 §A.1 spirit).
//! Pure, allocation-free, no I/O.

/// How far behind the highest sequence number a packet may arrive and still count as ordinary
/// reordering (or a retransmission) rather than the stream going backwards.
pub const REORDER_WINDOW: u64 = 64;

/// Consecutive in-order packets far behind the maximum after which the stream is taken to have
/// restarted at the new position (RFC 3550 §A.1 "probation").
const RESYNC_AFTER: u32 = 2;

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first packet seen.
    First,
    /// The next expected packet, or a jump forward over `lost` missing ones.
    Advanced {
        /// Sequence numbers skipped by this jump (0 when in order).
        lost: u64,
    },
    /// Arrived within the reorder window and filled a hole.
    Late,
    /// Already received.
    Duplicate,
    /// Further behind the maximum than the reorder window.
    Backwards,
}

/// Counters kept across the life of the tracker (including resyncs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounts {
    /// Sequence numbers never received (net of late arrivals that filled holes).
    pub gaps: u64,
    /// Late arrivals that filled a hole within the reorder window.
    pub reordered: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets further behind the highest sequence number than [`REORDER_WINDOW`].
    pub backwards: u64,
    /// In-order packets whose timestamp is lower than the previous in-order packet's.
    pub ts_backwards: u64,
    /// Times the tracker re-anchored after the stream jumped far backwards.
    pub resyncs: u64,
}

/// Sequence tracker for one SSRC.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    max: Option<u64>,
    /// Bit `i` set = `max - i` received (bit 0 is `max` itself).
    window: u128,
    last_ts: u32,
    /// Extended number a run of backwards packets is heading to, and the run's length.
    probation: Option<(u64, u32)>,
    counts: SeqCounts,
}

impl SeqTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters so far.
    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// Forgets the position (e.g. on an SSRC change) but keeps the counters.
    pub fn restart(&mut self) {
        *self = Self {
            counts: self.counts,
            ..Self::default()
        };
    }

    /// Records one packet; returns its extended sequence number (`None` if it would be below
    /// zero) and what kind of arrival it was.
    pub fn record(&mut self, seq: u16, timestamp: u32) -> (Option<u64>, Arrival) {
        let Some(max) = self.max else {
            // Start high enough that reordering at the very start cannot go negative.
            let ext = (1u64 << 16) + u64::from(seq);
            self.anchor(ext, timestamp);
            return (Some(ext), Arrival::First);
        };
        let delta = i64::from(seq.wrapping_sub(max as u16) as i16);
        let ext = max.checked_add_signed(delta);
        if delta > 0 {
            let ext = ext.expect("forward from a u64 maximum well below overflow");
            let lost = (delta - 1) as u64;
            self.window = if delta >= 128 {
                1
            } else {
                (self.window << delta) | 1
            };
            self.max = Some(ext);
            self.probation = None;
            self.counts.gaps += lost;
            self.check_timestamp(timestamp);
            return (Some(ext), Arrival::Advanced { lost });
        }
        let age = delta.unsigned_abs();
        if age == 0 {
            self.counts.duplicates += 1;
            return (ext, Arrival::Duplicate);
        }
        if age <= REORDER_WINDOW {
            let bit = 1u128 << age;
            if self.window & bit != 0 {
                self.counts.duplicates += 1;
                return (ext, Arrival::Duplicate);
            }
            self.window |= bit;
            self.counts.gaps = self.counts.gaps.saturating_sub(1);
            self.counts.reordered += 1;
            return (ext, Arrival::Late);
        }
        self.counts.backwards += 1;
        // A restarted stream keeps going from its new position: follow it after a few packets.
        if let Some(ext) = ext {
            let run = match self.probation {
                Some((expected, run)) if expected == ext => run + 1,
                _ => 1,
            };
            if run >= RESYNC_AFTER {
                self.counts.resyncs += 1;
                self.anchor(ext, timestamp);
            } else {
                self.probation = Some((ext + 1, run));
            }
        }
        (ext, Arrival::Backwards)
    }

    fn anchor(&mut self, ext: u64, timestamp: u32) {
        self.max = Some(ext);
        self.window = 1;
        self.last_ts = timestamp;
        self.probation = None;
    }

    fn check_timestamp(&mut self, timestamp: u32) {
        if (timestamp.wrapping_sub(self.last_ts) as i32) < 0 {
            self.counts.ts_backwards += 1;
        }
        self.last_ts = timestamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tracker: &mut SeqTracker, seqs: &[u16]) -> Vec<Arrival> {
        seqs.iter()
            .map(|&s| tracker.record(s, u32::from(s) * 10).1)
            .collect()
    }

    #[test]
    fn in_order_across_the_wrap() {
        let mut t = SeqTracker::new();
        let seqs: Vec<u16> = (0..10).map(|i| 65_530u16.wrapping_add(i)).collect();
        let mut exts = Vec::new();
        for &s in &seqs {
            exts.push(t.record(s, 0).0.expect("ext"));
        }
        assert!(exts.windows(2).all(|w| w[1] == w[0] + 1), "{exts:?}");
        assert_eq!(t.counts(), SeqCounts::default());
    }

    #[test]
    fn gaps_reordering_and_duplicates() {
        let mut t = SeqTracker::new();
        let arrivals = run(&mut t, &[10, 11, 14, 12, 15, 12, 15]);
        assert_eq!(
            arrivals,
            vec![
                Arrival::First,
                Arrival::Advanced { lost: 0 },
                Arrival::Advanced { lost: 2 },
                Arrival::Late,
                Arrival::Advanced { lost: 0 },
                Arrival::Duplicate,
                Arrival::Duplicate,
            ]
        );
        let c = t.counts();
        assert_eq!(
            (c.gaps, c.reordered, c.duplicates, c.backwards),
            (1, 1, 2, 0)
        );
    }

    #[test]
    fn far_backwards_counts_then_resyncs() {
        let mut t = SeqTracker::new();
        run(&mut t, &[1000, 1001, 1002]);
        // The stream restarts 500 lower (e.g. a munger that forgot its offset).
        let arrivals = run(&mut t, &[500, 501, 502, 503]);
        assert_eq!(arrivals[0], Arrival::Backwards);
        assert_eq!(arrivals[1], Arrival::Backwards);
        assert_eq!(arrivals[2], Arrival::Advanced { lost: 0 });
        let c = t.counts();
        assert_eq!((c.backwards, c.resyncs), (2, 1));
    }

    #[test]
    fn timestamps_going_back_in_order_are_counted() {
        let mut t = SeqTracker::new();
        t.record(1, 1000);
        t.record(2, 4000);
        t.record(3, 2000); // in order, earlier timestamp
        t.record(5, 7000);
        t.record(4, 6000); // reordered: not a timestamp fault
        assert_eq!(t.counts().ts_backwards, 1);
        // Timestamp wrap is not backwards.
        let mut t = SeqTracker::new();
        t.record(1, u32::MAX - 100);
        t.record(2, 200);
        assert_eq!(t.counts().ts_backwards, 0);
    }

    #[test]
    fn large_forward_jump_counts_the_gap() {
        let mut t = SeqTracker::new();
        run(&mut t, &[1, 2, 1000]);
        assert_eq!(t.counts().gaps, 997);
        // Something from before the jump is now far behind.
        assert_eq!(t.record(3, 0).1, Arrival::Backwards);
    }
}
