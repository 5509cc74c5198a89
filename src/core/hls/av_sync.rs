//! Audio/video alignment from RTCP sender reports (egress path: publisher SRs -> here ->
//! `SourceClock` anchors of the HLS tap). A sender report pairs the sender's NTP wallclock
//! with the RTP timestamp of the same instant (RFC 3550 §6.4.1); with one per track, RTP
//! timestamps of audio and video map onto one wallclock, so samples captured together are
//! placed together even when one track's packets travel or start later. Pure.

/// Why a sender report was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SenderReportError {
    /// NTP timestamp zero: the sender has no wallclock (RFC 3550 §6.4.1).
    #[error("sender report without a wallclock")]
    NoWallclock,
    /// The wallclock went backwards or stood still since the previous report.
    #[error("sender report wallclock did not advance")]
    NotAdvancing,
    /// Its RTP timestamp advanced at a rate far from the codec clock since the previous one.
    #[error("sender report RTP clock off by more than 5 %")]
    RateMismatch,
}

/// Nanoseconds of a 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
pub fn ntp_to_ns(ntp: u64) -> i128 {
    let secs = i128::from(ntp >> 32);
    let frac = i128::from(ntp & 0xffff_ffff);
    secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)
}

/// One track's RTP clock against the sender's wallclock, from its latest usable report.
#[derive(Debug, Clone)]
pub struct SenderClock {
    rate: u32,
    last: Option<(i128, u32)>,
}

impl SenderClock {
    /// A track whose RTP clock runs at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        Self { rate, last: None }
    }

    /// A report arrived: `ntp` (64-bit NTP) and `rtp` of the same instant. Bad reports are
    /// refused and the previous one stays in use.
    pub fn report(&mut self, ntp: u64, rtp: u32) -> Result<(), SenderReportError> {
        if ntp == 0 {
            return Err(SenderReportError::NoWallclock);
        }
        let ns = ntp_to_ns(ntp);
        if let Some((prev_ns, prev_rtp)) = self.last {
            let dt = ns - prev_ns;
            if dt <= 0 {
                return Err(SenderReportError::NotAdvancing);
            }
            // Over at least 200 ms the RTP clock must match its rate within 5 %.
            if dt >= 200_000_000 {
                let ticks = i128::from(rtp.wrapping_sub(prev_rtp) as i32);
                let expected = dt * i128::from(self.rate) / 1_000_000_000;
                if (ticks - expected).abs() * 20 > expected {
                    return Err(SenderReportError::RateMismatch);
                }
            }
        }
        self.last = Some((ns, rtp));
        Ok(())
    }

    /// The sender's wallclock (ns since 1900) at RTP timestamp `rtp` (its low 32 bits; exact
    /// across wraps within ±2³¹ ticks of the report).
    pub fn wallclock(&self, rtp: u64) -> Option<i128> {
        let (ns, at) = self.last?;
        let ticks = i128::from((rtp as u32).wrapping_sub(at) as i32);
        Some(ns + ticks * 1_000_000_000 / i128::from(self.rate))
    }
}

/// Both tracks' sender clocks.
#[derive(Debug, Clone)]
pub struct AvSync {
    /// Video (90 kHz).
    pub video: SenderClock,
    /// Audio (Opus, 48 kHz).
    pub audio: SenderClock,
}

impl Default for AvSync {
    fn default() -> Self {
        Self {
            video: SenderClock::new(90_000),
            audio: SenderClock::new(48_000),
        }
    }
}

impl AvSync {
    /// Where audio RTP timestamp `audio_rtp` belongs (48 kHz media units) given that video RTP
    /// timestamp `video.0` is at media time `video.1` (90 kHz): the same sender wallclock.
    /// Negative for audio captured before media time zero (a microphone that starts a few ms
    /// before the camera, at the start of the timeline): the caller decides what to do with
    /// it, the alignment itself is still right. `None` until both tracks have reports.
    pub fn audio_media(&self, video: (u64, u64), audio_rtp: u64) -> Option<i64> {
        let wv = self.video.wallclock(video.0)?;
        let wa = self.audio.wallclock(audio_rtp)?;
        let media_90k = i128::from(video.1) + (wa - wv) * 90_000 / 1_000_000_000;
        i64::try_from((media_90k * 8).div_euclid(15)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NTP of `ms` milliseconds after some wallclock origin.
    fn ntp(ms: u64) -> u64 {
        let base = 3_900_000_000u64 << 32;
        base + (ms << 32) / 1000
    }

    #[test]
    fn ntp_converts_to_nanoseconds() {
        assert_eq!(ntp_to_ns(1 << 32), 1_000_000_000);
        assert_eq!(ntp_to_ns((1 << 32) | (1 << 31)), 1_500_000_000);
    }

    #[test]
    fn tracks_line_up_on_the_senders_wallclock() {
        let mut s = AvSync::default();
        // Video RTP 1_000_000 and audio RTP 5_000 were captured at wallclock 10 s.
        s.video.report(ntp(10_000), 1_000_000).unwrap();
        s.audio.report(ntp(10_000), 5_000).unwrap();
        // Video ts 1_000_000 sits at media 900_000 (10 s): audio captured then goes there too.
        assert_eq!(s.audio_media((1_000_000, 900_000), 5_000), Some(480_000));
        // Audio captured 500 ms later lands 500 ms later, whenever it arrives.
        assert_eq!(
            s.audio_media((1_000_000, 900_000), 5_000 + 24_000),
            Some(480_000 + 24_000)
        );
        // Video timestamps before the report map backwards from it.
        assert_eq!(
            s.audio_media((1_000_000 - 90_000, 900_000), 5_000),
            Some(528_000)
        );
    }

    #[test]
    fn rtp_wraps_between_the_report_and_the_packet() {
        let mut s = AvSync::default();
        s.video.report(ntp(1_000), u32::MAX - 899).unwrap();
        s.audio.report(ntp(1_000), u32::MAX - 479).unwrap();
        // 10 ms later both have wrapped; extended timestamps carry the wrap in bit 32.
        assert_eq!(s.audio_media((1 << 32, 90_000), 1 << 32), Some(48_000));
    }

    #[test]
    fn no_alignment_without_both_reports() {
        let mut s = AvSync::default();
        assert_eq!(s.audio_media((0, 0), 0), None);
        s.video.report(ntp(5_000), 0).unwrap();
        assert_eq!(s.audio_media((0, 0), 0), None);
        s.audio.report(ntp(5_000), 0).unwrap();
        assert_eq!(s.audio_media((0, 0), 0), Some(0));
    }

    #[test]
    fn audio_captured_before_time_zero_is_placed_before_it() {
        let mut s = AvSync::default();
        // The microphone's first packet was captured 2.5 ms before the camera's first frame,
        // which sits at media time zero: it belongs 120 ticks (48 kHz) before zero, and the
        // packets after it keep that same offset.
        s.video.report(ntp(5_000), 0).unwrap();
        s.audio.report(ntp(5_000), 120).unwrap();
        assert_eq!(s.audio_media((0, 0), 0), Some(-120));
        assert_eq!(s.audio_media((0, 0), 960), Some(840));
        // A second early.
        let mut s = AvSync::default();
        s.video.report(ntp(5_000), 0).unwrap();
        s.audio.report(ntp(4_000), 0).unwrap();
        assert_eq!(s.audio_media((0, 0), 0), Some(-48_000));
    }

    #[test]
    fn bad_reports_are_refused_and_the_last_good_one_kept() {
        let mut c = SenderClock::new(90_000);
        assert_eq!(c.report(0, 1), Err(SenderReportError::NoWallclock));
        c.report(ntp(1_000), 0).unwrap();
        assert_eq!(
            c.report(ntp(1_000), 10),
            Err(SenderReportError::NotAdvancing)
        );
        assert_eq!(c.report(ntp(500), 10), Err(SenderReportError::NotAdvancing));
        // One second later the RTP clock moved half a second: not a 90 kHz clock.
        assert_eq!(
            c.report(ntp(2_000), 45_000),
            Err(SenderReportError::RateMismatch)
        );
        assert_eq!(c.wallclock(90_000), Some(ntp_to_ns(ntp(2_000))));
        // A plausible one (1 % off) replaces it.
        c.report(ntp(2_000), 90_900).unwrap();
        assert_eq!(c.wallclock(90_900), Some(ntp_to_ns(ntp(2_000))));
    }
}
