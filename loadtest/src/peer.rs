//! Test/load client: the WebRTC plumbing shared by the WHIP publisher and the WHEP viewer —
//! codecs, interceptors, connection events, and the non-trickle offer/answer exchange. Does I/O
//! (UDP sockets through webrtc-rs, HTTP through `signaling`).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    SettingEngineBuilder,
};

use crate::error::ClientError;
use crate::signaling::{self, Session};

/// RTP payload type offered for H.264.
pub(crate) const H264_PAYLOAD_TYPE: u8 = 102;
/// RTP payload type offered for Opus.
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Constrained Baseline, level 3.1, packetization-mode 1 (RFC 6184 §8.1), as browsers offer.
pub(crate) const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// How long ICE gathering may take before the offer is sent anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pacing of ICE connectivity checks: RFC 8445 §14.2's default Ta of 50 ms, as browsers pace
/// them (webrtc-rs defaults to 200 ms, which would add ~150 ms to every measured join).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks per candidate pair before it fails: 40 x 50 ms = 2 s.
const ICE_MAX_CHECKS: u16 = 40;

/// The H.264 codec this client offers.
pub(crate) fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        // nack and nack pli are added by `configure_nack`.
        rtcp_feedback: vec![RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        }],
    }
}

/// The Opus codec this client offers (always `opus/48000/2` in SDP, RFC 7587 §7).
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// RFC 6464 client-to-mixer audio level (`a=extmap`, RFC 8285), offered by publishers.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// A media engine with exactly H.264 (pm=1) and Opus, plus the MID header extension; a
/// `sending` peer (publisher) also offers the RFC 6464 audio level extension on audio.
fn media_engine(sending: bool) -> Result<(MediaEngine, Registry), ClientError> {
    let mut engine = MediaEngine::default();
    if sending {
        engine.register_header_extension(
            rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
    }
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    configure_simulcast_extension_headers(&mut engine)?;
    let registry = configure_nack(Registry::new(), &mut engine);
    let registry = configure_rtcp_reports(registry);
    Ok((engine, registry))
}

/// Marks inbound PLI and FIR for delivery to the application (`TrackLocal::poll`) and lets all
/// other inbound RTCP end in the chain, where the report and NACK interceptors consumed it.
/// Sits last (application-most) so every other interceptor saw the whole compound packet.
struct KeyframeRequestForwarder {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            packets.retain(|p| is_keyframe_request(p.as_ref()));
            if packets.is_empty() {
                return Ok(());
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Callback for remote tracks (the viewer spawns its readers here).
pub(crate) type OnTrack = Arc<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

/// Connection events, observable without locks.
pub(crate) struct PeerEvents {
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
    ice_connected_at: OnceLock<Instant>,
    connected_at: OnceLock<Instant>,
}

impl PeerEvents {
    fn new() -> Self {
        Self {
            state: watch::Sender::new(RTCPeerConnectionState::New),
            gathered: watch::Sender::new(false),
            ice_connected_at: OnceLock::new(),
            connected_at: OnceLock::new(),
        }
    }

    /// When ICE first reached `Connected` (a nominated pair; DTLS starts then), if it has.
    pub(crate) fn ice_connected_at(&self) -> Option<Instant> {
        self.ice_connected_at.get().copied()
    }

    /// When the connection first reached `Connected` (ICE and DTLS done), if it has.
    pub(crate) fn connected_at(&self) -> Option<Instant> {
        self.connected_at.get().copied()
    }

    /// The current peer connection state.
    pub(crate) fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// A receiver for state changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<RTCPeerConnectionState> {
        self.state.subscribe()
    }

    /// Waits for `Connected`; fails on `Failed`/`Closed` or after `timeout`.
    pub(crate) async fn wait_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut rx = self.state.subscribe();
        let wait = rx.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        });
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(ClientError::Timeout(format!(
                "peer connection not connected after {timeout:?} (state {})",
                self.state()
            ))),
            Ok(Err(_)) => Err(ClientError::Closed("peer connection dropped".into())),
            Ok(Ok(state)) if *state == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(state)) => Err(ClientError::Closed(format!("peer connection {}", *state))),
        }
    }
}

/// Waits until `rx` reports `Connected`; returns `false` if the connection ended first.
pub(crate) async fn until_connected(rx: &mut watch::Receiver<RTCPeerConnectionState>) -> bool {
    let outcome = rx
        .wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        })
        .await;
    matches!(outcome.as_deref(), Ok(RTCPeerConnectionState::Connected))
}

/// Whether a state means the connection is over for good.
pub(crate) fn is_terminal(state: RTCPeerConnectionState) -> bool {
    matches!(
        state,
        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
    )
}

struct Handler {
    events: Arc<PeerEvents>,
    on_track: Option<OnTrack>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.events.gathered.send_replace(true);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state == RTCIceConnectionState::Connected {
            let _ = self.events.ice_connected_at.set(Instant::now());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state");
        if state == RTCPeerConnectionState::Connected {
            let _ = self.events.connected_at.set(Instant::now());
        }
        self.events.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(on_track) = &self.on_track {
            on_track(track);
        }
    }
}

/// A built, not yet negotiated peer connection.
pub(crate) struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    pub events: Arc<PeerEvents>,
}

/// Builds a peer connection bound to `bind_ip` (one ephemeral UDP port). `keyframe_requests`
/// installs the PLI/FIR forwarder a sender needs; `on_track` receives remote tracks.
pub(crate) async fn build_peer(
    bind_ip: IpAddr,
    keyframe_requests: bool,
    on_track: Option<OnTrack>,
) -> Result<Peer, ClientError> {
    // Only publishers ask for keyframe requests: they are the sending peers.
    let (engine, mut registry) = media_engine(keyframe_requests)?;
    if keyframe_requests {
        registry = registry.with(
            Slot::from(14_000),
            KeyframeRequestForwarder {
                reads: VecDeque::new(),
                writes: VecDeque::new(),
            },
        );
    }
    let events = Arc::new(PeerEvents::new());
    let handler = Arc::new(Handler {
        events: Arc::clone(&events),
        on_track,
    });
    let settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_CHECKS))
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![std::net::SocketAddr::new(bind_ip, 0)])
        .build()
        .await?;
    Ok(Peer {
        pc: Arc::new(pc),
        events,
    })
}

/// Creates the offer, waits for ICE gathering (non-trickle, RFC 9725 §4.1), POSTs it and applies
/// the answer.
pub(crate) async fn negotiate(
    peer: &Peer,
    url: reqwest::Url,
    token: Option<&str>,
) -> Result<Session, ClientError> {
    let offer = peer.pc.create_offer(None).await?;
    peer.pc.set_local_description(offer).await?;
    let mut gathered = peer.events.gathered.subscribe();
    // Without STUN/TURN servers gathering is host-only and near instant; if it stalls, the
    // candidates found so far are in the local description anyway.
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|g| *g)).await;
    let offer_sdp = peer
        .pc
        .local_description()
        .await
        .ok_or_else(|| ClientError::Protocol("no local description after offer".into()))?
        .sdp;
    let session = signaling::post_offer(url, token, offer_sdp).await?;
    let answer = RTCSessionDescription::answer(session.answer.clone())?;
    peer.pc.set_remote_description(answer).await?;
    Ok(session)
}

/// Closes a peer connection from a context that cannot await (a `Drop`).
pub(crate) fn close_in_background(pc: Arc<dyn PeerConnection>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(error) = pc.close().await {
                tracing::debug!(%error, "closing a dropped peer connection");
            }
        });
    }
}
