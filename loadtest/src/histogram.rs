//! Test/load client: a lock-free log-linear histogram of integer samples (microseconds in
//! practice) for the load generator's hot path, and the plain snapshot reports are computed
//! from. Pure, no I/O, no allocation when recording.
//!
//! Buckets are exact below 64 and then 32 per power of two (HDR-histogram style), so any
//! recorded value is known within ~3%. Values up to 2^32 (71 minutes in microseconds) have
//! their own bucket; larger ones share the last.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Largest right shift with its own buckets: values below `2 * SUB << MAX_SHIFT` (2^32).
const MAX_SHIFT: u32 = 26;
/// Number of buckets.
pub const BUCKETS: usize = ((MAX_SHIFT as u64 + 2) * SUB) as usize;

/// The bucket of `value`.
fn index(value: u64) -> usize {
    if value < 2 * SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    if shift > MAX_SHIFT {
        return BUCKETS - 1;
    }
    ((u64::from(shift) + 1) * SUB + ((value >> shift) - SUB)) as usize
}

/// Smallest value of bucket `i`.
fn bucket_low(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    (i % SUB + SUB) << shift
}

/// Largest value of bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        return u64::MAX;
    }
    bucket_low(i + 1) - 1
}

/// A histogram written concurrently through atomics: [`Histogram::record`] is a few relaxed
/// atomic additions, never a lock or an allocation.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram (about 7 KiB).
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Counts one sample.
    pub fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Samples recorded so far (sums the buckets; no allocation).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Adds everything recorded so far to `into` (no allocation when `into` is already sized).
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        into.ensure_sized();
        for (total, bucket) in into.counts.iter_mut().zip(self.buckets.iter()) {
            let n = bucket.load(Ordering::Relaxed);
            *total += n;
            into.count += n;
        }
        into.sum += self.sum.load(Ordering::Relaxed);
        into.max = into.max.max(self.max.load(Ordering::Relaxed));
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        self.add_to(&mut snapshot);
        snapshot
    }
}

/// A plain copy of a [`Histogram`], to merge, subtract and read percentiles from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

/// The usual figures of a [`HistogramSnapshot`], in the unit of its samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples counted.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl HistogramSnapshot {
    fn ensure_sized(&mut self) {
        if self.counts.len() != BUCKETS {
            self.counts = vec![0; BUCKETS];
        }
    }

    /// Counts one sample (for values collected outside the hot path, e.g. join times).
    pub fn record(&mut self, value: u64) {
        self.ensure_sized();
        self.counts[index(value)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    /// Adds `other`'s samples to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if other.count == 0 {
            return;
        }
        self.ensure_sized();
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// The samples recorded after `earlier` was taken from the same histogram. The maximum of
    /// that window is known to bucket precision only: the upper bound of the highest bucket
    /// that grew, capped by the overall maximum.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        if earlier.count == 0 {
            return self.clone();
        }
        let mut window = HistogramSnapshot::default();
        window.ensure_sized();
        for (i, slot) in window.counts.iter_mut().enumerate() {
            let before = earlier.counts.get(i).copied().unwrap_or(0);
            let now = self.counts.get(i).copied().unwrap_or(0);
            *slot = now.saturating_sub(before);
        }
        window.count = window.counts.iter().sum();
        window.sum = self.sum.saturating_sub(earlier.sum);
        window.max = window
            .counts
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, |i| bucket_high(i).min(self.max));
        window
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample (exact unless this is a [`Self::since`] window).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the samples, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value below or at which a fraction `q` (0..=1) of the samples lie: the middle of the
    /// bucket holding that rank, capped by the maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = (bucket_low(i), bucket_high(i));
                let middle = low + (high.saturating_sub(low)) / 2;
                return middle.min(self.max);
            }
        }
        self.max
    }

    /// Count, mean, p50, p95, p99 and max.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: self.mean(),
            p50: self.quantile(0.50),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous_high = None;
        for i in 0..BUCKETS - 1 {
            let (low, high) = (bucket_low(i), bucket_high(i));
            assert!(low <= high, "bucket {i}");
            if let Some(p) = previous_high {
                assert_eq!(low, p + 1, "bucket {i} starts after the previous one");
            }
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            // Within ~3% (1/32) of the value.
            assert!((high - low) as f64 <= low as f64 / 31.0 + 1.0, "bucket {i}");
            previous_high = Some(high);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(index((1 << 32) - 1), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_windows() {
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let first = h.snapshot();
        assert_eq!(first.count(), 1000);
        assert_eq!(first.max(), 1000);
        let p50 = first.quantile(0.5);
        assert!((485..=515).contains(&p50), "{p50}");
        let p99 = first.quantile(0.99);
        assert!((960..=1000).contains(&p99), "{p99}");
        assert!((first.mean() - 500.5).abs() < 1e-9);

        for _ in 0..10 {
            h.record(20_000);
        }
        let window = h.snapshot().since(&first);
        assert_eq!(window.count(), 10);
        let p50 = window.quantile(0.5);
        assert!((19_500..=20_000).contains(&p50), "{p50}");
        assert_eq!(window.max(), 20_000);

        let mut merged = HistogramSnapshot::default();
        merged.merge(&first);
        merged.merge(&window);
        merged.record(7);
        assert_eq!(merged.count(), 1011);
        assert_eq!(HistogramSnapshot::default().quantile(0.5), 0);
    }
}
