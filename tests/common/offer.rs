//! A raw WHEP-style offer from a plain webrtc-rs PeerConnection, for tests that inspect the
//! HTTP exchange itself rather than use the loadtest client.

use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCCertificate,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState,
};

struct Gathered(tokio::sync::watch::Sender<bool>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathered {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.0.send_replace(state == RTCIceGatheringState::Complete);
    }
}

/// A recvonly audio+video offer with every candidate; keep the PeerConnection alive while
/// the offer is in use.
pub async fn recvonly_offer() -> (Arc<dyn PeerConnection>, String) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().expect("default codecs");
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_media_engine(engine)
            .with_handler(Arc::new(Gathered(tx)))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("client PeerConnection"),
    );
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .expect("transceiver");
    }
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer)
        .await
        .expect("local description");
    let _ = tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|d| *d)).await;
    let sdp = pc.local_description().await.expect("offer").sdp;
    (pc, sdp)
}

struct Watch {
    gathered: tokio::sync::watch::Sender<bool>,
    state: tokio::sync::watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Watch {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered
            .send_replace(state == RTCIceGatheringState::Complete);
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }
}

/// A bare WHIP publisher (one Opus track) using `certificate` for DTLS, or webrtc-rs' default
/// ECDSA P-256 one. Returns the PeerConnection, its offer and a watch of its state.
pub async fn sendonly_peer(
    certificate: Option<RTCCertificate>,
) -> (
    Arc<dyn PeerConnection>,
    String,
    tokio::sync::watch::Receiver<RTCPeerConnectionState>,
) {
    let (gathered, mut gathered_rx) = tokio::sync::watch::channel(false);
    let (state, state_rx) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().expect("default codecs");
    let mut config = RTCConfigurationBuilder::new();
    if let Some(cert) = certificate {
        config = config.with_certificates(vec![cert]);
    }
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(config.build())
            .with_media_engine(engine)
            .with_handler(Arc::new(Watch { gathered, state }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("client PeerConnection"),
    );
    let track = webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP::new(
        rtc::media_stream::MediaStreamTrack::new(
            "client".to_owned(),
            "client-audio".to_owned(),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![rtc::rtp_transceiver::rtp_sender::RTCRtpEncodingParameters {
                rtp_coding_parameters: rtc::rtp_transceiver::rtp_sender::RTCRtpCodingParameters {
                    ssrc: Some(rand::random()),
                    ..Default::default()
                },
                codec: onair::peer::opus_codec(),
                ..Default::default()
            }],
        ),
    );
    pc.add_track(Arc::new(track)).await.expect("audio track");
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer)
        .await
        .expect("local description");
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx.wait_for(|d| *d)).await;
    let sdp = pc.local_description().await.expect("offer").sdp;
    (pc, sdp, state_rx)
}
