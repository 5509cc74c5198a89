//! The broadcaster's stage controls over HTTP (control plane, I/O):
//! `POST /api/rooms/{room}/stage/{user}` with `{"action":"mute"|"unmute"|"remove"}` and the
//! broadcaster's Bearer token. Mute stops forwarding the guest's audio (to everyone, LL-HLS
//! included); remove takes the guest off stage, refuses them for the room's lifetime and ends
//! their WHIP and WHEP sessions once everyone has been told.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use crate::auth::Role;
use crate::http::{ApiError, App, valid_room};
use crate::room::StageControlError;

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
    let room = app
        .rooms
        .get(&room_name)
        .ok_or_else(|| ApiError::not_found("no such room"))?;
    let not_a_guest = |e: StageControlError| ApiError::not_found(e.to_string());
    match control.action.as_str() {
        "mute" | "unmute" => {
            let muted = control.action == "mute";
            let changed = room.set_guest_muted(&user, muted).map_err(not_a_guest)?;
            tracing::info!(room = %room_name, %user, muted, changed, "stage: mute set");
            Ok(Json(serde_json::json!({"user": user, "muted": muted})))
        }
        "remove" => {
            room.remove_guest(&user).map_err(not_a_guest)?;
            tracing::info!(room = %room_name, %user, "stage: guest removed");
            let app2 = app.clone();
            let (r, u) = (room_name.clone(), user.clone());
            app.tasks.spawn(async move {
                tokio::time::sleep(REMOVE_GRACE).await;
                let ended = app2.sessions.end_user(&r, &u);
                tracing::info!(room = %r, user = %u, sessions = ended.len(), "removed guest's sessions ended");
            });
            Ok(Json(serde_json::json!({"user": user, "removed": true})))
        }
        other => Err(ApiError::bad_request(
            "bad_action",
            format!("unknown action `{other}`: use mute, unmute or remove"),
        )),
    }
}
