//! The LL-HLS segmenter (egress path: access units and Opus packets on the media timeline ->
//! here -> fMP4 parts for the `HlsStore`, samples for the recorder): ~200 ms parts within
//! [0.85, 1.0] x PART-TARGET (RFC 8216bis §4.4.4.9; independent and final parts may be
//! shorter), segments starting on an IDR once the segment target is reached (asking for one
//! ahead of time), never rounding above TARGETDURATION (§6.2.1), audio segments cut where
//! video cuts. Video leads; audio is released in timestamp order behind it. Pure.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{HlsTiming, Rendition};
use crate::core::fmp4::{
    AUDIO_TIMESCALE, AUDIO_TRACK_ID, Sample, TrackRun, VIDEO_TIMESCALE, VIDEO_TRACK_ID, fragment,
};
use crate::core::opus::{OpusError, OpusSample, OpusTimeline};

/// Longest decode duration given to one video frame; a longer pause leaves a gap instead.
const MAX_FRAME_DURATION: u64 = VIDEO_TIMESCALE as u64 / 2;
/// Audio waits at most this long (90 kHz) for video before it is released alone.
const AUDIO_WAIT: u64 = VIDEO_TIMESCALE as u64;
/// At a segment cut, audio that stopped more than this long ago (90 kHz) is filled with
/// silence up to the cut, so both renditions keep the same segments.
const AUDIO_FILL_AFTER: u64 = VIDEO_TIMESCALE as u64 / 2;
/// Audio packets kept while waiting for the first IDR.
const MAX_AUDIO_QUEUE: usize = 500;
/// Keyframe requests are repeated at most this often (90 kHz) while one is wanted.
const KEYFRAME_RETRY: u64 = VIDEO_TIMESCALE as u64 / 2;

fn us_to(units: u32, d: std::time::Duration) -> u64 {
    (d.as_micros() * u128::from(units) / 1_000_000) as u64
}

fn audio_to_90k(t: u64) -> u64 {
    t * 15 / 8
}

/// A finished part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOut {
    /// Which playlist.
    pub rendition: Rendition,
    /// Parent segment.
    pub msn: u64,
    /// Index inside it.
    pub index: u32,
    /// Decode time of its first sample (track timescale).
    pub start: u64,
    /// Duration (track timescale).
    pub duration: u64,
    /// 90 000 or 48 000.
    pub timescale: u32,
    /// Starts with a sync sample (`INDEPENDENT=YES`).
    pub independent: bool,
    /// First part of a segment that follows a discontinuity.
    pub discontinuity: bool,
    /// `moof` + `mdat`.
    pub fragment: Vec<u8>,
}

/// What the segmenter asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmenterEvent {
    /// Publish a part.
    Part(PartOut),
    /// The segment `msn` of `rendition` is complete (its parts were published before).
    SegmentEnd {
        /// Which playlist.
        rendition: Rendition,
        /// Media sequence number.
        msn: u64,
        /// Duration (track timescale).
        duration: u64,
        /// 90 000 or 48 000.
        timescale: u32,
    },
    /// A sample entered a part (the recorder writes these).
    Sample {
        /// Which track.
        rendition: Rendition,
        /// Decode time (track timescale).
        decode_time: u64,
        /// The sample.
        sample: Sample,
    },
    /// Ask the publisher for an IDR (a segment is due, or the stream waits for its first).
    KeyframeWanted,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmenterStats {
    /// Video frames placed.
    pub frames: u64,
    /// Video frames dropped (before the first IDR, or going back in time).
    pub frames_dropped: u64,
    /// Segments cut without an IDR because none came in time.
    pub forced_cuts: u64,
    /// Audio packets dropped (before the first IDR, or refused).
    pub audio_dropped: u64,
    /// Parts published.
    pub parts: u64,
}

/// One rendition's part and segment in progress.
#[derive(Debug)]
struct Cutter {
    rendition: Rendition,
    track_id: u32,
    part_target: u64,
    samples: Vec<Sample>,
    part_start: u64,
    end: u64,
    part_index: u32,
    in_segment: bool,
    segment_duration: u64,
    next_discontinuity: bool,
    discontinuity: bool,
    sequence: u32,
}

impl Cutter {
    fn new(rendition: Rendition, timing: &HlsTiming) -> Self {
        let (track_id, timescale) = match rendition {
            Rendition::Video => (VIDEO_TRACK_ID, VIDEO_TIMESCALE),
            Rendition::Audio => (AUDIO_TRACK_ID, AUDIO_TIMESCALE),
        };
        Self {
            rendition,
            track_id,
            part_target: us_to(timescale, timing.part_target),
            samples: Vec::new(),
            part_start: 0,
            end: 0,
            part_index: 0,
            in_segment: false,
            segment_duration: 0,
            next_discontinuity: false,
            discontinuity: false,
            sequence: 0,
        }
    }

    fn timescale(&self) -> u32 {
        match self.rendition {
            Rendition::Video => VIDEO_TIMESCALE,
            Rendition::Audio => AUDIO_TIMESCALE,
        }
    }

    fn add(&mut self, msn: u64, time: u64, sample: Sample, out: &mut VecDeque<SegmenterEvent>) {
        if !self.samples.is_empty() && time != self.end {
            // A hole or overlap: a part is one contiguous run, so it ends here.
            self.close_part(msn, out);
        }
        if self.samples.is_empty() {
            self.part_start = time;
        }
        if !self.in_segment {
            self.in_segment = true;
            self.part_index = 0;
            self.segment_duration = 0;
            self.discontinuity = std::mem::take(&mut self.next_discontinuity);
        }
        self.end = time + u64::from(sample.duration);
        self.samples.push(sample);
    }

    /// A sample of `duration` would make the part in progress longer than PART-TARGET: the
    /// part must end before it (§4.4.4.9). Exact, since a sample is placed only once its
    /// duration is known.
    fn overflows(&self, duration: u64) -> bool {
        !self.samples.is_empty() && self.end - self.part_start + duration > self.part_target
    }

    /// When ending the part now would leave it under 85 % of PART-TARGET (and it is not
    /// independent), how much to lengthen its last sample to reach that floor, taken from
    /// the next sample of `next` duration (it then shows that much later: a few ms, once).
    fn floor_shift(&self, next: u64) -> Option<u64> {
        let first = self.samples.first()?;
        let floor = (self.part_target * 85).div_ceil(100);
        let d = self.end - self.part_start;
        let shift = floor.checked_sub(d).filter(|s| *s > 0)?;
        (!first.sync && shift < next).then_some(shift)
    }

    fn extend_last(&mut self, shift: u64) {
        if let Some(last) = self.samples.last_mut() {
            last.duration += shift as u32;
            self.end += shift;
        }
    }

    fn close_part(&mut self, msn: u64, out: &mut VecDeque<SegmenterEvent>) -> bool {
        if self.samples.is_empty() {
            return false;
        }
        let samples = std::mem::take(&mut self.samples);
        let independent = samples[0].sync;
        // The recorder gets the samples with their final durations.
        let mut time = self.part_start;
        for sample in &samples {
            out.push_back(SegmenterEvent::Sample {
                rendition: self.rendition,
                decode_time: time,
                sample: sample.clone(),
            });
            time += u64::from(sample.duration);
        }
        self.sequence = self.sequence.wrapping_add(1);
        let run = TrackRun {
            track_id: self.track_id,
            base_decode_time: self.part_start,
            samples,
        };
        let duration = run.duration();
        let Ok(bytes) = fragment(self.sequence, &[run]) else {
            return false;
        };
        out.push_back(SegmenterEvent::Part(PartOut {
            rendition: self.rendition,
            msn,
            index: self.part_index,
            start: self.part_start,
            duration,
            timescale: self.timescale(),
            independent,
            discontinuity: self.discontinuity && self.part_index == 0,
            fragment: bytes,
        }));
        self.part_index += 1;
        self.segment_duration += duration;
        true
    }

    /// Closes the part in progress and the segment; true when the segment had any part.
    fn end_segment(&mut self, msn: u64, out: &mut VecDeque<SegmenterEvent>) -> bool {
        self.close_part(msn, out);
        let had_parts = self.in_segment && self.part_index > 0;
        if had_parts {
            out.push_back(SegmenterEvent::SegmentEnd {
                rendition: self.rendition,
                msn,
                duration: self.segment_duration,
                timescale: self.timescale(),
            });
        }
        self.in_segment = false;
        self.part_index = 0;
        self.segment_duration = 0;
        had_parts
    }
}

#[derive(Debug)]
struct Pending {
    dts: u64,
    data: Bytes,
    keyframe: bool,
}

/// Cuts one room's media into parts and segments.
#[derive(Debug)]
pub struct Segmenter {
    timing: HlsTiming,
    video: Option<Cutter>,
    audio: Option<Cutter>,
    audio_timeline: OpusTimeline,
    audio_queue: VecDeque<OpusSample>,
    pending: Option<Pending>,
    frame_duration: u64,
    started: bool,
    msn: u64,
    segment_start: u64,
    keyframe_asked: Option<u64>,
    watermark: Option<u64>,
    out: VecDeque<SegmenterEvent>,
    stats: SegmenterStats,
}

impl Segmenter {
    /// A segmenter for a stream with these renditions. With video, segments follow the
    /// video's IDRs; audio-only streams cut segments by time.
    pub fn new(timing: HlsTiming, video: bool, audio: bool) -> Self {
        Self {
            video: video.then(|| Cutter::new(Rendition::Video, &timing)),
            audio: audio.then(|| Cutter::new(Rendition::Audio, &timing)),
            timing,
            audio_timeline: OpusTimeline::new(),
            audio_queue: VecDeque::new(),
            pending: None,
            frame_duration: u64::from(VIDEO_TIMESCALE) / 30,
            started: false,
            msn: 0,
            segment_start: 0,
            keyframe_asked: None,
            watermark: None,
            out: VecDeque::new(),
            stats: SegmenterStats::default(),
        }
    }

    /// The next event.
    pub fn poll(&mut self) -> Option<SegmenterEvent> {
        let event = self.out.pop_front();
        if matches!(event, Some(SegmenterEvent::Part(_))) {
            self.stats.parts += 1;
        }
        event
    }

    /// Media sequence number of the segment in progress (or the next one).
    pub fn msn(&self) -> u64 {
        self.msn
    }

    /// The counters.
    pub fn stats(&self) -> SegmenterStats {
        self.stats
    }

    /// Where a new publisher session should start on the 90 kHz timeline: after everything
    /// already placed.
    pub fn timeline_end(&self) -> u64 {
        let video = self.video.as_ref().map_or(0, |v| v.end);
        let pending = self
            .pending
            .as_ref()
            .map_or(0, |p| p.dts + self.frame_duration);
        let audio = self.audio.as_ref().map_or(0, |a| audio_to_90k(a.end));
        let queued = self
            .audio_queue
            .back()
            .map_or(0, |s| audio_to_90k(s.pts + u64::from(s.duration)));
        video.max(pending).max(audio).max(queued)
    }

    /// One access unit at decode time `dts` (90 kHz media timeline).
    pub fn push_video(&mut self, dts: u64, data: Bytes, keyframe: bool) {
        if self.video.is_none() {
            return;
        }
        if self.pending.as_ref().is_some_and(|p| dts <= p.dts) {
            // B-frames are not negotiated; a timestamp going back is a broken frame.
            self.stats.frames_dropped += 1;
            return;
        }
        if !self.started {
            if !keyframe {
                self.stats.frames_dropped += 1;
                self.want_keyframe(dts);
                return;
            }
            self.started = true;
            self.segment_start = dts;
            self.keyframe_asked = None;
            while self
                .audio_queue
                .front()
                .is_some_and(|s| audio_to_90k(s.pts) < dts)
            {
                self.audio_queue.pop_front();
                self.stats.audio_dropped += 1;
            }
            self.pending = Some(Pending {
                dts,
                data,
                keyframe,
            });
            self.watermark = Some(dts);
            self.release_audio(false);
            return;
        }
        let Some(previous) = self.pending.take() else {
            return;
        };
        // A pause longer than a part leaves a gap rather than an overlong part.
        let duration = (dts - previous.dts).min(self.max_frame_duration());
        self.frame_duration = duration;
        self.place_video(previous, duration);
        // Audio up to this frame can go: the next boundary is at it.
        self.watermark = Some(dts);
        self.release_audio(false);
        if !keyframe {
            let target = us_to(VIDEO_TIMESCALE, self.timing.segment_target);
            let lead = us_to(VIDEO_TIMESCALE, self.timing.part_target);
            if dts - self.segment_start + lead >= target {
                self.want_keyframe(dts);
            }
        }
        self.pending = Some(Pending {
            dts,
            data,
            keyframe,
        });
    }

    fn max_frame_duration(&self) -> u64 {
        us_to(VIDEO_TIMESCALE, self.timing.part_target).min(MAX_FRAME_DURATION)
    }

    /// One Opus packet at `pts` (48 kHz media timeline).
    pub fn push_audio(&mut self, pts: u64, packet: Bytes) -> Result<(), OpusError> {
        if self.audio.is_none() {
            return Ok(());
        }
        let samples = match self.audio_timeline.push(pts, packet) {
            Ok(s) => s,
            Err(e) => {
                self.stats.audio_dropped += 1;
                return Err(e);
            }
        };
        self.audio_queue.extend(samples);
        if self.video.is_some() && !self.started {
            while self.audio_queue.len() > MAX_AUDIO_QUEUE {
                self.audio_queue.pop_front();
                self.stats.audio_dropped += 1;
            }
        }
        self.release_audio(false);
        Ok(())
    }

    /// The publisher session ended: everything placed is published, and the next segment
    /// starts with a discontinuity (RFC 8216bis §6.2.1) once the next session sends an IDR.
    pub fn flush(&mut self) {
        if let Some(previous) = self.pending.take() {
            let duration = self.frame_duration;
            self.watermark = Some(previous.dts + duration);
            self.place_video(previous, duration);
        }
        self.release_audio(true);
        if let Some(end) = self.video.as_ref().filter(|v| v.in_segment).map(|v| v.end) {
            self.fill_audio_to(end);
        }
        let msn = self.msn;
        let video = self
            .video
            .as_mut()
            .is_some_and(|v| v.end_segment(msn, &mut self.out));
        let audio = self
            .audio
            .as_mut()
            .is_some_and(|a| a.end_segment(msn, &mut self.out));
        if video || audio {
            self.msn += 1;
        }
        for cutter in self.video.iter_mut().chain(self.audio.iter_mut()) {
            cutter.next_discontinuity = true;
        }
        self.started = false;
        self.watermark = None;
        self.keyframe_asked = None;
        self.segment_start = self.timeline_end();
    }

    /// Places `frame`, whose duration is now known, after deciding the boundary before it:
    /// a new segment (an IDR once half the target is reached, or any frame before EXTINF
    /// would round above TARGETDURATION, §6.2.1), a new part, or nothing.
    fn place_video(&mut self, frame: Pending, duration: u64) {
        self.watermark = Some(frame.dts);
        self.release_audio(false);
        let segment = frame.dts.saturating_sub(self.segment_start);
        let target = us_to(VIDEO_TIMESCALE, self.timing.segment_target);
        let hard_limit = (self.timing.target_duration * 2 + 1) * u64::from(VIDEO_TIMESCALE) / 2;
        let in_segment = self.video.as_ref().is_some_and(|v| v.in_segment);
        let (mut time, mut duration) = (frame.dts, duration);
        if in_segment && frame.keyframe && segment >= target / 2 {
            self.cut_segment(frame.dts);
        } else if in_segment && segment + duration >= hard_limit {
            // No IDR in time: keep EXTINF within TARGETDURATION anyway.
            self.stats.forced_cuts += 1;
            self.cut_segment(frame.dts);
        } else if let Some(video) = self.video.as_mut()
            && video.overflows(duration)
        {
            if let Some(shift) = video.floor_shift(duration) {
                video.extend_last(shift);
                time += shift;
                duration -= shift;
            }
            video.close_part(self.msn, &mut self.out);
        }
        let msn = self.msn;
        if let Some(video) = self.video.as_mut() {
            video.add(
                msn,
                time,
                Sample {
                    duration: duration as u32,
                    data: frame.data,
                    sync: frame.keyframe,
                },
                &mut self.out,
            );
            self.stats.frames += 1;
        }
    }

    fn want_keyframe(&mut self, at: u64) {
        if self
            .keyframe_asked
            .is_none_or(|asked| at >= asked + KEYFRAME_RETRY)
        {
            self.keyframe_asked = Some(at);
            self.out.push_back(SegmenterEvent::KeyframeWanted);
        }
    }

    fn cut_segment(&mut self, at: u64) {
        let msn = self.msn;
        if let Some(video) = self.video.as_mut() {
            video.end_segment(msn, &mut self.out);
        }
        self.fill_audio_to(at);
        if let Some(audio) = self.audio.as_mut() {
            audio.end_segment(msn, &mut self.out);
        }
        self.msn += 1;
        self.segment_start = at;
        self.keyframe_asked = None;
    }

    /// Audio that stopped well before `at` (90 kHz), such as a returning publisher without a
    /// microphone, is filled with silence up to it, so both renditions keep the same segments.
    fn fill_audio_to(&mut self, at: u64) {
        let msn = self.msn;
        let Some(audio) = self.audio.as_mut() else {
            return;
        };
        let lagging = self
            .audio_timeline
            .expected()
            .is_some_and(|e| audio_to_90k(e) + AUDIO_FILL_AFTER < at);
        if !self.audio_queue.is_empty() || !lagging {
            return;
        }
        for s in self.audio_timeline.fill_until(at * 8 / 15) {
            if audio.overflows(u64::from(s.duration)) {
                audio.close_part(msn, &mut self.out);
            }
            audio.add(msn, s.pts, opus_sample(s), &mut self.out);
        }
    }

    /// Feeds queued audio to its cutter in timestamp order behind the video; `all` releases
    /// everything (end of session).
    fn release_audio(&mut self, all: bool) {
        let audio_only = self.video.is_none();
        while let Some(front) = self.audio_queue.front() {
            let pts = audio_to_90k(front.pts);
            let release = all
                || audio_only
                || (self.started
                    && self.watermark.is_some_and(|w| {
                        pts < w
                            || self
                                .audio_queue
                                .back()
                                .is_some_and(|b| audio_to_90k(b.pts) > w + AUDIO_WAIT)
                    }));
            if !release {
                break;
            }
            let s = self.audio_queue.pop_front().expect("front exists");
            let msn = self.msn;
            let Some(audio) = self.audio.as_mut() else {
                return;
            };
            if audio_only && !self.started {
                self.started = true;
                self.segment_start = pts;
            }
            if audio.overflows(u64::from(s.duration)) {
                audio.close_part(msn, &mut self.out);
                let segment = audio_to_90k(audio.end) - self.segment_start;
                if audio_only && segment >= us_to(VIDEO_TIMESCALE, self.timing.segment_target) {
                    let end = audio.end;
                    audio.end_segment(msn, &mut self.out);
                    self.msn += 1;
                    self.segment_start = audio_to_90k(end);
                }
            }
            let msn = self.msn;
            if let Some(audio) = self.audio.as_mut() {
                audio.add(msn, s.pts, opus_sample(s), &mut self.out);
            }
        }
    }
}

fn opus_sample(s: OpusSample) -> Sample {
    Sample {
        duration: s.duration,
        data: s.data,
        sync: true,
    }
}

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;
