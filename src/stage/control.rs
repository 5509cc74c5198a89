//! The broadcaster's stage controls (control plane, I/O): [`apply`] carries out mute, unmute
//! and remove for both ways in: `POST /api/rooms/{room}/stage/{user}` with
//! `{"action":"mute"|"unmute"|"remove"}` and the broadcaster's Bearer token ([`post`]), and the
//! chat message `{"type":"stage",...}` from the room's broadcaster (the chat hub). Mute stops
//! forwarding the guest's audio (to everyone, LL-HLS included); remove takes the guest off
//! stage, refuses them for the room's lifetime and ends their WHIP and WHEP sessions once
//! everyone has been told. The stage task's `system` events are the visible effect.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use crate::auth::Role;
use crate::core::chat::StageAction;
use crate::http::{ApiError, App, valid_room};

/// Largest accepted request body.
const MAX_BODY: usize = 1024;
/// How long a removed guest's sessions stay up so the stage update and the chat event reach
/// their page before the connection goes.
const REMOVE_GRACE: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    action: String,
}

/// Why a stage control did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The room does not exist (nobody is in it).
    #[error("no such room")]
    NoRoom,
    /// Nobody with that id is a guest on the room's stage.
    #[error("`{0}` is not a guest on this stage")]
    NotAGuest(String),
}

/// What a stage control did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The guest's mute is now `muted`; `changed` is false when it already was.
    Muted {
        /// The new state.
        muted: bool,
        /// It changed.
        changed: bool,
    },
    /// The guest is off stage; their sessions end after a short grace.
    Removed,
}

/// Carries out `action` on guest `user` of room `room_name`, on behalf of its broadcaster (the
/// caller checked that). The one code path of the HTTP and the chat controls.
pub fn apply(
    app: &App,
    room_name: &str,
    user: &str,
    action: StageAction,
) -> Result<Outcome, ControlError> {
    let room = app.rooms.get(room_name).ok_or(ControlError::NoRoom)?;
    let not_a_guest = |_| ControlError::NotAGuest(user.to_owned());
    match action {
        StageAction::Mute | StageAction::Unmute => {
            let muted = action == StageAction::Mute;
            let changed = room.set_guest_muted(user, muted).map_err(not_a_guest)?;
            tracing::info!(room = %room_name, %user, muted, changed, "stage: mute set");
            Ok(Outcome::Muted { muted, changed })
        }
        StageAction::Remove => {
            room.remove_guest(user).map_err(not_a_guest)?;
            tracing::info!(room = %room_name, %user, "stage: guest removed");
            let app2 = app.clone();
            let (r, u) = (room_name.to_owned(), user.to_owned());
            app.tasks.spawn(async move {
                tokio::time::sleep(REMOVE_GRACE).await;
                let ended = app2.sessions.end_user(&r, &u);
                tracing::info!(room = %r, user = %u, sessions = ended.len(), "removed guest's sessions ended");
            });
            Ok(Outcome::Removed)
        }
    }
}

/// `POST /api/rooms/{room}/stage/{user}`.
pub async fn post(
    State(app): State<App>,
    Path((room_name, user)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    valid_room(&room_name)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = app.keys.verify_bearer(authorization)?;
    if claims.role != Role::Broadcaster || !claims.covers_room(&room_name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the room's broadcaster controls the stage",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is limited to {MAX_BODY} bytes"),
        ));
    }
    let control: Control = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_request",
            format!("expected {{\"action\":\"mute\"|\"unmute\"|\"remove\"}}: {e}"),
        )
    })?;
    let action = StageAction::parse(&control.action).ok_or_else(|| {
        ApiError::bad_request(
            "bad_action",
            format!(
                "unknown action `{}`: use mute, unmute or remove",
                control.action
            ),
        )
    })?;
    match apply(&app, &room_name, &user, action) {
        Ok(Outcome::Muted { muted, .. }) => {
            Ok(Json(serde_json::json!({"user": user, "muted": muted})))
        }
        Ok(Outcome::Removed) => Ok(Json(serde_json::json!({"user": user, "removed": true}))),
        Err(e) => Err(ApiError::not_found(e.to_string())),
    }
}
