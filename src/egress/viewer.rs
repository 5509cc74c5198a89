//! A WHEP viewer's outgoing tracks (egress side of the media path, hot path): each is a
//! [`PacketSink`] of whichever participant's hub its slot shows, written to on the publisher's
//! task: it holds video until a keyframe (or starts a joining viewer at once from the hub's
//! newest keyframe when that began moments ago), rewrites SSRC/seq/ts/PT with an [`RtpMunger`] so
//! source switches are seamless, and hands the packet to the connection without waiting (a
//! connection whose send queue is full loses that packet). It answers the viewer's RTCP
//! (PLI/FIR upstream, NACKs from the hub's retransmission cache). The session task that
//! switches sources is [`super::viewer_session`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::rtp_transceiver::RtpSender;

use crate::core::rtp::{KeyframeGate, MungerConfig, RtpMunger, nack_seqs};
use crate::core::stage::SlotMids;
use crate::http::ApiError;
use crate::peer::{MIME_H264, MIME_OPUS};
use crate::room::{MediaPacket, PacketSink, TrackHub, TrackKind};

/// Most packets re-sent for one NACK message; bounds the work a viewer can ask for.
const MAX_RETRANSMIT_PER_NACK: usize = 64;
/// A viewer still waiting for a keyframe asks again after this long.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// A negotiated outgoing track of a viewer, before it is attached to a hub.
pub struct Outbound {
    track: Arc<TrackLocalStaticRTP>,
    kind: TrackKind,
    ssrc: u32,
    pt: u8,
}

impl Outbound {
    /// Reads the SSRC and payload type negotiated for `sender` (write_rtp refuses others).
    pub async fn new(
        track: Arc<TrackLocalStaticRTP>,
        sender: Arc<dyn RtpSender>,
        kind: TrackKind,
    ) -> Result<Self, ApiError> {
        let params = sender
            .get_parameters()
            .await
            .map_err(|e| ApiError::internal("reading negotiated parameters failed", e))?;
        let mime = match kind {
            TrackKind::Video => MIME_H264,
            TrackKind::Audio => MIME_OPUS,
        };
        let pt = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map(|c| c.payload_type)
            .ok_or_else(|| {
                ApiError::internal("negotiation", format!("no {mime} payload type negotiated"))
            })?;
        let ssrc = params
            .encodings
            .first()
            .and_then(|e| e.rtp_coding_parameters.ssrc)
            .ok_or_else(|| ApiError::internal("negotiation", "sender has no SSRC"))?;
        Ok(Self {
            track,
            kind,
            ssrc,
            pt,
        })
    }

    /// The outgoing track, attached to nothing yet.
    pub fn into_track(self) -> ViewerTrack {
        let munger = RtpMunger::new(MungerConfig {
            out_ssrc: self.ssrc,
            out_pt: self.pt,
            clock_rate: self.kind.clock_rate(),
            first_seq: rand::random(),
            first_ts: rand::random(),
        });
        ViewerTrack {
            hub: None,
            subscription_id: 0,
            dropped: Arc::new(AtomicU64::new(0)),
            sink: Arc::new(TrackSink {
                track: self.track,
                kind: self.kind,
                connected: AtomicBool::new(false),
                state: Mutex::new(SendState {
                    munger,
                    gate: KeyframeGate::new(),
                    keyframe_asked: None,
                    last_source: 0,
                }),
            }),
        }
    }
}

/// One slot's negotiated tracks and where they are in the SDP.
pub struct SlotOut {
    /// The slot's video track, if its offer had one.
    pub video: Option<Outbound>,
    /// The slot's audio track, if its offer had one.
    pub audio: Option<Outbound>,
    /// The slot's mids.
    pub mids: SlotMids,
}

/// One slot of a viewer: a video and an audio track showing one participant at a time.
pub struct Slot {
    /// Video track.
    pub video: Option<ViewerTrack>,
    /// Audio track.
    pub audio: Option<ViewerTrack>,
    /// The slot's mids.
    pub mids: SlotMids,
}

impl Slot {
    /// A slot showing nobody yet.
    pub fn new(out: SlotOut) -> Self {
        Self {
            video: out.video.map(Outbound::into_track),
            audio: out.audio.map(Outbound::into_track),
            mids: out.mids,
        }
    }

    /// Drop counters of the slot's tracks.
    pub fn dropped(&self) -> impl Iterator<Item = Arc<AtomicU64>> + '_ {
        self.video
            .iter()
            .chain(self.audio.iter())
            .map(ViewerTrack::dropped)
    }
}

/// One outgoing track of a viewer: the session's handle on its [`TrackSink`] and on the hub
/// it is subscribed to.
pub struct ViewerTrack {
    hub: Option<Arc<TrackHub>>,
    subscription_id: u64,
    dropped: Arc<AtomicU64>,
    sink: Arc<TrackSink>,
}

impl ViewerTrack {
    /// This viewer's drop counter for this track (kept across source switches).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// The local track (for its RTCP events).
    pub fn local(&self) -> Arc<TrackLocalStaticRTP> {
        self.sink.track.clone()
    }

    /// DTLS is up: media may flow (video from the next keyframe on).
    pub fn set_connected(&self) {
        self.sink.connected.store(true, Ordering::Release);
    }

    /// Switches this track to `hub` (or to nothing): leaves the old hub and subscribes to the
    /// new one; video then waits for, and asks for, a keyframe of the new source. The munger
    /// keeps the outgoing SSRC/seq/ts continuous across the switch.
    pub fn switch(&mut self, hub: Option<Arc<TrackHub>>) {
        self.detach();
        {
            // Released before the hub's consumer list is touched: the hub holds that list
            // while it writes to this sink (which takes this lock).
            let mut state = self.sink.state();
            state.gate.close();
            state.keyframe_asked = None;
        }
        let Some(hub) = hub else {
            return;
        };
        let sink: Arc<dyn PacketSink> = self.sink.clone();
        self.subscription_id = hub.subscribe_sink(sink, self.dropped.clone());
        if self.sink.kind == TrackKind::Video && self.sink.connected.load(Ordering::Acquire) {
            hub.request_keyframe();
        }
        self.hub = Some(hub);
    }

    /// Leaves the current hub.
    pub fn detach(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.unsubscribe(self.subscription_id);
        }
    }

    /// DTLS is up: asks the current source for a keyframe (video only), unless this track
    /// can start from the hub's newest one (fast start, decided at the next packet, which
    /// asks then if it has to).
    pub fn request_first_keyframe(&self) {
        if let Some(hub) = self
            .hub
            .as_ref()
            .filter(|_| self.sink.kind == TrackKind::Video)
            && !hub.can_fast_start(Instant::now())
        {
            hub.request_keyframe();
        }
    }

    /// Handles RTCP feedback the viewer sent about this track.
    pub fn on_rtcp(&self, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        let Some(hub) = self.hub.as_ref() else {
            return;
        };
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                hub.request_keyframe();
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                hub.count_nack();
                self.retransmit(hub, nack);
            }
        }
    }

    /// RFC 4585 §6.2.1 Generic NACK, answered from the hub's shared cache.
    fn retransmit(&self, hub: &TrackHub, nack: &TransportLayerNack) {
        let now = Instant::now();
        let mut state = self.sink.state();
        let mut sent = 0;
        for pair in &nack.nacks {
            for out_seq in nack_seqs(pair.packet_id, pair.lost_packets) {
                if sent == MAX_RETRANSMIT_PER_NACK {
                    return;
                }
                let Some(src_seq) = state.munger.source_seq(out_seq) else {
                    continue;
                };
                if let Some(packet) = hub
                    .cached(src_seq)
                    .filter(|p| p.source == state.last_source)
                {
                    state.send(&self.sink.track, hub, &packet, now);
                    hub.count_retransmit();
                    sent += 1;
                }
            }
        }
    }
}

/// What the hub writes to: the connection's track and the per-track rewrite state.
struct TrackSink {
    track: Arc<TrackLocalStaticRTP>,
    kind: TrackKind,
    connected: AtomicBool,
    state: Mutex<SendState>,
}

impl TrackSink {
    fn state(&self) -> MutexGuard<'_, SendState> {
        self.state.lock().expect("viewer track lock poisoned")
    }
}

impl PacketSink for TrackSink {
    /// Keyframe gate (video), rewrite, hand over to the connection.
    fn deliver(&self, hub: &TrackHub, packet: &Arc<MediaPacket>, now: Instant) -> bool {
        let mut state = self.state();
        if !self.connected.load(Ordering::Acquire) {
            // Nothing can be sent before DTLS is up; start at a keyframe once it is.
            state.gate.close();
            return true;
        }
        if self.kind == TrackKind::Video && !state.gate.admit(packet.source, packet.keyframe) {
            if state.munger.last_out().is_none()
                && let Some(run) = hub.keyframe_run(packet, now)
            {
                return state.fast_start(&self.track, hub, &run, packet, now);
            }
            state.ask_keyframe(hub, packet.source, now);
            return true;
        }
        state.send(&self.track, hub, packet, now)
    }
}

/// A track's outgoing stream state, under the sink's lock.
struct SendState {
    munger: RtpMunger,
    gate: KeyframeGate,
    keyframe_asked: Option<(u64, Instant)>,
    /// Source of the last packet sent: retransmissions from another source are skipped.
    last_source: u64,
}

impl SendState {
    /// Rewrites `packet` and hands it to the connection's driver without waiting. False when
    /// the connection's send queue is full (the packet is lost for this viewer alone).
    fn send(
        &mut self,
        track: &TrackLocalStaticRTP,
        hub: &TrackHub,
        packet: &MediaPacket,
        now: Instant,
    ) -> bool {
        let Some(out) = self
            .munger
            .rewrite(packet.source, packet.seq, packet.ts, now)
        else {
            return true;
        };
        self.last_source = packet.source;
        let rtp = rtp::Packet {
            header: rtp::Header {
                version: 2,
                marker: packet.marker,
                payload_type: out.pt,
                sequence_number: out.seq,
                timestamp: out.ts,
                ssrc: out.ssrc,
                ..Default::default()
            },
            payload: packet.payload.clone(),
        };
        let len = rtp.payload.len();
        // webrtc-rs queues the packet for the connection's driver task: ready at once unless
        // that queue is full. Polled once, outside tokio's cooperative budget (a publisher
        // writing to a thousand viewers would otherwise exhaust it and see "full"), and
        // dropped if not ready: never awaited, so a slow connection cannot hold up the rest.
        match tokio::task::unconstrained(track.write_rtp(rtp)).now_or_never() {
            Some(Ok(())) => {
                hub.count_sent(len);
                true
            }
            Some(Err(e)) => {
                tracing::trace!(error = %e, "write_rtp to viewer failed");
                true
            }
            None => false,
        }
    }

    /// Starts a viewer's first video at the hub's newest keyframe: `run` (that keyframe and
    /// the packets after it) then `packet`, back to back, and opens the gate. Only for a track
    /// that has sent nothing yet: a source switch keeps waiting for a fresh keyframe, so the
    /// munger's timeline never jumps ahead of the wall clock. If the connection's queue fills
    /// on the way, the gate closes again and the viewer waits for a requested keyframe.
    fn fast_start(
        &mut self,
        track: &TrackLocalStaticRTP,
        hub: &TrackHub,
        run: &[Arc<MediaPacket>],
        packet: &MediaPacket,
        now: Instant,
    ) -> bool {
        self.gate.admit(packet.source, true);
        for replayed in run {
            if !self.send(track, hub, replayed, now) {
                self.gate.close();
                self.ask_keyframe(hub, packet.source, now);
                return false;
            }
        }
        hub.count_fast_start();
        self.send(track, hub, packet, now)
    }

    /// Asks upstream for a keyframe when this viewer waits for one (hub-level rate limit).
    fn ask_keyframe(&mut self, hub: &TrackHub, source: u64, now: Instant) {
        let due = match self.keyframe_asked {
            Some((asked_source, at)) => {
                asked_source != source || now.duration_since(at) >= KEYFRAME_RETRY
            }
            None => true,
        };
        if due {
            self.keyframe_asked = Some((source, now));
            hub.request_keyframe();
        }
    }
}
