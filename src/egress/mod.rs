//! WHEP egress (draft-ietf-wish-whep, I/O): `POST /whep/{room}` answers a viewer's recvonly
//! offer with one H.264 and one Opus sendonly track per slot (K audio+video pairs offered = K
//! slots, see [`SlotPlan`]) and starts a [`viewer`] task that switches each slot's source to a
//! participant on stage. A viewer may join before anyone publishes; media starts when a
//! publisher does.

pub mod composite;
pub mod hls;
pub mod recorder;
mod viewer;
mod viewer_session;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
use crate::core::stage::SlotMids;
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
    let principal = app.authorize(&headers, None, &room_name, crate::auth::Action::ViewWhep)?;
    let claims = principal.claims().cloned();
    let user = claims
        .as_ref()
        .map(SessionUser::from_claims)
        .unwrap_or_else(SessionUser::anonymous);
    app.chat.check_ban(&room_name, &user).await?;
    let (offer, summary) = read_offer(&headers, &body)?;
    let plan = SlotPlan::from_offer(&summary, app.config.stage.max_slots());

    let (pc, events) = app
        .peers
        .build(PeerRole::Viewer)
        .await
        .map_err(peer_error)?;
    let negotiated = async {
        apply_offer(pc.as_ref(), offer).await?;
        // add_track binds each track to the next transceiver of its kind without a sender,
        // i.e. the offer's m-sections in order: slot i gets the i-th video and audio section.
        let mut added = Vec::with_capacity(plan.len());
        for (slot, wanted) in plan.iter().enumerate() {
            let video = match &wanted.video {
                Some((_, codecs)) => Some(add_video(pc.as_ref(), codecs, slot).await?),
                None => None,
            };
            let audio = match wanted.audio {
                Some(_) => {
                    Some(add_track(pc.as_ref(), RtpCodecKind::Audio, opus_codec(), slot).await?)
                }
                None => None,
            };
            added.push((video, audio));
        }
        let answer =
            complete_answer(pc.as_ref(), events.gathered.clone(), app.config.public_ip).await?;
        let mut slots = Vec::with_capacity(added.len());
        for ((video, audio), wanted) in added.into_iter().zip(plan.iter()) {
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
            slots.push(viewer::SlotOut {
                video,
                audio,
                mids: wanted.mids(),
            });
        }
        Ok::<_, ApiError>((answer, slots))
    }
    .await;
    let (answer, slots) = match negotiated {
        Ok(ok) => ok,
        Err(e) => {
            close_quietly(&pc).await;
            return Err(e);
        }
    };

    let room = app.rooms.get_or_create(&room_name);
    let name = user.name.clone();
    // Those who may publish watch as stage participants (studio, guest page), not as audience.
    let participant = matches!(
        user.role,
        crate::auth::Role::Broadcaster | crate::auth::Role::Guest
    );
    let session = Session::new(&room_name, SessionKind::Whep, user, pc.clone());
    let slots: Vec<viewer::Slot> = slots.into_iter().map(viewer::Slot::new).collect();
    let drop_counters = slots.iter().flat_map(viewer::Slot::dropped).collect();
    room.add_viewer(
        ViewerInfo::new(session.id.clone(), name.clone(), drop_counters).participant(participant),
    );
    app.sessions.insert(session.clone());
    app.ops.session_started(&session);
    let span = crate::ops::Ops::span(&session);
    tracing::info!(parent: &span, room = %room_name, session = %session.id, viewer = %name, "viewer joined");
    let task = viewer_session::run(viewer_session::ViewerCtx {
        app: app.clone(),
        room,
        session: session.clone(),
        slots,
        events,
    });
    app.tasks.spawn(tracing::Instrument::instrument(task, span));
    Ok(created(
        &session,
        answer,
        &crate::peer::offer::ice_links(&app, &headers, &session.user.id),
    ))
}

/// What one slot of the viewer's offer can receive: a video m-section (mid, H.264
/// packetization-mode=1 codecs in the offer's order of preference) and/or an audio one.
struct WantedSlot {
    video: Option<(Option<String>, Vec<Codec>)>,
    audio: Option<Option<String>>,
}

impl WantedSlot {
    fn mids(&self) -> SlotMids {
        SlotMids {
            video_mid: self.video.as_ref().and_then(|(mid, _)| mid.clone()),
            audio_mid: self.audio.clone().flatten(),
        }
    }
}

/// The slots of a WHEP offer (multi-participant WHEP with pre-allocated transceivers): the
/// i-th receivable video and the i-th receivable audio m-section form slot i, up to
/// `max_slots`. A plain offer (one video, one audio) is one slot: the broadcaster.
struct SlotPlan;

impl SlotPlan {
    fn from_offer(summary: &OfferSummary, max_slots: usize) -> Vec<WantedSlot> {
        let sections = |kind| {
            summary
                .media
                .iter()
                .filter(move |m| m.kind == kind && !m.port_zero)
        };
        // Stop at the first section onair cannot fill: add_track would bind later tracks to it.
        let videos: Vec<_> = sections(MediaKind::Video)
            .map(|m| {
                let codecs: Vec<Codec> = m
                    .codecs
                    .iter()
                    .filter(|c| c.is_h264_mode1())
                    .cloned()
                    .collect();
                (m.mid.clone(), codecs)
            })
            .take_while(|(_, codecs)| !codecs.is_empty())
            .take(max_slots)
            .collect();
        let audios: Vec<_> = sections(MediaKind::Audio)
            .take_while(|m| m.codecs.iter().any(|c| c.is_opus()))
            .map(|m| m.mid.clone())
            .take(max_slots)
            .collect();
        let count = videos.len().max(audios.len());
        let mut videos = videos.into_iter();
        let mut audios = audios.into_iter();
        (0..count)
            .map(|_| WantedSlot {
                video: videos.next(),
                audio: audios.next(),
            })
            .collect()
    }
}

/// Adds the video track with the first H.264 profile of the offer that onair can answer,
/// respecting the viewer's order of preference.
async fn add_video(
    pc: &dyn PeerConnection,
    offered: &[Codec],
    slot: usize,
) -> Result<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>), ApiError> {
    let mut last_error = None;
    for codec in offered {
        let fmtp = codec
            .fmtp
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        match add_track(pc, RtpCodecKind::Video, h264_codec(&fmtp), slot).await {
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

/// Adds one sendonly track for `slot`; each slot is its own stream (`onair-{slot}`) so a
/// browser gets one MediaStream per participant shown.
async fn add_track(
    pc: &dyn PeerConnection,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    slot: usize,
) -> Result<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>), ApiError> {
    let label = match kind {
        RtpCodecKind::Video => "video",
        _ => "audio",
    };
    let ssrc = rand::random::<u32>();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("onair-{slot}"),
        format!("onair-{label}-{slot}"),
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
