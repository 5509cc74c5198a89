//! Read-only JSON API (control plane): liveness and the rooms with their publishers and
//! viewer counts. Private rooms are listed and shown only to holders of a token for them
//! (`auth::policy`, actions `ListRooms` and `RoomDetail`).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, App, request_token, valid_room};
use crate::auth::Action;
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

async fn rooms(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = request_token(&headers, query.as_deref())?;
    if let Some(t) = &token {
        app.keys.principal(t)?; // a bad token is an error, not an anonymous listing
    }
    let visible: Vec<_> = app
        .rooms
        .list()
        .into_iter()
        .filter(|r| {
            let vis = app.visibility(&r.room);
            app.keys
                .authorize(token.as_deref(), &r.room, vis, Action::ListRooms)
                .is_ok()
        })
        .collect();
    Ok(Json(json!({ "rooms": visible })))
}

async fn room(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    valid_room(&name)?;
    app.authorize(&headers, query.as_deref(), &name, Action::RoomDetail)?;
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
