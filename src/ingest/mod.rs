//! WHIP ingest (RFC 9725): `POST /whip/{room}` authenticates a broadcaster or guest, takes the
//! room's publishing slot, answers the offer and starts a [`publisher`] session task.

mod publisher;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
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
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = app.keys.authorize_publish(authorization, &room_name)?;
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
    let replaced = match room.claim_publisher(&session.id, &claims, source) {
        Ok(replaced) => replaced,
        Err(e @ SlotError::Taken { .. }) => {
            close_quietly(&pc).await;
            return Err(ApiError::conflict("room_busy", e.to_string()));
        }
    };
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
    tracing::info!(room = %room_name, session = %session.id, user = %claims.sub, "publisher joined");
    let ctx = publisher::PublisherCtx {
        app: app.clone(),
        room,
        session: session.clone(),
        source,
    };
    app.tasks.spawn(publisher::run(ctx, events));
    Ok(created(&session, answer, &app.link_headers))
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
