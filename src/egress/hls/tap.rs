//! The HLS tap of one room (egress path: `room::TrackHub` queues -> `core::h264` depacketizer
//! and `core::hls` clock and segmenter -> `HlsStream` and the broadcast's `Recording`). It is
//! one more hub consumer with its own bounded queues, so it never slows the publisher; it
//! follows publishers (a new source id is a new session: flush, `EXT-X-DISCONTINUITY`, new
//! recording, except at a switch between pass-through and the stage composite), asks for
//! keyframes when a segment is due, and ends the playlist when nobody came back within the
//! room's grace period. New SPS/PPS (a publisher raising its resolution) give LL-HLS a new
//! init after a discontinuity, while the recording goes on (`avc3`, the parameter sets
//! in-band). A session without video becomes an audio-only stream and recording. Does I/O (a
//! task).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::store::{HlsStream, NewPart};
use crate::core::h264::{AccessUnit, H264Depacketizer};
use crate::core::hls::{Rendition, Segmenter, SegmenterEvent, SourceClock, SyncChange};
use crate::core::rtp::TimestampUnwrapper;
use crate::egress::composite::{StageEvent, StageFollower};
use crate::egress::recorder::Recording;
use crate::http::App;
use crate::ingest::sender_reports::{ReportSubscription, SenderReportEvent};
use crate::room::{MediaPacket, Room, Subscription};

/// Opus channels of WebRTC audio (RFC 7587 §7: `opus/48000/2`).
const CHANNELS: u8 = 2;
/// How often the tap checks that its room still exists and its grace period.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Video (90 kHz) held at the start of a stream while waiting for the first audio packet.
const AUDIO_DECISION: u64 = 90_000;
/// Audio of a session without any video packet after which it starts an audio-only stream.
const AUDIO_ONLY_WAIT: Duration = Duration::from_secs(1);
/// Opus packets kept while a stream waits to start (2 s of 20 ms packets).
const HELD_AUDIO: usize = 100;

#[path = "tap_streams.rs"]
mod streams;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// SPS and PPS, NAL headers included.
type ParameterSets = (Bytes, Bytes);

/// One publisher session as the tap sees it.
struct Source {
    id: u64,
    depacketizer: H264Depacketizer,
    audio_ts: TimestampUnwrapper,
    clock: SourceClock,
    /// Media time (90 kHz) of the session's first packet, and the wall clock then.
    origin: (u64, u64),
    audio_packets: u64,
    /// Whether any video of this session arrived (else it may be audio-only).
    video_seen: bool,
    /// Arrival of the session's first audio packet.
    first_audio_at: Option<Duration>,
    /// Audio (48 kHz media time, packet) of a stream about to start.
    held_audio: Vec<(u64, Bytes)>,
    recording: Option<Recording>,
}

/// The room's current LL-HLS stream.
struct Stream {
    hls: Arc<HlsStream>,
    segmenter: Segmenter,
    /// SPS and PPS of the current video init; `None` for an audio-only stream.
    params: Option<ParameterSets>,
    has_audio: bool,
}

struct Tap {
    app: App,
    room: Arc<Room>,
    started: Instant,
    video: Subscription,
    audio: Subscription,
    source: Option<Source>,
    /// Packets of sources below this id are stale (their session already ended here).
    min_source: u64,
    stream: Option<Stream>,
    /// Nobody is live since then.
    idle_since: Option<Instant>,
    /// Video of a stream about to start, held until it is known whether audio comes.
    held: Vec<(u64, AccessUnit, Option<ParameterSets>)>,
    /// Pass-through of the broadcaster, or the composite with guests on stage.
    stage: StageFollower,
    /// The stage switched between pass-through and the composite: the next source continues
    /// the current source's recording (one file per broadcast, guests or not).
    stage_switched: bool,
}

/// Runs the tap until the room is dropped or the server shuts down.
pub(super) async fn run(app: App, room: Arc<Room>) {
    let video = room.video.subscribe();
    let audio = room.audio.subscribe();
    let mut live = room.watch_live();
    let mut reports = ReportSubscription::new(room.clone());
    let shutdown = app.hls.shutdown.clone();
    let mut tap = Tap {
        app: app.clone(),
        room: room.clone(),
        started: Instant::now(),
        video,
        audio,
        source: None,
        min_source: 0,
        stream: None,
        idle_since: None,
        held: Vec::new(),
        stage: StageFollower::new(app.config.composite.clone(), room.watch_stage()),
        stage_switched: false,
    };
    tap.on_stage(StageEvent::Changed);
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = live.changed() => {
                if changed.is_err() {
                    break;
                }
                let now_live = live.borrow_and_update().is_some();
                if !now_live {
                    tap.end_source();
                    tap.stage_switched = false;
                    tap.idle_since = Some(Instant::now());
                }
            }
            Some(packet) = tap.video.rx.recv() => tap.on_video(packet),
            Some(packet) = tap.audio.rx.recv() => tap.on_audio(packet),
            Some(report) = reports.rx.recv() => tap.on_sender_report(report),
            event = tap.stage.next() => tap.on_stage(event),
            _ = tick.tick() => {
                let current = app.rooms.get(room.name()).is_some_and(|r| Arc::ptr_eq(&r, &room));
                if !current {
                    break;
                }
                tap.check_idle();
            }
        }
    }
    tap.end_source();
    if let Some(stream) = tap.stream.take() {
        stream.hls.end();
        if !app
            .rooms
            .get(room.name())
            .is_some_and(|r| Arc::ptr_eq(&r, &room))
        {
            app.hls.remove(room.name(), stream.hls.stream_id());
        }
    }
    room.video.unsubscribe(tap.video.id);
    room.audio.unsubscribe(tap.audio.id);
    let key = Arc::as_ptr(&room) as usize;
    app.hls.taps.remove_if(room.name(), |_, k| *k == key);
    tracing::info!(room = room.name(), "LL-HLS tap stopped");
}

impl Tap {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Makes `id` the current source; false for a stale packet of an ended session.
    fn follow(&mut self, id: u64) -> bool {
        if id < self.min_source {
            return false;
        }
        if self.source.as_ref().is_some_and(|s| s.id == id) {
            return true;
        }
        if self.source.as_ref().is_some_and(|s| s.id > id) {
            return false;
        }
        // A stage switch hands the recording on (its `avc3` track takes the new source's
        // parameter sets in-band, as at a resolution change); a new publisher session starts
        // a new one.
        let carried = match (
            self.close_source(),
            std::mem::take(&mut self.stage_switched),
        ) {
            (Some(recording), true) => Some(recording),
            (Some(recording), false) => {
                recording.finish();
                None
            }
            (None, _) => None,
        };
        let origin = self
            .stream
            .as_ref()
            .map_or(0, |s| s.segmenter.timeline_end());
        tracing::debug!(
            room = self.room.name(),
            source = id,
            "tap follows a new publisher session"
        );
        self.source = Some(Source {
            id,
            depacketizer: H264Depacketizer::new(),
            audio_ts: TimestampUnwrapper::new(),
            clock: SourceClock::new(origin),
            origin: (origin, unix_ms()),
            audio_packets: 0,
            video_seen: false,
            first_audio_at: None,
            held_audio: Vec::new(),
            recording: carried,
        });
        self.idle_since = None;
        true
    }

    fn on_video(&mut self, packet: Arc<MediaPacket>) {
        let rooms = &self.app.rooms;
        let Some(id) = self.stage.map_source(packet.source, || rooms.next_source()) else {
            return;
        };
        if !self.follow(id) {
            return;
        }
        let Some(source) = self.source.as_mut() else {
            return;
        };
        source.video_seen = true;
        source
            .depacketizer
            .push(packet.seq, packet.ts, packet.marker, packet.payload.clone());
        if source.depacketizer.take_keyframe_request() {
            self.room.video.request_keyframe();
        }
        while let Some(au) = self.source.as_mut().and_then(|s| s.depacketizer.poll()) {
            self.on_access_unit(au);
        }
    }

    fn on_audio(&mut self, packet: Arc<MediaPacket>) {
        let rooms = &self.app.rooms;
        let Some(id) = self.stage.map_source(packet.source, || rooms.next_source()) else {
            return;
        };
        if !self.follow(id) {
            return;
        }
        let now = self.now();
        let Some(source) = self.source.as_mut() else {
            return;
        };
        source.audio_packets += 1;
        let first_audio_at = *source.first_audio_at.get_or_insert(now);
        let ts = source.audio_ts.unwrap(packet.ts);
        let pts = source.clock.audio(ts, now);
        if self.stream.as_ref().is_none_or(|s| s.hls.is_ended()) {
            // No stream yet: the packet waits for video, or for the audio-only decision.
            if let Some(pts) = pts {
                if source.held_audio.len() >= HELD_AUDIO {
                    source.held_audio.remove(0);
                }
                source.held_audio.push((pts, packet.payload.clone()));
            }
            let audio_only =
                !source.video_seen && now.saturating_sub(first_audio_at) >= AUDIO_ONLY_WAIT;
            if !self.held.is_empty() {
                self.start_held();
            } else if audio_only {
                self.start_audio_only();
            }
            return;
        }
        // Audio the sender reports place before the timeline's start is left out.
        if let (Some(pts), Some(stream)) = (pts, self.stream.as_mut())
            && let Err(e) = stream.segmenter.push_audio(pts, packet.payload.clone())
        {
            tracing::trace!(error = %e, "Opus packet refused");
        }
        self.drain();
    }

    /// An RTCP sender report of the current source: aligns audio with video by the sender's
    /// wallclock (arrival time until both tracks have one).
    fn on_sender_report(&mut self, report: SenderReportEvent) {
        let room = self.room.name();
        let mapped = self.stage.mapped(report.source);
        let Some(source) = self.source.as_mut().filter(|s| Some(s.id) == mapped) else {
            return;
        };
        match source
            .clock
            .sender_report(report.audio, report.ntp, report.rtp)
        {
            Ok(SyncChange::AudioShifted(ticks)) => tracing::debug!(
                room,
                shift_ms = ticks as f64 / 48.0,
                "audio aligned with video by sender reports"
            ),
            Ok(SyncChange::Implausible(ticks)) => tracing::debug!(
                room,
                shift_ms = ticks as f64 / 48.0,
                "sender reports disagree with arrival times; kept arrival alignment"
            ),
            Ok(SyncChange::None) => {}
            Err(e) => tracing::debug!(room, error = %e, "sender report ignored"),
        }
    }

    fn on_access_unit(&mut self, au: AccessUnit) {
        let params =
            self.source
                .as_ref()
                .and_then(|s| match (s.depacketizer.sps(), s.depacketizer.pps()) {
                    (Some(sps), Some(pps)) => Some((sps.clone(), pps.clone())),
                    _ => None,
                });
        self.on_picture(au, params);
    }

    /// Stage changes and composite output (`egress::composite::StageFollower`): composed
    /// pictures and mixed audio enter like a publisher session of their own.
    fn on_stage(&mut self, event: StageEvent) {
        match event {
            StageEvent::Changed => {
                let rooms = &self.app.rooms;
                let composite = self.stage.is_composite();
                self.stage.update(|| rooms.next_source());
                if self.stage.is_composite() != composite {
                    self.stage_switched = true;
                }
            }
            StageEvent::Video { source, au, params } => {
                if self.follow(source) {
                    self.on_picture(au, params);
                }
            }
            StageEvent::Audio(packet) => self.on_audio(packet),
        }
    }

    /// One picture of the current source with its parameter sets.
    fn on_picture(&mut self, au: AccessUnit, params: Option<ParameterSets>) {
        let now = self.now();
        let Some(source) = self.source.as_mut() else {
            return;
        };
        source.video_seen = true;
        let dts = source.clock.video(au.ts, now);
        let audio_seen = source.audio_packets > 0;
        if self
            .stream
            .as_ref()
            .is_some_and(|s| !s.hls.is_ended() && s.params.is_none())
        {
            // Video joins an audio-only stream: its renditions are fixed, so a new stream
            // (and recording) with video starts at the next IDR.
            if !(au.keyframe && params.is_some()) {
                self.room.video.request_keyframe();
                return;
            }
            self.end_audio_only();
        }
        let ended = self.stream.as_ref().is_none_or(|s| s.hls.is_ended());
        if !ended {
            self.place(dts, au, params);
            return;
        }
        // A new stream starts at an IDR with its parameter sets, and waits (up to a second of
        // video) to learn whether the broadcast has audio: its renditions are fixed then.
        if self.held.is_empty() {
            let (true, Some(_)) = (au.keyframe, &params) else {
                self.room.video.request_keyframe();
                return;
            };
        }
        self.held.push((dts, au, params));
        let span = dts.saturating_sub(self.held[0].0);
        if audio_seen || span >= AUDIO_DECISION {
            self.start_held();
        }
    }

    /// Starts the stream with the video held while waiting for audio, and places that video.
    fn start_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        let Some((_, _, Some(params))) = held.first() else {
            return;
        };
        if !self.start_stream(Some(params.clone())) {
            return;
        }
        self.push_held_audio();
        for (dts, au, params) in held {
            self.place(dts, au, params);
        }
    }

    /// One access unit into the running stream (and the recording).
    fn place(&mut self, dts: u64, au: AccessUnit, params: Option<ParameterSets>) {
        if let (true, Some(params)) = (au.keyframe, params)
            && self
                .stream
                .as_ref()
                .is_some_and(|s| s.params.as_ref() != Some(&params))
        {
            self.new_parameter_sets(params);
        }
        if au.keyframe {
            // A second of slack before the first IDR keeps earlier audio in the file.
            self.ensure_recording(dts.saturating_sub(90_000));
        }
        if let Some(stream) = self.stream.as_mut() {
            stream
                .segmenter
                .push_video(dts, Bytes::from(au.data), au.keyframe);
        }
        self.drain();
    }

    /// Applies the segmenter's events: parts and segments to the store, samples to the
    /// recording, keyframe requests to the publisher.
    fn drain(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let source = self.source.as_mut();
        let (origin_media, origin_wall) = source.as_ref().map_or((0, unix_ms()), |s| s.origin);
        let mut recording = source.and_then(|s| s.recording.as_mut());
        // The recording is flushed at every part of the rendition that cuts segments.
        let flush_on = if stream.params.is_some() {
            Rendition::Video
        } else {
            Rendition::Audio
        };
        while let Some(event) = stream.segmenter.poll() {
            match event {
                SegmenterEvent::Part(p) => {
                    let start_90k = match p.rendition {
                        Rendition::Video => p.start,
                        Rendition::Audio => p.start * 15 / 8,
                    };
                    let offset_ms = (start_90k as i64 - origin_media as i64) / 90;
                    let pdt = origin_wall.saturating_add_signed(offset_ms);
                    stream.hls.add_part(
                        p.rendition,
                        NewPart {
                            msn: p.msn,
                            index: p.index,
                            duration: p.duration as f64 / f64::from(p.timescale),
                            independent: p.independent,
                            discontinuity: p.discontinuity,
                            program_date_time_ms: pdt,
                            bytes: Bytes::from(p.fragment),
                        },
                    );
                    if p.rendition == flush_on
                        && let Some(r) = recording.as_mut()
                    {
                        r.flush();
                    }
                }
                SegmenterEvent::SegmentEnd {
                    rendition,
                    msn,
                    duration,
                    timescale,
                } => stream
                    .hls
                    .end_segment(rendition, msn, duration as f64 / f64::from(timescale)),
                SegmenterEvent::Sample {
                    rendition,
                    decode_time,
                    sample,
                } => {
                    if let Some(r) = recording.as_mut() {
                        r.push(rendition == Rendition::Audio, decode_time, sample);
                    }
                }
                SegmenterEvent::KeyframeWanted => {
                    if !self.stage.request_keyframe() {
                        self.room.video.request_keyframe();
                    }
                }
            }
        }
    }

    /// The current publisher session ended: flush everything it sent, finish its recording.
    fn end_source(&mut self) {
        if let Some(recording) = self.close_source() {
            recording.finish();
        }
    }

    /// Flushes everything the current source sent into the stream and its recording, and
    /// lets the source go; its recording, still open, is the caller's.
    fn close_source(&mut self) -> Option<Recording> {
        let source = self.source.as_mut()?;
        source.depacketizer.flush();
        while let Some(au) = self.source.as_mut().and_then(|s| s.depacketizer.poll()) {
            self.on_access_unit(au);
        }
        if !self.held.is_empty() {
            self.start_held();
        }
        if let Some(stream) = self.stream.as_mut() {
            stream.segmenter.flush();
        }
        self.drain();
        let source = self.source.take()?;
        self.min_source = source.id + 1;
        source.recording
    }

    /// Ends the playlist (`EXT-X-ENDLIST`) when nobody came back within the grace period.
    fn check_idle(&mut self) {
        let grace = self.app.config.room_grace();
        if self.source.is_none()
            && self.idle_since.is_some_and(|t| t.elapsed() >= grace)
            && let Some(stream) = self.stream.as_ref()
            && !stream.hls.is_ended()
        {
            tracing::info!(
                room = self.room.name(),
                "no broadcaster came back: LL-HLS playlist ended"
            );
            stream.hls.end();
        }
    }
}
