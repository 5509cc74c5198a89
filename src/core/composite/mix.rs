//! Audio mixing of the room composite (egress path: each stage participant's decoded Opus, 48 kHz
//! interleaved stereo PCM -> one mixed frame -> the Opus encoder). Pure: a bounded per-source
//! jitter FIFO and a saturating soft-clip sum; nothing allocates per frame.

use std::collections::VecDeque;

/// Output sample rate (Opus decodes and encodes at 48 kHz, RFC 7587 §4.1).
pub const SAMPLE_RATE: u32 = 48_000;
/// Interleaved channels mixed (WebRTC Opus is `opus/48000/2`).
pub const MIX_CHANNELS: usize = 2;
/// Samples per channel in one 20 ms mix frame.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved values in one mix frame.
pub const FRAME_LEN: usize = FRAME_SAMPLES * MIX_CHANNELS;

/// Above this magnitude the sum is compressed smoothly towards full scale instead of wrapping.
const KNEE: i32 = 24_576;
const HEADROOM: i32 = i16::MAX as i32 - KNEE;

/// Soft clip of one summed value: linear up to the knee, then a smooth curve that approaches
/// but never exceeds full scale (monotonic and continuous).
pub fn soft_clip(sum: i32) -> i16 {
    let magnitude = sum.unsigned_abs().min(i32::MAX as u32) as i32;
    if magnitude <= KNEE {
        return sum as i16;
    }
    let over = i64::from(magnitude - KNEE);
    let squeezed = KNEE + (over * i64::from(HEADROOM) / (over + i64::from(HEADROOM))) as i32;
    (squeezed * sum.signum()) as i16
}

/// Sums `inputs` into `out` with [`soft_clip`]. An input shorter than `out` (a source missing
/// part of the frame) contributes silence for the rest.
pub fn mix_into(out: &mut [i16], inputs: &[&[i16]]) {
    for (i, o) in out.iter_mut().enumerate() {
        let sum: i32 = inputs
            .iter()
            .filter_map(|s| s.get(i))
            .map(|&v| i32::from(v))
            .sum();
        *o = soft_clip(sum);
    }
}

/// Counters of one FIFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FifoStats {
    /// Interleaved values dropped because the FIFO was full (the source ran ahead).
    pub overflow: u64,
    /// Frames in which the source had too little buffered and went silent to re-prime.
    pub underruns: u64,
}

/// One source's decoded PCM waiting to be mixed: a small jitter buffer. Mixing starts once
/// `prebuffer` values are queued; an underrun empties it and it primes again; more than
/// `capacity` values drop the oldest (bounded latency and memory).
#[derive(Debug, Clone)]
pub struct PcmFifo {
    queue: VecDeque<i16>,
    prebuffer: usize,
    capacity: usize,
    primed: bool,
    stats: FifoStats,
}

impl PcmFifo {
    /// A FIFO priming at `prebuffer` interleaved values and holding at most `capacity`.
    pub fn new(prebuffer: usize, capacity: usize) -> Self {
        let capacity = capacity.max(prebuffer).max(1);
        Self {
            queue: VecDeque::with_capacity(capacity),
            prebuffer,
            capacity,
            primed: false,
            stats: FifoStats::default(),
        }
    }

    /// Appends decoded PCM.
    pub fn push(&mut self, pcm: &[i16]) {
        let pcm = if pcm.len() > self.capacity {
            self.stats.overflow += (pcm.len() - self.capacity) as u64;
            &pcm[pcm.len() - self.capacity..]
        } else {
            pcm
        };
        let excess = (self.queue.len() + pcm.len()).saturating_sub(self.capacity);
        if excess > 0 {
            self.stats.overflow += excess as u64;
            self.queue.drain(..excess);
        }
        self.queue.extend(pcm.iter().copied());
    }

    /// Moves up to `out.len()` values into `out`; returns how many (the rest of `out` is left
    /// for the caller to treat as silence). Nothing comes out until primed.
    pub fn pop_into(&mut self, out: &mut [i16]) -> usize {
        if !self.primed {
            if self.queue.len() < self.prebuffer {
                return 0;
            }
            self.primed = true;
        }
        let n = out.len().min(self.queue.len());
        for (o, v) in out.iter_mut().zip(self.queue.drain(..n)) {
            *o = v;
        }
        if n < out.len() {
            self.primed = false;
            self.stats.underruns += 1;
        }
        n
    }

    /// Values queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> FifoStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_below_the_knee_are_exact() {
        let a = [1000i16, -2000, 3000];
        let b = [500i16, 500, -3000];
        let mut out = [0i16; 3];
        mix_into(&mut out, &[&a, &b]);
        assert_eq!(out, [1500, -1500, 0]);
    }

    #[test]
    fn loud_sums_saturate_smoothly_without_wrapping() {
        let a = [30_000i16, -30_000, 20_000, i16::MAX];
        let mut out = [0i16; 4];
        mix_into(&mut out, &[&a, &a, &a]);
        assert!(
            out[0] > KNEE as i16 && out[0] < i16::MAX,
            "below full scale"
        );
        assert!(out[1] < -(KNEE as i16) && out[1] >= -i16::MAX);
        assert!(out[2] > KNEE as i16);
        assert!(out[0] > out[2], "monotonic: 90000 > 60000");
        // Continuous at the knee and monotonic above it.
        assert_eq!(soft_clip(KNEE), KNEE as i16);
        assert_eq!(soft_clip(KNEE + 1), KNEE as i16);
        let mut last = soft_clip(KNEE);
        for s in (KNEE..4 * 32_768).step_by(97) {
            let v = soft_clip(s);
            assert!(v >= last);
            last = v;
        }
        assert_eq!(soft_clip(i32::MIN), -soft_clip(i32::MAX));
    }

    #[test]
    fn a_missing_source_contributes_silence() {
        let a = [100i16; 4];
        let short = [7i16; 2];
        let mut out = [0i16; 4];
        mix_into(&mut out, &[&a, &short]);
        assert_eq!(out, [107, 107, 100, 100]);
        mix_into(&mut out, &[]);
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn fifo_primes_underruns_and_reprimes() {
        let mut fifo = PcmFifo::new(4, 16);
        let mut out = [0i16; 3];
        fifo.push(&[1, 2, 3]);
        assert_eq!(fifo.pop_into(&mut out), 0, "not primed below 4");
        fifo.push(&[4, 5]);
        assert_eq!(fifo.pop_into(&mut out), 3);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(
            fifo.pop_into(&mut out),
            2,
            "underrun hands out what is left"
        );
        assert_eq!(&out[..2], &[4, 5]);
        assert_eq!(fifo.stats().underruns, 1);
        fifo.push(&[6]);
        assert_eq!(fifo.pop_into(&mut out), 0, "primes again after an underrun");
    }

    #[test]
    fn fifo_is_bounded_and_drops_the_oldest() {
        let mut fifo = PcmFifo::new(2, 4);
        fifo.push(&[1, 2, 3]);
        fifo.push(&[4, 5, 6]);
        assert_eq!(fifo.len(), 4);
        assert_eq!(fifo.stats().overflow, 2);
        let mut out = [0i16; 4];
        assert_eq!(fifo.pop_into(&mut out), 4);
        assert_eq!(out, [3, 4, 5, 6]);
        fifo.push(&[9; 10]);
        assert_eq!(fifo.len(), 4);
        assert!(!fifo.is_empty());
    }
}
