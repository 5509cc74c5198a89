//! Upstream keyframe-request policy, per published video track (media path: viewers and the
//! HLS tap -> `ingest::Publisher`). Pure: time is passed in.

use std::time::{Duration, Instant};

/// Decides when a Picture Loss Indication (RFC 4585 §6.3.1) goes to a publisher.
///
/// - **Rate bound**: at most one PLI per `min_interval` (RFC 4585 §3 limits how often feedback
///   may be sent), so the keyframes requested for joining viewers never exceed that rate,
///   however many join.
/// - **Coalescing**: a sent PLI is *outstanding* until a keyframe starts
///   ([`PliThrottle::keyframe_seen`]), or until `2 × min_interval` passes without one (the PLI
///   or its keyframe was lost). A request meanwhile needs no PLI of its own: the keyframe on
///   its way reaches every consumer that subscribed before asking. A burst costs one keyframe.
/// - **No full-interval wait after a keyframe went by**: a request that arrives once the last
///   keyframe has passed is sent as soon as the rate bound allows, counted from the last PLI
///   (not from the request), so a newcomer waits at most one policy step; any keyframe that
///   starts meanwhile (the publisher's periodic one too) satisfies it without a PLI.
#[derive(Debug, Clone)]
pub struct PliThrottle {
    min_interval: Duration,
    last_sent: Option<Instant>,
    /// A PLI was sent and no keyframe has started since.
    outstanding: bool,
    /// A consumer waits for a keyframe newer than any that has started so far.
    pending: bool,
}

impl PliThrottle {
    /// A policy that sends at most one PLI per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            outstanding: false,
            pending: false,
        }
    }

    /// Ask for a keyframe: true means send a PLI now; false means the request is covered by
    /// an outstanding PLI or deferred until [`PliThrottle::poll_timeout`].
    pub fn request(&mut self, now: Instant) -> bool {
        self.pending = true;
        self.poll(now)
    }

    /// A keyframe started (the first packet of an IDR picture or its SPS): it serves every
    /// consumer waiting so far.
    pub fn keyframe_seen(&mut self) {
        self.outstanding = false;
        self.pending = false;
    }

    /// True once when a waiting request may now be sent (the caller sends the PLI).
    pub fn poll(&mut self, now: Instant) -> bool {
        let due = self.pending
            && self
                .last_sent
                .is_none_or(|last| now.saturating_duration_since(last) >= self.wait());
        if due {
            self.last_sent = Some(now);
            self.outstanding = true;
            self.pending = false;
        }
        due
    }

    /// When [`PliThrottle::poll`] will send, if a request is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        let last = self.last_sent?;
        Some(last.checked_add(self.wait()).unwrap_or(last))
    }

    /// Whether a request waits for a keyframe (covered by an outstanding PLI, or deferred).
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Whether a sent PLI has not been answered by a keyframe yet.
    pub fn is_outstanding(&self) -> bool {
        self.outstanding
    }

    /// How long after the last PLI the next may go.
    fn wait(&self) -> Duration {
        if self.outstanding {
            // Its keyframe is on its way; ask again only once it looks lost.
            self.min_interval.saturating_mul(2)
        } else {
            self.min_interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_while_outstanding_costs_one_pli() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(300));
        let mut sent = 0;
        for i in 0..100u64 {
            if p.request(t0 + Duration::from_micros(i * 300)) {
                sent += 1;
            }
        }
        assert_eq!(sent, 1);
        assert!(p.is_outstanding());
        p.keyframe_seen();
        assert!(!p.is_pending(), "the keyframe served the whole burst");
        assert_eq!(p.poll_timeout(), None);
        assert!(!p.poll(ms(t0, 5000)), "no second PLI after the burst");
    }

    #[test]
    fn newcomer_after_the_keyframe_is_served_within_one_step() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(300));
        assert!(p.request(t0));
        p.keyframe_seen(); // at t0 + 40 ms
        assert!(!p.request(ms(t0, 60)), "inside the step: deferred");
        assert_eq!(
            p.poll_timeout(),
            Some(ms(t0, 300)),
            "one step from the last PLI"
        );
        assert!(!p.poll(ms(t0, 299)));
        assert!(p.poll(ms(t0, 300)));
        assert!(p.is_outstanding());
    }

    #[test]
    fn a_periodic_keyframe_serves_a_deferred_request() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(300));
        assert!(p.request(t0));
        p.keyframe_seen();
        assert!(!p.request(ms(t0, 100)));
        p.keyframe_seen(); // the publisher's own IDR at t0 + 150 ms
        assert!(!p.poll(ms(t0, 300)), "nothing left to ask for");
    }

    #[test]
    fn lost_pli_is_retried_after_two_steps() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(300));
        assert!(p.request(t0));
        assert!(!p.request(ms(t0, 350)), "covered by the outstanding PLI");
        assert_eq!(p.poll_timeout(), Some(ms(t0, 600)));
        assert!(!p.poll(ms(t0, 599)));
        assert!(p.poll(ms(t0, 600)), "no keyframe came: ask again");
    }

    #[test]
    fn a_lone_request_goes_out_at_once() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(300));
        assert!(p.request(t0));
        p.keyframe_seen();
        assert!(p.request(ms(t0, 300)));
        p.keyframe_seen();
        assert!(p.request(ms(t0, 5000)));
        assert!(!p.poll(ms(t0, 9000)), "nothing pending, nothing to send");
    }

    /// Viewers join every 20 ms for 10 s and the publisher answers each PLI 40 ms later:
    /// PLIs stay within one per interval, and every viewer gets a keyframe within one step
    /// (plus the answer time) of asking.
    #[test]
    fn churn_keeps_the_keyframe_rate_bounded_and_serves_everyone() {
        let t0 = Instant::now();
        let step = Duration::from_millis(300);
        let answer = Duration::from_millis(40);
        let mut p = PliThrottle::new(step);
        let mut plis: Vec<Instant> = Vec::new();
        let mut keyframes: Vec<Instant> = Vec::new();
        let mut waiting: Vec<Instant> = Vec::new();
        let mut worst = Duration::ZERO;
        for tick in 0..10_000u64 {
            let now = ms(t0, tick);
            if let Some(sent) = plis.last()
                && now == *sent + answer
            {
                p.keyframe_seen();
                keyframes.push(now);
                for asked in waiting.drain(..) {
                    worst = worst.max(now - asked);
                }
            }
            if tick % 20 == 0 {
                waiting.push(now);
                if p.request(now) {
                    plis.push(now);
                }
            }
            if p.poll(now) {
                plis.push(now);
            }
        }
        for pair in plis.windows(2) {
            assert!(pair[1] - pair[0] >= step, "rate bound kept");
        }
        assert!(plis.len() as u64 <= 10_000 / 300 + 1);
        assert!(worst <= step + answer, "served within one step: {worst:?}");
        assert_eq!(keyframes.len(), plis.len(), "one keyframe per PLI");
    }

    #[test]
    fn clock_going_backwards_defers() {
        let t0 = Instant::now();
        let mut p = PliThrottle::new(Duration::from_millis(500));
        assert!(p.request(ms(t0, 1000)));
        p.keyframe_seen();
        assert!(!p.request(t0));
        assert!(p.is_pending());
    }
}
