//! Output clock of the room composite (egress path: wall time -> composed video frame ticks and
//! audio mix ticks). Pure: time is passed in as the elapsed time since the composite started.
//! Video skips ticks it is too late for (dropping frames, never the stream); audio never skips,
//! so the mixed track has no gaps.

use std::time::Duration;

/// One output tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Tick number since the start.
    pub index: u64,
    /// Presentation time in the clock's media units (`index * rate / fps`).
    pub pts: u64,
}

/// Ticks at a fixed rate: tick `n` is due at `n / per_second` seconds.
#[derive(Debug, Clone)]
pub struct FrameClock {
    per_second: u64,
    media_rate: u64,
    next: u64,
    skipped: u64,
}

impl FrameClock {
    /// `per_second` ticks a second (at least 1) whose pts count in `media_rate` units per
    /// second (90 000 for video, 48 000 for audio).
    pub fn new(per_second: u32, media_rate: u32) -> Self {
        Self {
            per_second: u64::from(per_second.max(1)),
            media_rate: u64::from(media_rate),
            next: 0,
            skipped: 0,
        }
    }

    fn due_at(&self, index: u64) -> Duration {
        Duration::from_nanos(index.saturating_mul(1_000_000_000) / self.per_second)
    }

    fn tick(&self, index: u64) -> Tick {
        Tick {
            index,
            pts: index * self.media_rate / self.per_second,
        }
    }

    /// When the next tick is due (elapsed time since the start).
    pub fn next_due(&self) -> Duration {
        self.due_at(self.next)
    }

    /// The next tick if it is due at `now`, one at a time (for audio: every tick is produced).
    pub fn poll(&mut self, now: Duration) -> Option<Tick> {
        if now < self.next_due() {
            return None;
        }
        let tick = self.tick(self.next);
        self.next += 1;
        Some(tick)
    }

    /// The latest due tick at `now`, skipping (and counting) older ones still pending: a
    /// late producer drops frames instead of falling further behind.
    pub fn poll_latest(&mut self, now: Duration) -> Option<Tick> {
        if now < self.next_due() {
            return None;
        }
        let elapsed = now.as_nanos() as u64;
        let latest = (elapsed.saturating_mul(self.per_second) / 1_000_000_000).max(self.next);
        self.skipped += latest - self.next;
        self.next = latest + 1;
        Some(self.tick(latest))
    }

    /// Ticks skipped by [`FrameClock::poll_latest`].
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn thirty_fps_ticks_on_time() {
        let mut clock = FrameClock::new(30, 90_000);
        assert_eq!(clock.poll_latest(ms(0)), Some(Tick { index: 0, pts: 0 }));
        assert_eq!(clock.poll_latest(ms(10)), None);
        assert_eq!(clock.next_due(), Duration::from_nanos(33_333_333));
        assert_eq!(
            clock.poll_latest(ms(34)),
            Some(Tick {
                index: 1,
                pts: 3000
            })
        );
        assert_eq!(clock.skipped(), 0);
    }

    #[test]
    fn a_late_video_tick_skips_to_the_latest_and_counts_the_drops() {
        let mut clock = FrameClock::new(30, 90_000);
        clock.poll_latest(ms(0));
        // 200 ms late: ticks 1..=5 are stale, tick 6 (200 ms) is the one to make.
        let tick = clock.poll_latest(ms(200)).unwrap();
        assert_eq!(tick.index, 6);
        assert_eq!(tick.pts, 18_000);
        assert_eq!(clock.skipped(), 5);
        assert_eq!(clock.poll_latest(ms(210)), None);
    }

    #[test]
    fn audio_ticks_are_never_skipped() {
        let mut clock = FrameClock::new(50, 48_000);
        let mut pts = Vec::new();
        while let Some(t) = clock.poll(ms(95)) {
            pts.push(t.pts);
        }
        assert_eq!(pts, vec![0, 960, 1920, 2880, 3840]);
        assert_eq!(clock.next_due(), ms(100));
        assert_eq!(clock.skipped(), 0);
    }
}
