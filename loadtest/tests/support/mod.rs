//! Test/load client tests: a minimal in-process WHIP/WHEP forwarder (not onair) so the client
//! can be exercised end to end over real loopback ICE/DTLS/SRTP before and beside the real
//! server. One room, one publisher; every viewer gets the publisher's packets with its own SSRC
//! and payload type, starting at a keyframe; a joining viewer triggers a PLI upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use onair_loadtest::h264::rtp_payload_starts_keyframe;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{broadcast, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, register_default_interceptors,
};

/// The token the test server accepts for publishing.
pub const TOKEN: &str = "test-token";

#[derive(Default)]
struct Sfu {
    video: Mutex<Option<broadcast::Sender<Packet>>>,
    audio: Mutex<Option<broadcast::Sender<Packet>>>,
    upstream_video: Mutex<Option<(Arc<dyn TrackRemote>, u32)>>,
    sessions: Mutex<HashMap<String, Arc<dyn PeerConnection>>>,
    next_id: AtomicU64,
}

impl Sfu {
    fn channel(&self, kind: RtpCodecKind) -> broadcast::Sender<Packet> {
        let slot = if kind == RtpCodecKind::Video {
            &self.video
        } else {
            &self.audio
        };
        slot.lock()
            .expect("lock")
            .get_or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }

    async fn request_keyframe(&self) {
        let upstream = self.upstream_video.lock().expect("lock").clone();
        if let Some((track, ssrc)) = upstream {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        }
    }
}

struct Handler {
    sfu: Arc<Sfu>,
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    /// Echoes every text message on a data channel the client opened (for the chat test).
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                match event {
                    DataChannelEvent::OnMessage(message) if message.is_string => {
                        let text = String::from_utf8_lossy(&message.data).into_owned();
                        let _ = channel.send_text(&format!("echo:{text}")).await;
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let tx = self.sfu.channel(kind);
        if kind == RtpCodecKind::Video
            && let Some(ssrc) = track.ssrcs().await.first().copied()
        {
            *self.sfu.upstream_video.lock().expect("lock") = Some((Arc::clone(&track), ssrc));
        }
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let _ = tx.send(packet);
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

struct Answered {
    pc: Arc<dyn PeerConnection>,
    answer: String,
    state: watch::Receiver<RTCPeerConnectionState>,
}

async fn answer(
    sfu: &Arc<Sfu>,
    offer: String,
    tracks: &[Arc<TrackLocalStaticRTP>],
) -> Result<Answered, String> {
    let mut engine = MediaEngine::default();
    engine
        .register_default_codecs()
        .map_err(|e| e.to_string())?;
    let registry =
        register_default_interceptors(Registry::new(), &mut engine).map_err(|e| e.to_string())?;
    let (gathered, mut gathered_rx) = watch::channel(false);
    let (state, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let handler = Arc::new(Handler {
        sfu: Arc::clone(sfu),
        gathered,
        state,
    });
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    for track in tracks {
        pc.add_track(Arc::clone(track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| e.to_string())?;
    }
    let offer = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered_rx.wait_for(|g| *g)).await;
    let answer = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    Ok(Answered {
        pc,
        answer,
        state: state_rx,
    })
}

fn created(sfu: &Sfu, kind: &str, room: &str, answered: Answered) -> Response {
    let id = sfu.next_id.fetch_add(1, Ordering::Relaxed).to_string();
    sfu.sessions
        .lock()
        .expect("lock")
        .insert(id.clone(), answered.pc);
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/{kind}/{room}/{id}")),
            (header::ETAG, format!("\"{id}\"")),
        ],
        answered.answer,
    )
        .into_response()
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"error":"{code}","message":"{code}"}}"#),
    )
        .into_response()
}

async fn whip(
    State(sfu): State<Arc<Sfu>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    offer: String,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    match answer(&sfu, offer, &[]).await {
        Ok(answered) => created(&sfu, "whip", &room, answered),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

fn local_track(
    kind: RtpCodecKind,
    ssrc: u32,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "sfu".to_owned(),
        format!("sfu-{kind}-{ssrc}"),
        "sfu".to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

async fn whep(State(sfu): State<Arc<Sfu>>, Path(room): Path<String>, offer: String) -> Response {
    let video_ssrc: u32 = rand::random();
    let audio_ssrc: u32 = rand::random();
    let video = local_track(RtpCodecKind::Video, video_ssrc, h264());
    let audio = local_track(RtpCodecKind::Audio, audio_ssrc, opus());
    let answered = match answer(&sfu, offer, &[Arc::clone(&video), Arc::clone(&audio)]).await {
        Ok(answered) => answered,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let senders = answered.pc.get_senders().await;
    for (track, kind, ssrc) in [
        (video, RtpCodecKind::Video, video_ssrc),
        (audio, RtpCodecKind::Audio, audio_ssrc),
    ] {
        let mut payload_type = None;
        for sender in &senders {
            if sender.track().kind().await == kind
                && let Ok(params) = sender.get_parameters().await
            {
                payload_type = params.rtp_parameters.codecs.first().map(|c| c.payload_type);
            }
        }
        let Some(payload_type) = payload_type else {
            continue;
        };
        let rx = sfu.channel(kind).subscribe();
        let state = answered.state.clone();
        let sfu = Arc::clone(&sfu);
        tokio::spawn(forward(sfu, rx, state, track, kind, ssrc, payload_type));
    }
    created(&sfu, "whep", &room, answered)
}

/// Forwards upstream packets to one viewer track: own SSRC, own sequence numbers, negotiated
/// payload type; video starts at a keyframe, which it asks the publisher for.
async fn forward(
    sfu: Arc<Sfu>,
    mut rx: broadcast::Receiver<Packet>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    track: Arc<TrackLocalStaticRTP>,
    kind: RtpCodecKind,
    ssrc: u32,
    payload_type: u8,
) {
    if state
        .wait_for(|s| *s == RTCPeerConnectionState::Connected)
        .await
        .is_err()
    {
        return;
    }
    let mut started = kind != RtpCodecKind::Video;
    if !started {
        sfu.request_keyframe().await;
    }
    let mut seq: u16 = rand::random();
    loop {
        let mut packet = match rx.recv().await {
            Ok(packet) => packet,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !started {
            if !rtp_payload_starts_keyframe(&packet.payload) {
                continue;
            }
            started = true;
        }
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        packet.header.sequence_number = seq;
        packet.header.extensions.clear();
        packet.header.extension = false;
        seq = seq.wrapping_add(1);
        if track.write_rtp(packet).await.is_err()
            && matches!(
                *state.borrow(),
                RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed
            )
        {
            return;
        }
    }
}

fn h264() -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
    rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
        mime_type: "video/H264".to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![],
    }
}

fn opus() -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
    rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

async fn end_session(
    State(sfu): State<Arc<Sfu>>,
    Path((_room, id)): Path<(String, String)>,
) -> Response {
    let pc = sfu.sessions.lock().expect("lock").remove(&id);
    match pc {
        Some(pc) => {
            let _ = pc.close().await;
            StatusCode::OK.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// Starts the forwarder on an ephemeral loopback port; returns its base URL.
pub async fn start() -> String {
    let sfu = Arc::new(Sfu::default());
    let app = Router::new()
        .route("/whip/{room}", post(whip))
        .route("/whep/{room}", post(whep))
        .route("/whip/{room}/{id}", delete(end_session))
        .route("/whep/{room}/{id}", delete(end_session))
        .with_state(sfu);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}
