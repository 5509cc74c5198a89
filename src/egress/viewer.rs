//! A WHEP viewer's outgoing tracks (egress side of the media path, hot path): each drains its
//! own bounded queue from whichever participant's hub its slot shows, holds video until a
//! keyframe, rewrites SSRC/seq/ts/PT with an [`RtpMunger`] so source switches are seamless,
//! and answers the viewer's RTCP (PLI/FIR upstream, NACKs from the hub's retransmission
//! cache). The session task that switches sources is [`super::viewer_session`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::rtp_transceiver::RtpSender;

use crate::core::rtp::{KeyframeGate, MungerConfig, RtpMunger, nack_seqs};
use crate::core::stage::SlotMids;
use crate::http::ApiError;
use crate::peer::{MIME_H264, MIME_OPUS};
use crate::room::{MediaPacket, TrackHub, TrackKind};

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
            track: self.track,
            kind: self.kind,
            hub: None,
            subscription_id: 0,
            dropped: Arc::new(AtomicU64::new(0)),
            munger,
            gate: KeyframeGate::new(),
            keyframe_asked: None,
            last_source: 0,
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

/// One outgoing track of a viewer, fed by its current hub subscription.
pub struct ViewerTrack {
    track: Arc<TrackLocalStaticRTP>,
    kind: TrackKind,
    hub: Option<Arc<TrackHub>>,
    subscription_id: u64,
    dropped: Arc<AtomicU64>,
    munger: RtpMunger,
    gate: KeyframeGate,
    keyframe_asked: Option<(u64, Instant)>,
    /// Source of the last packet sent: retransmissions from another source are skipped.
    last_source: u64,
}

impl ViewerTrack {
    /// This viewer's drop counter for this track (kept across source switches).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// The local track (for its RTCP events).
    pub fn local(&self) -> Arc<TrackLocalStaticRTP> {
        self.track.clone()
    }

    /// Switches this track to `hub` (or to nothing): leaves the old hub, subscribes to the
    /// new one and, for video, waits for and asks for a keyframe of the new source. The
    /// munger keeps the outgoing SSRC/seq/ts continuous across the switch.
    pub fn switch(
        &mut self,
        hub: Option<Arc<TrackHub>>,
        connected: bool,
    ) -> Option<mpsc::Receiver<Arc<MediaPacket>>> {
        self.detach();
        self.gate.close();
        self.keyframe_asked = None;
        let hub = hub?;
        let subscription = hub.subscribe_counted(self.dropped.clone());
        self.subscription_id = subscription.id;
        if connected && self.kind == TrackKind::Video {
            hub.request_keyframe();
        }
        self.hub = Some(hub);
        Some(subscription.rx)
    }

    /// Leaves the current hub.
    pub fn detach(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.unsubscribe(self.subscription_id);
        }
    }

    /// Asks the current source for a keyframe (video only).
    pub fn request_keyframe(&self) {
        if let Some(hub) = self.hub.as_ref().filter(|_| self.kind == TrackKind::Video) {
            hub.request_keyframe();
        }
    }

    /// Forwards one packet: keyframe gate (video), rewrite, write.
    pub async fn forward(&mut self, packet: &MediaPacket, connected: bool) {
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
        match self.track.write_rtp(rtp).await {
            Ok(()) => {
                if let Some(hub) = &self.hub {
                    hub.count_sent(len);
                }
            }
            Err(e) => tracing::trace!(error = %e, "write_rtp to viewer failed"),
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
            self.request_keyframe();
        }
    }

    /// Handles RTCP feedback the viewer sent about this track.
    pub async fn on_rtcp(&mut self, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        let Some(hub) = self.hub.clone() else {
            return;
        };
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                hub.request_keyframe();
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                hub.count_nack();
                self.retransmit(&hub, nack).await;
            }
        }
    }

    /// RFC 4585 §6.2.1 Generic NACK, answered from the hub's shared cache.
    async fn retransmit(&mut self, hub: &TrackHub, nack: &TransportLayerNack) {
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
                if let Some(packet) = hub.cached(src_seq).filter(|p| p.source == self.last_source) {
                    self.send(&packet, now).await;
                    hub.count_retransmit();
                    sent += 1;
                }
            }
        }
    }
}
