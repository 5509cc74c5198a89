//! A bare webrtc-rs peer for tests that inspect the WHIP/WHEP exchange itself (headers, the
//! answer, DTLS certificates, RTCP) rather than use the loadtest client.

use std::sync::Arc;
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCCertificate,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
};

struct Events {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered
            .send_replace(state == RTCIceGatheringState::Complete);
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

/// How to build a [`RawPeer`].
#[derive(Default)]
pub struct RawOptions {
    /// DTLS certificate; webrtc-rs' default ECDSA P-256 one when `None`.
    pub certificate: Option<RTCCertificate>,
    /// Send one Opus track (a WHIP publisher) instead of receiving audio and video (WHEP).
    pub send: bool,
}

/// A bare peer with its offer already created (every candidate gathered).
pub struct RawPeer {
    pub pc: Arc<dyn PeerConnection>,
    pub offer: String,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

impl RawPeer {
    /// Builds the peer and its offer.
    pub async fn new(options: RawOptions) -> Self {
        let (gathered, mut gathered_rx) = watch::channel(false);
        let (state, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let (tracks, tracks_rx) = mpsc::unbounded_channel();
        let mut engine = MediaEngine::default();
        engine.register_default_codecs().expect("default codecs");
        let mut config = RTCConfigurationBuilder::new();
        if let Some(cert) = options.certificate {
            config = config.with_certificates(vec![cert]);
        }
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(config.build())
                .with_media_engine(engine)
                .with_handler(Arc::new(Events {
                    gathered,
                    state,
                    tracks,
                }))
                .with_udp_addrs(vec!["127.0.0.1:0"])
                .build()
                .await
                .expect("client PeerConnection"),
        );
        if options.send {
            let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
                "client".to_owned(),
                "client-audio".to_owned(),
                "audio".to_owned(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(rand::random()),
                        ..Default::default()
                    },
                    codec: onair::peer::opus_codec(),
                    ..Default::default()
                }],
            ));
            pc.add_track(Arc::new(track)).await.expect("audio track");
        } else {
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
        }
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer)
            .await
            .expect("local description");
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx.wait_for(|d| *d)).await;
        let offer = pc.local_description().await.expect("offer").sdp;
        Self {
            pc,
            offer,
            state: state_rx,
            tracks: tracks_rx,
        }
    }

    /// Applies the server's answer.
    pub async fn answer(&self, sdp: String) {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp).expect("answer SDP"))
            .await
            .expect("answer applies");
    }

    /// Waits until the connection state is `Connected`.
    pub async fn connected(&mut self, timeout: Duration) {
        tokio::time::timeout(
            timeout,
            self.state
                .wait_for(|s| *s == RTCPeerConnectionState::Connected),
        )
        .await
        .expect("connects in time")
        .expect("state channel open");
    }
}
