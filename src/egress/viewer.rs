//! A WHEP viewer session (egress side of the media path): drains its own bounded queues from
//! the room's hubs, holds video until a keyframe, rewrites SSRC/seq/ts/PT with an [`RtpMunger`]
//! so publisher changes are seamless, and answers the viewer's RTCP (PLI/FIR upstream, NACKs
//! from the track's retransmission cache).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::RTCPeerConnectionState;
use webrtc::rtp_transceiver::RtpSender;

use crate::core::rtp::{KeyframeGate, MungerConfig, RtpMunger, nack_seqs};
use crate::http::{ApiError, App};
use crate::peer::session::Session;
use crate::peer::{MIME_H264, MIME_OPUS, PeerEvent, PeerEvents};
use crate::room::{MediaPacket, Room, TrackHub, TrackKind};

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

    /// Subscribes to `hub`: from now on packets queue for this viewer.
    pub fn attach(self, hub: Arc<TrackHub>) -> (ViewerTrack, mpsc::Receiver<Arc<MediaPacket>>) {
        let subscription = hub.subscribe();
        let munger = RtpMunger::new(MungerConfig {
            out_ssrc: self.ssrc,
            out_pt: self.pt,
            clock_rate: self.kind.clock_rate(),
            first_seq: rand::random(),
            first_ts: rand::random(),
        });
        let track = ViewerTrack {
            track: self.track,
            kind: self.kind,
            hub,
            subscription_id: subscription.id,
            dropped: subscription.dropped,
            munger,
            gate: KeyframeGate::new(),
            keyframe_asked: None,
        };
        (track, subscription.rx)
    }
}

/// One outgoing track of a viewer, fed by its hub subscription.
pub struct ViewerTrack {
    track: Arc<TrackLocalStaticRTP>,
    kind: TrackKind,
    hub: Arc<TrackHub>,
    subscription_id: u64,
    dropped: Arc<AtomicU64>,
    munger: RtpMunger,
    gate: KeyframeGate,
    keyframe_asked: Option<(u64, Instant)>,
}

impl ViewerTrack {
    /// This viewer's drop counter for this track.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Forwards one packet: keyframe gate (video), rewrite, write.
    async fn forward(&mut self, packet: &MediaPacket, connected: bool) {
        if !connected {
            // Nothing can be sent before DTLS is up; start at a keyframe once it is.
            self.gate.close();
            return;
        }
        let now = Instant::now();
        if self.kind == TrackKind::Video && !self.gate.admit(packet.source, packet.keyframe) {
            self.ask_keyframe(packet.source, now);
            return;
        }
        self.send(packet, now).await;
    }

    async fn send(&mut self, packet: &MediaPacket, now: Instant) {
        let Some(out) = self
            .munger
            .rewrite(packet.source, packet.seq, packet.ts, now)
        else {
            return;
        };
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
        if let Err(e) = self.track.write_rtp(rtp).await {
            tracing::trace!(error = %e, "write_rtp to viewer failed");
        }
    }

    /// Asks upstream for a keyframe when this viewer waits for one (hub-level rate limit).
    fn ask_keyframe(&mut self, source: u64, now: Instant) {
        let due = match self.keyframe_asked {
            Some((asked_source, at)) => {
                asked_source != source || now.duration_since(at) >= KEYFRAME_RETRY
            }
            None => true,
        };
        if due {
            self.keyframe_asked = Some((source, now));
            self.hub.request_keyframe();
        }
    }

    /// Handles RTCP feedback the viewer sent about this track.
    async fn on_rtcp(&mut self, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                self.hub.request_keyframe();
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.hub.count_nack();
                self.retransmit(nack).await;
            }
        }
    }

    /// RFC 4585 §6.2.1 Generic NACK, answered from the track's shared cache.
    async fn retransmit(&mut self, nack: &TransportLayerNack) {
        let now = Instant::now();
        let mut sent = 0;
        for pair in &nack.nacks {
            for out_seq in nack_seqs(pair.packet_id, pair.lost_packets) {
                if sent == MAX_RETRANSMIT_PER_NACK {
                    return;
                }
                let Some(src_seq) = self.munger.source_seq(out_seq) else {
                    continue;
                };
                if let Some(packet) = self.hub.cached(src_seq) {
                    self.send(&packet, now).await;
                    self.hub.count_retransmit();
                    sent += 1;
                }
            }
        }
    }
}

/// What a viewer task needs.
pub struct ViewerCtx {
    pub app: App,
    pub room: Arc<Room>,
    pub session: Arc<Session>,
    pub video: Option<(ViewerTrack, mpsc::Receiver<Arc<MediaPacket>>)>,
    pub audio: Option<(ViewerTrack, mpsc::Receiver<Arc<MediaPacket>>)>,
    pub events: PeerEvents,
}

/// The next queued packet, or never when the viewer has no such track.
async fn recv_packet(
    rx: &mut Option<mpsc::Receiver<Arc<MediaPacket>>>,
) -> Option<Arc<MediaPacket>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next RTCP event of a track, or never when the viewer has no such track.
async fn recv_feedback(track: &Option<Arc<TrackLocalStaticRTP>>) -> Option<TrackLocalEvent> {
    match track {
        Some(t) => t.poll().await,
        None => std::future::pending().await,
    }
}

type Split = (
    Option<ViewerTrack>,
    Option<mpsc::Receiver<Arc<MediaPacket>>>,
    Option<Arc<TrackLocalStaticRTP>>,
);

fn split(track: Option<(ViewerTrack, mpsc::Receiver<Arc<MediaPacket>>)>) -> Split {
    match track {
        Some((t, rx)) => {
            let local = t.track.clone();
            (Some(t), Some(rx), Some(local))
        }
        None => (None, None, None),
    }
}

/// Runs until the session is ended (DELETE, shutdown) or the viewer's connection fails.
pub async fn run(ctx: ViewerCtx) {
    let ViewerCtx {
        app,
        room,
        session,
        video,
        audio,
        mut events,
    } = ctx;
    let (mut video, mut video_rx, video_local) = split(video);
    let (mut audio, mut audio_rx, audio_local) = split(audio);
    let cancel = session.cancel.clone();
    let connect_deadline = tokio::time::sleep(app.config.connect_timeout());
    tokio::pin!(connect_deadline);
    let mut connected = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            event = events.events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    connected = true;
                    if let Some(v) = video.as_mut() {
                        v.hub.request_keyframe();
                    }
                    tracing::debug!(session = %session.id, "viewer connected");
                }
                Some(PeerEvent::State(state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed))) => {
                    tracing::info!(session = %session.id, %state, "viewer connection ended");
                    break;
                }
                Some(PeerEvent::DataChannel(channel)) => {
                    crate::chat::attach_data_channel(&app, &session, channel);
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut connect_deadline, if !connected => {
                tracing::warn!(session = %session.id, "viewer never connected (ICE/DTLS); closing");
                break;
            }
            Some(TrackLocalEvent::OnRtcpPacket(rtcp)) = recv_feedback(&video_local) => {
                if let Some(v) = video.as_mut() {
                    v.on_rtcp(rtcp).await;
                }
            }
            Some(_) = recv_feedback(&audio_local) => {}
            Some(packet) = recv_packet(&mut video_rx) => {
                if let Some(v) = video.as_mut() {
                    v.forward(&packet, connected).await;
                }
            }
            Some(packet) = recv_packet(&mut audio_rx) => {
                if let Some(a) = audio.as_mut() {
                    a.forward(&packet, connected).await;
                }
            }
        }
    }
    for t in video.iter().chain(audio.iter()) {
        t.hub.unsubscribe(t.subscription_id);
    }
    app.sessions.remove(&session.id);
    room.remove_viewer(&session.id);
    if let Err(e) = session.pc.close().await {
        tracing::debug!(error = %e, "closing viewer PeerConnection");
    }
    tracing::info!(room = room.name(), session = %session.id, "viewer left");
}
