//! Test/load client: the per-track reader of a WHEP viewer — pulls RTP off a remote track,
//! analyses sequence numbers, timestamps and SSRCs, and (if asked) reassembles and decodes
//! H.264. The receiving end of onair's media path. Does I/O (reads the track, may send PLI).
//!
//! The non-decoding path does no allocation and takes no lock per packet: a few relaxed atomic
//! updates and a look at the first payload bytes. Decoding runs inline on the reader task and is
//! meant for a handful of viewers, not a thousand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::seq::{Arrival, SeqTracker};
use super::stats::{LatencyRecorder, TrackCounters};
use crate::h264::{Reassembler, rtp_payload_starts_keyframe};
use crate::media::VideoDecoder;

/// Minimum spacing of this viewer's own PLIs.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// Distinct SSRCs remembered per track (more only keeps counting changes).
const MAX_SSRCS: usize = 64;

/// Blocks the readers while a viewer is stalled; wakes them on resume or close.
#[derive(Debug, Default)]
pub(crate) struct StallGate {
    stalled: AtomicBool,
    closed: AtomicBool,
    notify: Notify,
}

impl StallGate {
    /// Returns `true` when reading may go on, waiting while stalled; `false` once closed.
    pub(crate) async fn pass(&self) -> bool {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            if !self.stalled.load(Ordering::Acquire) {
                return true;
            }
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) || !self.stalled.load(Ordering::Acquire) {
                continue;
            }
            notified.await;
        }
    }

    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    pub(crate) fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Release);
        if !stalled {
            self.notify.notify_waiters();
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// State shared by a viewer and its readers.
#[derive(Debug)]
pub(crate) struct ReaderShared {
    pub video: TrackCounters,
    pub audio: TrackCounters,
    pub gate: StallGate,
    pub decode: bool,
    pub request_keyframes: bool,
    pub started: Instant,
    /// Forwarding latency of video packets, when a probe was given.
    pub latency: Option<LatencyRecorder>,
}

impl ReaderShared {
    pub(crate) fn new(
        decode: bool,
        request_keyframes: bool,
        latency: Option<LatencyRecorder>,
    ) -> Self {
        Self {
            video: TrackCounters::new(),
            audio: TrackCounters::new(),
            gate: StallGate::default(),
            decode,
            request_keyframes,
            started: Instant::now(),
            latency,
        }
    }
}

/// Reads one remote track until it ends or the viewer closes.
pub(crate) async fn read_track(track: Arc<dyn TrackRemote>, shared: Arc<ReaderShared>) {
    let video = track.kind().await == RtpCodecKind::Video;
    let counters = if video { &shared.video } else { &shared.audio };
    counters.present.store(1, Ordering::Relaxed);
    let decoder = if video && shared.decode {
        match VideoDecoder::new() {
            Ok(decoder) => Some(Decoding {
                reassembler: Reassembler::new(),
                decoder,
                last_pli: None,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot create a decoder; counting only");
                None
            }
        }
    } else {
        None
    };
    let mut reader = TrackReader {
        video,
        tracker: SeqTracker::new(),
        ssrcs: Vec::new(),
        last_ssrc: None,
        frame_ts: None,
        decoding: decoder,
    };
    while shared.gate.pass().await {
        match track.poll().await {
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                reader.on_packet(packet, counters, &shared, &*track).await;
            }
            Some(TrackRemoteEvent::OnEnded) | None => break,
            Some(_) => {}
        }
    }
}

struct Decoding {
    reassembler: Reassembler,
    decoder: VideoDecoder,
    last_pli: Option<Instant>,
}

struct TrackReader {
    video: bool,
    tracker: SeqTracker,
    ssrcs: Vec<u32>,
    last_ssrc: Option<u32>,
    /// RTP timestamp of the access unit being received (video).
    frame_ts: Option<u32>,
    decoding: Option<Decoding>,
}

impl TrackReader {
    async fn on_packet(
        &mut self,
        packet: Packet,
        counters: &TrackCounters,
        shared: &ReaderShared,
        track: &dyn TrackRemote,
    ) {
        let header = &packet.header;
        counters.packets.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let first_packet = self.last_ssrc.is_none();
        if first_packet {
            TrackCounters::mark_first(&counters.first_packet_ns, shared.started.elapsed());
        }
        if self.last_ssrc != Some(header.ssrc) {
            self.on_new_ssrc(header.ssrc, counters);
        }
        let before = self.tracker.counts();
        let (ext, arrival) = self
            .tracker
            .record(header.sequence_number, header.timestamp);
        let after = self.tracker.counts();
        if after != before {
            counters.store_seq(&after);
        }
        if !self.video {
            return;
        }
        if let Some(latency) = &shared.latency
            && arrival != Arrival::Duplicate
        {
            latency.observe(&packet.payload);
        }
        let starts_keyframe = rtp_payload_starts_keyframe(&packet.payload);
        if first_packet {
            let v = if starts_keyframe { 1 } else { 2 };
            counters.first_packet_keyframe.store(v, Ordering::Relaxed);
        }
        if starts_keyframe {
            TrackCounters::mark_first(&counters.first_keyframe_ns, shared.started.elapsed());
        }
        if matches!(arrival, Arrival::First | Arrival::Advanced { .. })
            && self.frame_ts != Some(header.timestamp)
        {
            self.frame_ts = Some(header.timestamp);
            if starts_keyframe {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let (Some(decoding), Some(ext)) = (self.decoding.as_mut(), ext) {
            decoding
                .on_packet(ext, packet, counters, shared, track)
                .await;
        }
    }

    fn on_new_ssrc(&mut self, ssrc: u32, counters: &TrackCounters) {
        if self.last_ssrc.is_some() {
            counters.ssrc_changes.fetch_add(1, Ordering::Relaxed);
            self.tracker.restart();
            self.frame_ts = None;
            if let Some(decoding) = self.decoding.as_mut() {
                decoding.reassembler.reset();
            }
        }
        if !self.ssrcs.contains(&ssrc) {
            if self.ssrcs.len() < MAX_SSRCS {
                self.ssrcs.push(ssrc);
            }
            counters.distinct_ssrcs.fetch_add(1, Ordering::Relaxed);
        }
        self.last_ssrc = Some(ssrc);
        counters.ssrc.store(u64::from(ssrc), Ordering::Relaxed);
    }
}

impl Decoding {
    async fn on_packet(
        &mut self,
        ext_seq: u64,
        packet: Packet,
        counters: &TrackCounters,
        shared: &ReaderShared,
        track: &dyn TrackRemote,
    ) {
        let header = packet.header;
        let before = self.reassembler.stats();
        let unit = self
            .reassembler
            .push(ext_seq, header.timestamp, header.marker, packet.payload);
        if let Some(unit) = unit {
            match self.decoder.decode(&unit.data) {
                Ok(Some(picture)) => {
                    let at = shared.started.elapsed();
                    counters.record_decoded(at, picture.width, picture.height);
                    if let Some(luma) = self.decoder.luma() {
                        let mut last = counters
                            .last_luma
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        match last.as_mut() {
                            Some(kept) => kept.clone_from(luma),
                            None => *last = Some(luma.clone()),
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%error, "decode error");
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let after = self.reassembler.stats();
        if after != before {
            counters
                .frames_incomplete
                .store(after.frames_incomplete, Ordering::Relaxed);
            counters
                .frames_skipped
                .store(after.frames_skipped_waiting_idr, Ordering::Relaxed);
            counters
                .frames_malformed
                .store(after.frames_malformed, Ordering::Relaxed);
        }
        let lost_something = after.frames_incomplete + after.frames_malformed > 0;
        if shared.request_keyframes && lost_something && self.reassembler.waiting_for_idr() {
            self.request_keyframe(header.ssrc, counters, track).await;
        }
    }

    /// Sends a PLI for `media_ssrc` (RFC 4585 §6.3.1), at most every [`PLI_INTERVAL`].
    async fn request_keyframe(
        &mut self,
        media_ssrc: u32,
        counters: &TrackCounters,
        track: &dyn TrackRemote,
    ) {
        if self.last_pli.is_some_and(|t| t.elapsed() < PLI_INTERVAL) {
            return;
        }
        self.last_pli = Some(Instant::now());
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        match track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => {
                counters.plis_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(%error, "sending PLI"),
        }
    }
}
