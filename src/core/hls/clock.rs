//! Audio/video alignment for the HLS tap (egress path: extended RTP timestamps of one publisher
//! session -> the room's media timeline): each track is anchored at the arrival time of its
//! first packet, so audio and video captured together land together, and a new publisher
//! session continues the timeline where the previous one ended. Once both tracks have RTCP
//! sender reports (RFC 3550 §6.4.1), audio is re-anchored against video on the sender's
//! wallclock ([`super::av_sync`]); the Opus timeline drops what would overlap and fills what
//! would gap, so media times stay monotonic. Audio the reports place before media time zero
//! (captured just before the session's first video frame, at the start of the timeline) is
//! left out rather than piled up at zero. Pure: arrival times are passed in.

use std::time::Duration;

use super::av_sync::{AvSync, SenderReportError};

/// Media timeline clock (90 kHz, like H.264 RTP).
pub const MEDIA_CLOCK: u64 = 90_000;
/// Largest correction sender reports may make to the arrival-time alignment (48 kHz, 2 s);
/// reports implying more are taken as wrong.
const MAX_SR_SHIFT: u64 = 96_000;
/// Smaller differences between the current and the report-derived audio anchor are left
/// alone (48 kHz, 10 ms): re-anchoring costs a dropped or filled packet.
const MIN_SR_SHIFT: u64 = 480;

/// RTP timestamp `rtp` sits at `media` on the timeline. Signed: the sender reports may put
/// an audio anchor (the session's first packet) a little before time zero.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    rtp: u64,
    media: i64,
}

/// Maps the timestamps of one publisher session onto the media timeline.
#[derive(Debug, Clone)]
pub struct SourceClock {
    origin_media: u64,
    origin_at: Option<Duration>,
    video: Option<Anchor>,
    audio: Option<Anchor>,
    sync: AvSync,
}

/// What a sender report did to the alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncChange {
    /// Nothing to do yet (one track has no report or no packet), or already aligned.
    None,
    /// Audio moved by this many 48 kHz ticks (negative: earlier).
    AudioShifted(i64),
    /// The reports disagree with arrival times by more than 2 s; arrival alignment is kept.
    Implausible(i64),
}

impl SourceClock {
    /// A session whose first packet lands at `origin_media` (90 kHz) on the timeline.
    pub fn new(origin_media: u64) -> Self {
        Self {
            origin_media,
            origin_at: None,
            video: None,
            audio: None,
            sync: AvSync::default(),
        }
    }

    /// An RTCP sender report of the video (`audio` false) or audio track: `ntp` (64-bit NTP)
    /// and `rtp` of one instant. Re-anchors audio on the sender's wallclock when it can.
    pub fn sender_report(
        &mut self,
        audio: bool,
        ntp: u64,
        rtp: u32,
    ) -> Result<SyncChange, SenderReportError> {
        if audio {
            self.sync.audio.report(ntp, rtp)?;
        } else {
            self.sync.video.report(ntp, rtp)?;
        }
        let (Some(video), Some(audio)) = (self.video, self.audio) else {
            return Ok(SyncChange::None);
        };
        // Video anchors are arrival times: never negative.
        let video_at = (video.rtp, video.media as u64);
        let Some(media) = self.sync.audio_media(video_at, audio.rtp) else {
            return Ok(SyncChange::None);
        };
        let shift = media - audio.media;
        if shift.unsigned_abs() > MAX_SR_SHIFT {
            return Ok(SyncChange::Implausible(shift));
        }
        if shift.unsigned_abs() < MIN_SR_SHIFT {
            return Ok(SyncChange::None);
        }
        self.audio = Some(Anchor {
            rtp: audio.rtp,
            media,
        });
        Ok(SyncChange::AudioShifted(shift))
    }

    /// The arrival time that maps to `origin_media`, once a packet has arrived.
    pub fn origin_at(&self) -> Option<Duration> {
        self.origin_at
    }

    /// Media time (90 kHz) of a video packet with extended RTP timestamp `rtp` (90 kHz)
    /// arriving at `now`.
    pub fn video(&mut self, rtp: u64, now: Duration) -> u64 {
        let media = self.arrival_90k(now) as i64;
        shift(*self.video.get_or_insert(Anchor { rtp, media }), rtp).max(0) as u64
    }

    /// Media time in 48 kHz units of an audio packet with extended RTP timestamp `rtp`
    /// (48 kHz) arriving at `now`; `None` for audio that belongs before media time zero (the
    /// sender reports say it was captured before the session's first video frame, and the
    /// timeline starts there).
    pub fn audio(&mut self, rtp: u64, now: Duration) -> Option<u64> {
        let arrival = (self.arrival_90k(now) * 8 / 15) as i64;
        if self.audio.is_none() {
            // With both tracks' reports in already, the first packet is placed by them.
            let by_reports = self
                .video
                .and_then(|v| self.sync.audio_media((v.rtp, v.media as u64), rtp))
                .filter(|m| m.abs_diff(arrival) <= MAX_SR_SHIFT);
            self.audio = Some(Anchor {
                rtp,
                media: by_reports.unwrap_or(arrival),
            });
        }
        u64::try_from(shift(self.audio.expect("anchored above"), rtp)).ok()
    }

    /// Where an arrival at `now` lands on the 90 kHz timeline.
    fn arrival_90k(&mut self, now: Duration) -> u64 {
        let origin = *self.origin_at.get_or_insert(now);
        let elapsed = now.saturating_sub(origin);
        self.origin_media + (elapsed.as_nanos() * u128::from(MEDIA_CLOCK) / 1_000_000_000) as u64
    }
}

/// `anchor.media + (rtp - anchor.rtp)`.
fn shift(anchor: Anchor, rtp: u64) -> i64 {
    let media = i128::from(anchor.media) + (i128::from(rtp) - i128::from(anchor.rtp));
    media.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
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
        let a0 = c.audio(77_000, 1040 * MS).unwrap();
        assert_eq!(v0, 900_000);
        assert_eq!(a0, (900_000 + 3600) * 8 / 15, "audio 40 ms after video");
        // Later packets follow their RTP clocks, not arrival jitter.
        assert_eq!(c.video(5_000_000 + 9000, 1200 * MS), 909_000);
        assert_eq!(c.audio(77_000 + 960, 1200 * MS), Some(a0 + 960));
        assert_eq!(c.origin_at(), Some(1000 * MS));
    }

    /// NTP at `ms` on the sender's wallclock.
    fn ntp(ms: u64) -> u64 {
        (3_900_000_000u64 << 32) + (ms << 32) / 1000
    }

    #[test]
    fn late_audio_is_moved_back_to_when_it_was_captured() {
        // Audio packets travel 300 ms longer than video; both start capturing at wallclock 0.
        let mut c = SourceClock::new(0);
        assert_eq!(c.video(1_000, Duration::ZERO), 0);
        let a0 = c.audio(50_000, 300 * MS);
        assert_eq!(a0, Some(300 * 48), "arrival time places it 300 ms late");
        // One second in, the sender reports arrive (SR after the first samples).
        let change = c.sender_report(false, ntp(1_000), 1_000 + 90_000).unwrap();
        assert_eq!(change, SyncChange::None, "audio has no report yet");
        let change = c.sender_report(true, ntp(1_000), 50_000 + 48_000).unwrap();
        assert_eq!(change, SyncChange::AudioShifted(-14_400));
        // Audio captured at 1 s now sits with video captured at 1 s.
        assert_eq!(c.audio(50_000 + 48_000, 1_300 * MS), Some(48_000));
        assert_eq!(c.video(1_000 + 90_000, 1_000 * MS), 90_000);
        // The next report says the same: nothing moves.
        let again = c.sender_report(true, ntp(2_000), 50_000 + 96_000).unwrap();
        assert_eq!(again, SyncChange::None);
    }

    #[test]
    fn reports_before_the_first_audio_packet_place_it() {
        let mut c = SourceClock::new(9_000);
        c.video(0, Duration::ZERO);
        c.sender_report(false, ntp(0), 0).unwrap();
        c.sender_report(true, ntp(0), 7).unwrap();
        // Captured 100 ms after video's first frame, arriving 400 ms after it.
        assert_eq!(c.audio(7 + 4_800, 400 * MS), Some((9_000 + 9_000) * 8 / 15));
    }

    /// A publisher whose microphone starts 2.5 ms before its camera and whose first 700 ms
    /// of audio reach the tap in one late burst (`PublishOptions::audio_hold`): `(video
    /// clock, the reports of both tracks at wallclock 1 s)`, video arriving from t = 0 and
    /// placed at media time 0, its RTP and the audio RTP starting at random offsets.
    fn late_burst_session() -> (SourceClock, [(bool, u64, u32); 2]) {
        const V0: u64 = 3_000_000_000;
        let mut c = SourceClock::new(0);
        for frame in 0..21u32 {
            let rtp = V0 + u64::from(frame) * 3_000;
            assert_eq!(c.video(rtp, frame * 33 * MS), u64::from(frame) * 3_000);
        }
        // Wallclock 0 is the camera's first frame; audio RTP A0 was captured at -2.5 ms.
        let reports = [
            (false, ntp(1_000), (V0 + 90_000) as u32),
            (true, ntp(1_000), (A0 + 120 + 48_000) as u32),
        ];
        (c, reports)
    }

    const A0: u64 = 4_200_000_000;

    #[test]
    fn reports_before_a_late_burst_place_it_with_the_video_captured_with_it() {
        let (mut c, reports) = late_burst_session();
        for (audio, ntp, rtp) in reports {
            assert_eq!(c.sender_report(audio, ntp, rtp), Ok(SyncChange::None));
        }
        // The burst arrives at 700 ms. Its first packet belongs 2.5 ms before time zero: left
        // out, not piled up at zero (nor, as before, the whole session placed by arrival).
        assert_eq!(c.audio(A0, 700 * MS), None);
        // The next ones sit with the video captured with them, 700 ms before they arrived.
        assert_eq!(c.audio(A0 + 960, 700 * MS), Some(840));
        assert_eq!(c.audio(A0 + 34 * 960, 701 * MS), Some(34 * 960 - 120));
        // Live packets after the burst keep that place; the reports that follow agree.
        assert_eq!(c.audio(A0 + 60 * 960, 1_200 * MS), Some(60 * 960 - 120));
        let again = c
            .sender_report(true, ntp(2_000), (A0 + 120 + 96_000) as u32)
            .unwrap();
        assert_eq!(again, SyncChange::None);
        assert_eq!(c.audio(A0 + 100 * 960, 2_000 * MS), Some(100 * 960 - 120));
    }

    #[test]
    fn reports_after_a_late_burst_move_it_back_even_from_before_time_zero() {
        let (mut c, reports) = late_burst_session();
        // By arrival, the burst sits 700 ms late.
        assert_eq!(c.audio(A0, 700 * MS), Some(700 * 48));
        assert_eq!(c.audio(A0 + 960, 700 * MS), Some(700 * 48 + 960));
        assert_eq!(
            c.sender_report(reports[0].0, reports[0].1, reports[0].2),
            Ok(SyncChange::None)
        );
        // The reports put the first packet 2.5 ms before time zero: still a 702.5 ms shift.
        let change = c.sender_report(reports[1].0, reports[1].1, reports[1].2);
        assert_eq!(change, Ok(SyncChange::AudioShifted(-(700 * 48 + 120))));
        assert_eq!(c.audio(A0 + 50 * 960, 1_000 * MS), Some(50 * 960 - 120));
    }

    #[test]
    fn implausible_and_bad_reports_keep_arrival_alignment() {
        let mut c = SourceClock::new(0);
        c.video(0, Duration::ZERO);
        c.audio(0, Duration::ZERO);
        c.sender_report(false, ntp(10_000), 0).unwrap();
        // Audio's wallclock claims a 5 s offset: not believed.
        let change = c.sender_report(true, ntp(15_000), 0).unwrap();
        assert_eq!(change, SyncChange::Implausible(240_000));
        assert_eq!(c.audio(960, 20 * MS), Some(960));
        assert!(c.sender_report(true, 0, 0).is_err());
    }

    #[test]
    fn packets_older_than_the_anchor_do_not_go_negative() {
        let mut c = SourceClock::new(0);
        assert_eq!(c.video(10_000, Duration::ZERO), 0);
        assert_eq!(c.video(7_000, Duration::ZERO), 0);
    }
}
