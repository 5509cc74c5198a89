//! Read-only JSON API (control plane): liveness and the rooms with their publishers and
//! viewer counts.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, App, valid_room};
use crate::peer::session::SessionKind;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/rooms", get(rooms))
        .route("/api/rooms/{room}", get(room))
}

async fn healthz(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "publishers": app.sessions.count(SessionKind::Whip),
        "viewers": app.sessions.count(SessionKind::Whep),
    }))
}

async fn rooms(State(app): State<App>) -> Json<Value> {
    Json(json!({ "rooms": app.rooms.list() }))
}

async fn room(State(app): State<App>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    valid_room(&name)?;
    let room = app.rooms.get(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no room `{name}` (nobody has published or watched it yet)"
        ))
    })?;
    let mut detail =
        serde_json::to_value(room.detail()).map_err(|e| ApiError::internal("room", e))?;
    if let Some(chat) = app.chat.stats(&name).await {
        detail["chat"] = json!(chat);
    }
    Ok(Json(detail))
}
