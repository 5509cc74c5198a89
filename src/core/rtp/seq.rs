//! RTP sequence-number and timestamp unwrapping used by the egress munger and any per-track
//! receiver statistics (media path: `room::Track` -> `egress::Viewer`). Pure: no I/O, no clock.

/// Extends 16-bit RTP sequence numbers to a monotonic 64-bit space (RFC 3550 §A.1).
///
/// Each new number is placed at the shortest wrapping distance from the highest number seen so
/// far: a packet slightly older than the highest gets a smaller extended number (reordering),
/// a packet just past 65535 -> 0 continues upwards (wrap-around), never a jump of 65536.
/// The first packet maps to `65536 + seq` so that packets arriving late and older than the very
/// first one still get a smaller (non-negative) extended number.
#[derive(Debug, Clone, Default)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// An unwrapper that has not seen any packet yet.
    pub fn new() -> Self {
        Self { highest: None }
    }

    /// Extend `seq`, updating the highest number seen when it is newer.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let value = match self.highest {
            None => (1u64 << 16) + u64::from(seq),
            Some(highest) => {
                // Distance in the half-open range [-32768, 32767]: the shortest way round.
                let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
                highest.saturating_add_signed(delta)
            }
        };
        if self.highest.is_none_or(|h| value > h) {
            self.highest = Some(value);
        }
        value
    }

    /// The highest extended sequence number seen so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

/// Extends 32-bit RTP timestamps (RFC 3550 §5.1) to a monotonic 64-bit space, with the same
/// rules as [`SeqUnwrapper`]: shortest wrapping distance from the highest timestamp seen, and the
/// first timestamp maps to `2^32 + ts` so slightly older ones stay non-negative.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    highest: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has not seen any timestamp yet.
    pub fn new() -> Self {
        Self { highest: None }
    }

    /// Extend `ts`, updating the highest timestamp seen when it is newer.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let value = match self.highest {
            None => (1u64 << 32) + u64::from(ts),
            Some(highest) => {
                let delta = i64::from(ts.wrapping_sub(highest as u32) as i32);
                highest.saturating_add_signed(delta)
            }
        };
        if self.highest.is_none_or(|h| value > h) {
            self.highest = Some(value);
        }
        value
    }

    /// The highest extended timestamp seen so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_sequence_is_consecutive() {
        let mut u = SeqUnwrapper::new();
        let first = u.unwrap(100);
        assert_eq!(u.unwrap(101), first + 1);
        assert_eq!(u.unwrap(102), first + 2);
        assert_eq!(u.highest(), Some(first + 2));
    }

    #[test]
    fn wraps_forward_past_65535() {
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(65534);
        assert_eq!(u.unwrap(65535), a + 1);
        assert_eq!(u.unwrap(0), a + 2);
        assert_eq!(u.unwrap(1), a + 3);
        // A second full cycle keeps counting.
        let mut last = a + 3;
        for i in 0..70_000u32 {
            let seq = (2 + i) as u16;
            let v = u.unwrap(seq);
            assert_eq!(v, last + 1);
            last = v;
        }
    }

    #[test]
    fn reordered_packet_across_wrap_is_older_not_a_jump() {
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(65535);
        let b = u.unwrap(1); // skipped 0
        assert_eq!(b, a + 2);
        let late = u.unwrap(0);
        assert_eq!(late, a + 1, "late packet slots in between");
        assert_eq!(
            u.highest(),
            Some(b),
            "highest is not lowered by a late packet"
        );
        // A packet older than the very first one stays below it.
        let older = u.unwrap(65530);
        assert_eq!(older, a - 5);
    }

    #[test]
    fn late_packet_before_first_packet_near_zero() {
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(2);
        assert_eq!(u.unwrap(65534), a - 4);
        assert_eq!(u.unwrap(3), a + 1);
    }

    #[test]
    fn duplicate_gets_same_number() {
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(500);
        let b = u.unwrap(501);
        assert_eq!(u.unwrap(500), a);
        assert_eq!(u.unwrap(501), b);
    }

    #[test]
    fn large_forward_jump_under_half_range_is_forward() {
        let mut u = SeqUnwrapper::new();
        let a = u.unwrap(0);
        assert_eq!(u.unwrap(30_000), a + 30_000);
        assert_eq!(u.unwrap(60_000), a + 60_000);
    }

    #[test]
    fn timestamp_wraps_and_reorders() {
        let mut u = TimestampUnwrapper::new();
        let a = u.unwrap(u32::MAX - 2999);
        let b = u.unwrap(0); // +3000 across the wrap
        assert_eq!(b, a + 3000);
        let c = u.unwrap(3000);
        assert_eq!(c, a + 6000);
        assert_eq!(
            u.unwrap(u32::MAX - 2999),
            a,
            "old timestamp is older, not +2^32"
        );
        assert_eq!(u.highest(), Some(c));
    }

    #[test]
    fn timestamp_equal_for_same_frame() {
        let mut u = TimestampUnwrapper::new();
        let a = u.unwrap(90_000);
        assert_eq!(u.unwrap(90_000), a);
        assert_eq!(u.unwrap(93_000), a + 3000);
    }
}
