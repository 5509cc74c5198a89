//! Upstream keyframe-request rate limiting, per published video track (media path: viewers and
//! the HLS tap -> `ingest::Publisher`). Pure: time is passed in.

use std::time::{Duration, Instant};

/// Rate-limits Picture Loss Indication requests (RFC 4585 §6.3.1) sent to a publisher.
///
/// At most one PLI per `min_interval` (RFC 4585 §3 limits how often feedback may be sent);
/// a request inside the interval is remembered and comes out of [`PliThrottle::poll`] once the
/// interval has passed, so no request is lost and a burst costs at most two PLIs.
#[derive(Debug, Clone)]
pub struct PliThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl PliThrottle {
    /// A throttle that allows one PLI per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            pending: false,
        }
    }

    /// Ask for a keyframe: true means send a PLI now; false means it is deferred (pending).
    pub fn request(&mut self, now: Instant) -> bool {
        if self.interval_passed(now) {
            self.last_sent = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// True once when a deferred request may now be sent (the caller sends the PLI).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.pending && self.interval_passed(now) {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }

    /// When [`PliThrottle::poll`] should be called next, if a request is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        let last = self.last_sent?;
        Some(last.checked_add(self.min_interval).unwrap_or(last))
    }

    /// Whether a deferred request is waiting.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    fn interval_passed(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn burst_gives_one_immediate_and_one_deferred() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        let mut immediate = 0;
        for i in 0..100u64 {
            if p.request(t0 + Duration::from_micros(i * 500)) {
                immediate += 1;
            }
        }
        assert_eq!(immediate, 1);
        assert_eq!(p.poll_timeout(), Some(ms(t0, 500)));
        let mut deferred = 0;
        for step in 0..200u64 {
            if p.poll(ms(t0, 50 + step * 10)) {
                deferred += 1;
                assert!(step * 10 + 50 >= 500, "not before the interval");
            }
        }
        assert_eq!(deferred, 1);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn spaced_requests_all_go_out() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.request(t0));
        assert!(p.request(ms(t0, 500)));
        assert!(p.request(ms(t0, 1200)));
        assert!(!p.is_pending());
        assert!(!p.poll(ms(t0, 5000)), "nothing pending, nothing to send");
    }

    #[test]
    fn deferred_send_restarts_the_interval() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.request(t0));
        assert!(!p.request(ms(t0, 100)));
        assert!(!p.poll(ms(t0, 499)));
        assert!(p.poll(ms(t0, 600)));
        assert!(!p.request(ms(t0, 700)), "600 + 500 not reached");
        assert_eq!(p.poll_timeout(), Some(ms(t0, 1100)));
    }

    #[test]
    fn direct_request_after_interval_clears_pending() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.request(t0));
        assert!(!p.request(ms(t0, 10)));
        assert!(p.request(ms(t0, 800)));
        assert!(!p.poll(ms(t0, 2000)), "the pending one was satisfied");
    }

    #[test]
    fn clock_going_backwards_defers() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.request(ms(t0, 1000)));
        assert!(!p.request(t0));
        assert!(p.is_pending());
    }
}
