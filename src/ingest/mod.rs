//! WHIP ingest (RFC 9725): `POST /whip/{room}` authenticates a broadcaster or guest, takes a
//! place on the room's stage (the broadcaster's slot or a guest place), answers the offer
//! (negotiating the RFC 6464 audio level extension) and starts a [`publisher`] session task.

mod publisher;
pub mod sender_reports;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::http::{ApiError, App, valid_room};
use crate::peer::offer::{apply_offer, complete_answer, created, read_offer};
use crate::peer::session::{Session, SessionKind, SessionUser};
use crate::peer::{PeerError, PeerRole};
use crate::room::SlotError;

/// `POST /whip/{room}`: start publishing.
pub async fn post(
    State(app): State<App>,
    Path(room_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    valid_room(&room_name)?;
    let principal = app.authorize(&headers, None, &room_name, crate::auth::Action::Publish)?;
    let claims = principal
        .claims()
        .cloned()
        .ok_or_else(|| ApiError::internal("publish", "the matrix let an anonymous publisher in"))?;
    let user = SessionUser::from_claims(&claims);
    app.chat.check_ban(&room_name, &user).await?;
    let (offer, _summary) = read_offer(&headers, &body)?;

    let room = app.rooms.get_or_create(&room_name);
    let (pc, events) = app
        .peers
        .build(PeerRole::Publisher)
        .await
        .map_err(peer_error)?;
    let session = Session::new(&room_name, SessionKind::Whip, user, pc.clone());
    let source = app.rooms.next_source();
    let claimed = match room.claim_publisher(&session.id, &claims, source) {
        Ok(claimed) => claimed,
        Err(e) => {
            close_quietly(&pc).await;
            return Err(slot_error(e));
        }
    };
    let replaced = claimed.replaced;
    if let Some(old) = replaced {
        tracing::info!(room = %room_name, old = %old, "same user published again: replacing the old session");
        app.sessions.end(&old);
    }

    let negotiated = async {
        apply_offer(pc.as_ref(), offer).await?;
        complete_answer(pc.as_ref(), events.gathered.clone(), app.config.public_ip).await
    }
    .await;
    let answer = match negotiated {
        Ok(answer) => answer,
        Err(e) => {
            room.release_publisher(&session.id);
            close_quietly(&pc).await;
            return Err(e);
        }
    };

    app.sessions.insert(session.clone());
    app.ops.session_started(&session);
    let span = crate::ops::Ops::span(&session);
    tracing::info!(parent: &span, room = %room_name, session = %session.id, user = %claims.sub, "publisher joined");
    let audio_level_ext = pc
        .local_description()
        .await
        .and_then(|d| crate::core::stage::audio_level_ext_id(&d.sdp));
    let ctx = publisher::PublisherCtx {
        app: app.clone(),
        room,
        session: session.clone(),
        source,
        member: claimed.member,
        audio_level_ext,
    };
    app.tasks.spawn(tracing::Instrument::instrument(
        publisher::run(ctx, events),
        span,
    ));
    Ok(created(
        &session,
        answer,
        &crate::peer::offer::ice_links(&app, &headers, &session.user.id),
    ))
}

/// Maps a refused stage place to 409 (`room_busy`, `stage_full`) or 403 (`removed`).
fn slot_error(e: SlotError) -> ApiError {
    match e {
        SlotError::Taken { .. } => ApiError::conflict("room_busy", e.to_string()),
        SlotError::StageFull { .. } => ApiError::conflict("stage_full", e.to_string()),
        SlotError::Removed { .. } => {
            ApiError::new(axum::http::StatusCode::FORBIDDEN, "removed", e.to_string())
        }
    }
}

/// Maps a PeerConnection build failure to 503 (no port) or 500.
pub(crate) fn peer_error(e: PeerError) -> ApiError {
    match e {
        PeerError::NoPort(_) => ApiError::unavailable(
            "no_media_port",
            "the server has no free UDP port for media right now; try again later",
        ),
        PeerError::WebRtc(detail) => {
            ApiError::internal("creating the PeerConnection failed", detail)
        }
    }
}

/// Closes a PeerConnection that never became a session.
pub(crate) async fn close_quietly(pc: &Arc<dyn webrtc::peer_connection::PeerConnection>) {
    if let Err(e) = pc.close().await {
        tracing::debug!(error = %e, "closing an unused PeerConnection");
    }
}
