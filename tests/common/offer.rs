//! A raw WHEP-style offer from a plain webrtc-rs PeerConnection, for tests that inspect the
//! HTTP exchange itself rather than use the loadtest client.

use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState,
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
    pc.set_local_description(offer).await.expect("local description");
    let _ = tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|d| *d)).await;
    let sdp = pc.local_description().await.expect("offer").sdp;
    (pc, sdp)
}
