//! Audio/video alignment for the HLS tap (egress path: extended RTP timestamps of one publisher
//! session -> the room's media timeline): each track is anchored at the arrival time of its
//! first packet, so audio and video captured together land together, and a new publisher
//! session continues the timeline where the previous one ended. Pure: arrival times are
//! passed in.

use std::time::Duration;

/// Media timeline clock (90 kHz, like H.264 RTP).
pub const MEDIA_CLOCK: u64 = 90_000;

#[derive(Debug, Clone, Copy)]
struct Anchor {
    rtp: u64,
    media: u64,
}

/// Maps the timestamps of one publisher session onto the media timeline.
#[derive(Debug, Clone)]
pub struct SourceClock {
    origin_media: u64,
    origin_at: Option<Duration>,
    video: Option<Anchor>,
    audio: Option<Anchor>,
}

impl SourceClock {
    /// A session whose first packet lands at `origin_media` (90 kHz) on the timeline.
    pub fn new(origin_media: u64) -> Self {
        Self {
            origin_media,
            origin_at: None,
            video: None,
            audio: None,
        }
    }

    /// The arrival time that maps to `origin_media`, once a packet has arrived.
    pub fn origin_at(&self) -> Option<Duration> {
        self.origin_at
    }

    /// Media time (90 kHz) of a video packet with extended RTP timestamp `rtp` (90 kHz)
    /// arriving at `now`.
    pub fn video(&mut self, rtp: u64, now: Duration) -> u64 {
        let media = self.arrival_90k(now);
        shift(*self.video.get_or_insert(Anchor { rtp, media }), rtp)
    }

    /// Media time in 48 kHz units of an audio packet with extended RTP timestamp `rtp`
    /// (48 kHz) arriving at `now`.
    pub fn audio(&mut self, rtp: u64, now: Duration) -> u64 {
        let media = self.arrival_90k(now) * 8 / 15;
        shift(*self.audio.get_or_insert(Anchor { rtp, media }), rtp)
    }

    /// Where an arrival at `now` lands on the 90 kHz timeline.
    fn arrival_90k(&mut self, now: Duration) -> u64 {
        let origin = *self.origin_at.get_or_insert(now);
        let elapsed = now.saturating_sub(origin);
        self.origin_media + (elapsed.as_nanos() * u128::from(MEDIA_CLOCK) / 1_000_000_000) as u64
    }
}

/// `anchor.media + (rtp - anchor.rtp)`, never below zero (packets older than the anchor are
/// clamped to it).
fn shift(anchor: Anchor, rtp: u64) -> u64 {
    let media = anchor.media as i128 + (rtp as i128 - anchor.rtp as i128);
    media.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn tracks_arriving_together_line_up() {
        let mut c = SourceClock::new(900_000);
        // Video first at t = 1 s, audio 40 ms later, each with a random RTP origin.
        let v0 = c.video(5_000_000, 1000 * MS);
        let a0 = c.audio(77_000, 1040 * MS);
        assert_eq!(v0, 900_000);
        assert_eq!(a0, (900_000 + 3600) * 8 / 15, "audio 40 ms after video");
        // Later packets follow their RTP clocks, not arrival jitter.
        assert_eq!(c.video(5_000_000 + 9000, 1200 * MS), 909_000);
        assert_eq!(c.audio(77_000 + 960, 1200 * MS), a0 + 960);
        assert_eq!(c.origin_at(), Some(1000 * MS));
    }

    #[test]
    fn packets_older_than_the_anchor_do_not_go_negative() {
        let mut c = SourceClock::new(0);
        assert_eq!(c.video(10_000, Duration::ZERO), 0);
        assert_eq!(c.video(7_000, Duration::ZERO), 0);
    }
}
