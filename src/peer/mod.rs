//! PeerConnection construction shared by ingest (WHIP) and egress (WHEP): media engine (H.264
//! packetization-mode=1 + Opus), ICE-lite, the UDP port range, and event forwarding (I/O shell).

mod feedback;
pub mod offer;
mod ports;
pub mod session;

pub use ports::PortAllocator;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateType, RTCIceGatheringState, RTCPeerConnectionState,
    Registry, SettingEngineBuilder,
};

use crate::config::Config;

/// MIME type of H.264 in the media engine.
pub const MIME_H264: &str = "video/H264";
/// MIME type of Opus in the media engine.
pub const MIME_OPUS: &str = "audio/opus";

/// H.264 profiles accepted with packetization-mode=1 (RFC 6184 §8.1). webrtc-rs matches
/// `profile-level-id` on its first two bytes (profile_idc and constraint flags), so each
/// profile a publisher may offer needs an entry: constrained baseline (browsers), baseline,
/// main, high and constrained high (OBS/FFmpeg/GStreamer with x264).
const H264_PROFILES: [(u8, &str); 6] = [
    (102, "42e01f"),
    (104, "42001f"),
    (106, "4d001f"),
    (108, "64001f"),
    (110, "640c1f"),
    (112, "4d401f"),
];

/// Bytes a data channel may have in flight before a send waits (webrtc's default is unbounded):
/// a chat peer that stops reading then backs up into its bounded queue, where the hub drops.
pub const DATA_CHANNEL_SEND_LIMIT: usize = 256 * 1024;

/// Timer period of an ICE-lite agent until a pair is nominated. webrtc-rs queues the DTLS
/// ClientHello (we answer `setup:active`) when the nomination arrives but sends it only on the
/// pipeline's next timer tick, by default up to 200 ms later; a lite agent sends no checks of
/// its own, so a short period only bounds that wait (and ends once ICE is connected).
const ICE_LITE_TICK: Duration = Duration::from_millis(10);

/// Chain position of [`feedback::RtcpDelivery`]: beyond every built-in interceptor.
const FEEDBACK_SLOT: usize = 14_000;

/// Which side of the SFU a PeerConnection serves; decides interceptors and feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// A WHIP publisher: we receive. NACK generator, receiver reports, TWCC feedback so the
    /// browser's bandwidth estimate ramps up.
    Publisher,
    /// A WHEP viewer: we send. Sender reports; NACKs are answered by onair from the shared
    /// per-track cache rather than a per-viewer interceptor buffer.
    Viewer,
}

/// What a PeerConnection reports to the session that owns it.
pub enum PeerEvent {
    /// The connection state changed.
    State(RTCPeerConnectionState),
    /// The remote sent a track (publishers only).
    Track(Arc<dyn TrackRemote>),
    /// The remote opened a data channel.
    DataChannel(Arc<dyn DataChannel>),
}

/// Receiving side of a PeerConnection's events.
pub struct PeerEvents {
    /// Connection state, tracks and data channels, in order.
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    /// Becomes true when ICE gathering is complete (the answer then carries every candidate).
    pub gathered: watch::Receiver<bool>,
}

struct EventForwarder {
    events: mpsc::UnboundedSender<PeerEvent>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventForwarder {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered
            .send_replace(state == RTCIceGatheringState::Complete);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.events.send(PeerEvent::DataChannel(channel));
    }
}

/// Why a PeerConnection could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Every port tried was busy.
    #[error("no free UDP port in {0}")]
    NoPort(String),
    /// webrtc refused the configuration.
    #[error("webrtc: {0}")]
    WebRtc(String),
}

/// Builds server-side PeerConnections with onair's settings.
pub struct PeerFactory {
    ports: PortAllocator,
    host: IpAddr,
    public_ip: Option<IpAddr>,
    ice_lite: bool,
}

impl PeerFactory {
    /// A factory for `config`'s port range, bind address and public IP.
    pub fn new(config: &Config) -> Self {
        Self {
            ports: PortAllocator::new(config.udp_ports),
            host: config.udp_host,
            public_ip: config.public_ip,
            ice_lite: config.ice_lite,
        }
    }

    /// Builds a PeerConnection bound to the next free port of the range.
    pub async fn build(
        &self,
        role: PeerRole,
    ) -> Result<(Arc<dyn PeerConnection>, PeerEvents), PeerError> {
        let attempts = self.ports.capacity().min(16);
        let mut last_error = String::new();
        for _ in 0..attempts {
            let port = self.ports.next_port();
            let (tx, rx) = mpsc::unbounded_channel();
            let (gathered_tx, gathered_rx) = watch::channel(false);
            let handler = Arc::new(EventForwarder {
                events: tx,
                gathered: gathered_tx,
            });
            let (media_engine, registry) = media_setup(role)?;
            let result = PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_setting_engine(self.setting_engine())
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_handler(handler)
                .with_udp_addrs(vec![SocketAddr::new(self.host, port)])
                .with_data_channel_send_buffer_limit(DATA_CHANNEL_SEND_LIMIT)
                .build()
                .await;
            match result {
                Ok(pc) => {
                    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
                    let events = PeerEvents {
                        events: rx,
                        gathered: gathered_rx,
                    };
                    return Ok((pc, events));
                }
                Err(e) => {
                    tracing::debug!(port, error = %e, "could not build a PeerConnection on this port");
                    last_error = e.to_string();
                }
            }
        }
        tracing::warn!(error = %last_error, "no usable UDP port");
        Err(PeerError::NoPort(last_error))
    }

    fn setting_engine(&self) -> webrtc::peer_connection::SettingEngine {
        // ICE-lite (RFC 8445 §2.5, the default): the server only answers checks and needs no
        // STUN/TURN of its own. mDNS off: the browser's `.local` candidates are ignored and
        // ours are plain IPs.
        let mut builder = SettingEngineBuilder::new()
            .with_lite(self.ice_lite)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled);
        if self.ice_lite {
            builder = builder.with_ice_connection_attempts(Some(ICE_LITE_TICK), None);
        }
        if let Some(ip) = self.public_ip {
            builder = builder.with_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
        }
        builder.build()
    }
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .collect()
}

/// The H.264 codec entry with `fmtp` (as written in an SDP `a=fmtp` line).
pub fn h264_codec(fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// The Opus codec entry (RFC 7587).
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_setup(role: PeerRole) -> Result<(MediaEngine, Registry), PeerError> {
    let err = |e: webrtc::error::Error| PeerError::WebRtc(e.to_string());
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(err)?;
    for (pt, profile) in H264_PROFILES {
        let fmtp =
            format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}");
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264_codec(&fmtp),
                    payload_type: pt,
                },
                RtpCodecKind::Video,
            )
            .map_err(err)?;
    }
    let registry = Registry::new();
    let registry = match role {
        PeerRole::Publisher => {
            // RFC 6464 audio levels feed the active-speaker detection (core::stage::speaker).
            engine
                .register_header_extension(
                    rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                        uri: crate::core::stage::speaker::AUDIO_LEVEL_URI.to_owned(),
                    },
                    RtpCodecKind::Audio,
                    None,
                )
                .map_err(err)?;
            let registry = configure_nack(registry, &mut engine);
            let registry = configure_rtcp_reports(registry);
            // Sender reports reach the publisher's tracks (A/V alignment of the HLS tap).
            let registry = registry.with(
                Slot::from(FEEDBACK_SLOT),
                feedback::RtcpDelivery::publisher_reports(),
            );
            configure_twcc_receiver_only(registry, &mut engine).map_err(err)?
        }
        PeerRole::Viewer => {
            for fb in video_feedback() {
                engine.register_feedback(fb, RtpCodecKind::Video);
            }
            // Application-most slot: every interceptor has seen the RTCP before it is marked.
            configure_rtcp_reports(registry).with(
                Slot::from(FEEDBACK_SLOT),
                feedback::RtcpDelivery::viewer_feedback(),
            )
        }
    };
    Ok((engine, registry))
}
