//! WHEP egress (draft-ietf-wish-whep): `POST /whep/{room}` answers a viewer's recvonly offer
//! with one H.264 and one Opus track fed from the room's hubs, and starts a [`viewer`] task.
//! A viewer may join before anyone publishes; media starts when a publisher does.

pub mod hls;
pub mod recorder;
mod viewer;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use crate::core::sdp::{Codec, MediaKind, OfferSummary};
use crate::http::{ApiError, App, valid_room};
use crate::ingest::{close_quietly, peer_error};
use crate::peer::offer::{SUPPORTED_CODECS, apply_offer, complete_answer, created, read_offer};
use crate::peer::session::{Session, SessionKind, SessionUser};
use crate::peer::{PeerRole, h264_codec, opus_codec};
use crate::room::{TrackKind, ViewerInfo};

/// `POST /whep/{room}`: start watching.
pub async fn post(
    State(app): State<App>,
    Path(room_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    valid_room(&room_name)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = app.keys.authorize_view(authorization, &room_name)?;
    let user = claims
        .as_ref()
        .map(SessionUser::from_claims)
        .unwrap_or_else(SessionUser::anonymous);
    app.chat.check_ban(&room_name, &user).await?;
    let (offer, summary) = read_offer(&headers, &body)?;
    let wants = Wants::from_offer(&summary);

    let (pc, events) = app
        .peers
        .build(PeerRole::Viewer)
        .await
        .map_err(peer_error)?;
    let negotiated = async {
        apply_offer(pc.as_ref(), offer).await?;
        let video = match &wants.video {
            Some(codecs) => Some(add_video(pc.as_ref(), codecs).await?),
            None => None,
        };
        let audio = match wants.audio {
            true => Some(add_track(pc.as_ref(), RtpCodecKind::Audio, opus_codec()).await?),
            false => None,
        };
        let answer =
            complete_answer(pc.as_ref(), events.gathered.clone(), app.config.public_ip).await?;
        let video = match video {
            Some((track, sender)) => {
                Some(viewer::Outbound::new(track, sender, TrackKind::Video).await?)
            }
            None => None,
        };
        let audio = match audio {
            Some((track, sender)) => {
                Some(viewer::Outbound::new(track, sender, TrackKind::Audio).await?)
            }
            None => None,
        };
        Ok::<_, ApiError>((answer, video, audio))
    }
    .await;
    let (answer, video, audio) = match negotiated {
        Ok(ok) => ok,
        Err(e) => {
            close_quietly(&pc).await;
            return Err(e);
        }
    };

    let room = app.rooms.get_or_create(&room_name);
    let name = user.name.clone();
    let session = Session::new(&room_name, SessionKind::Whep, user, pc.clone());
    let video = video.map(|out| out.attach(room.hub(TrackKind::Video).clone()));
    let audio = audio.map(|out| out.attach(room.hub(TrackKind::Audio).clone()));
    let drop_counters = video
        .iter()
        .chain(audio.iter())
        .map(|(t, _)| t.dropped())
        .collect();
    room.add_viewer(ViewerInfo::new(
        session.id.clone(),
        name.clone(),
        drop_counters,
    ));
    app.sessions.insert(session.clone());
    tracing::info!(room = %room_name, session = %session.id, viewer = %name, "viewer joined");
    app.tasks.spawn(viewer::run(viewer::ViewerCtx {
        app: app.clone(),
        room,
        session: session.clone(),
        video,
        audio,
        events,
    }));
    Ok(created(&session, answer, &app.link_headers))
}

/// What the viewer's offer can receive.
struct Wants {
    /// H.264 packetization-mode=1 codecs in the offer's order of preference.
    video: Option<Vec<Codec>>,
    audio: bool,
}

impl Wants {
    fn from_offer(summary: &OfferSummary) -> Self {
        let receivable = |kind| {
            summary
                .media
                .iter()
                .find(|m| m.kind == kind && !m.port_zero)
        };
        let video = receivable(MediaKind::Video)
            .map(|m| {
                m.codecs
                    .iter()
                    .filter(|c| c.is_h264_mode1())
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|codecs| !codecs.is_empty());
        let audio =
            receivable(MediaKind::Audio).is_some_and(|m| m.codecs.iter().any(|c| c.is_opus()));
        Self { video, audio }
    }
}

/// Adds the video track with the first H.264 profile of the offer that onair can answer,
/// respecting the viewer's order of preference.
async fn add_video(
    pc: &dyn PeerConnection,
    offered: &[Codec],
) -> Result<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>), ApiError> {
    let mut last_error = None;
    for codec in offered {
        let fmtp = codec
            .fmtp
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        match add_track(pc, RtpCodecKind::Video, h264_codec(&fmtp)).await {
            Ok(added) => return Ok(added),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported_codec",
            format!("no offered H.264 profile can be answered; supported: {SUPPORTED_CODECS}"),
        )
    }))
}

async fn add_track(
    pc: &dyn PeerConnection,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> Result<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>), ApiError> {
    let label = match kind {
        RtpCodecKind::Video => "video",
        _ => "audio",
    };
    let ssrc = rand::random::<u32>();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "onair".to_owned(),
        format!("onair-{label}"),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )));
    let sender = pc
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "unsupported_codec",
                format!("cannot send {label} for this offer ({e}); supported: {SUPPORTED_CODECS}"),
            )
        })?;
    Ok((track, sender))
}
