//! The admin API (control plane, I/O shell): every room with its sessions, ending a room,
//! kicking a participant, minting tokens, and guest invite links (which a room's broadcaster
//! may mint too). Credentials: a token with `"admin": true`, or the server secret as Bearer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::access::percent_encode;
use super::{ApiError, App, valid_room};
use crate::auth::{Action, Principal, Role, unix_now};
use crate::peer::session::random_id;

/// Largest admin request body (bytes).
const MAX_BODY: usize = 4096;
/// Longest token lifetime the API mints (30 days).
const MAX_TTL: u64 = 30 * 24 * 3600;
/// Lifetime of an invite when none is asked for.
const INVITE_TTL: u64 = 24 * 3600;

/// The admin routes.
pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/admin/rooms", get(rooms))
        .route("/api/rooms/{room}", delete(end_room))
        .route("/api/rooms/{room}/participants/{user}", delete(kick))
        .route("/api/tokens", post(mint))
        .route("/api/rooms/{room}/invites", post(invite))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Chat WebSocket connections the admin API can end (data channels end with their session).
#[derive(Default)]
pub struct Ejector {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, (String, String, CancellationToken)>>,
}

/// A registered connection; unregisters on drop.
pub struct Ejectable<'a> {
    ejector: &'a Ejector,
    id: u64,
    /// Cancelled when the admin API ends the connection's room or kicks its user.
    pub ejected: CancellationToken,
}

impl Drop for Ejectable<'_> {
    fn drop(&mut self) {
        self.ejector
            .conns
            .lock()
            .expect("ejector lock poisoned")
            .remove(&self.id);
    }
}

impl Ejector {
    /// Registers a chat connection of `user` in `room`.
    pub fn register(&self, room: &str, user: &str) -> Ejectable<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let ejected = CancellationToken::new();
        self.conns
            .lock()
            .expect("ejector lock poisoned")
            .insert(id, (room.to_owned(), user.to_owned(), ejected.clone()));
        Ejectable {
            ejector: self,
            id,
            ejected,
        }
    }

    /// Ends the connections in `room` (of `user` only, if given); returns how many.
    pub fn eject(&self, room: &str, user: Option<&str>) -> usize {
        let conns = self.conns.lock().expect("ejector lock poisoned");
        let mut n = 0;
        for (r, u, token) in conns.values() {
            if r == room && user.is_none_or(|user| user == u) {
                token.cancel();
                n += 1;
            }
        }
        n
    }
}

/// The body of a JSON request, with a 400 naming what is wrong.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("bad_request", format!("invalid JSON body: {e}")))
}

async fn rooms(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    app.authorize_admin(&headers)?;
    let mut rooms = Vec::new();
    for room in app.rooms.all() {
        let name = room.name().to_owned();
        let mut detail =
            serde_json::to_value(room.detail()).map_err(|e| ApiError::internal("room", e))?;
        detail["private"] = json!(app.visibility(&name) == crate::auth::Visibility::Private);
        if let Some(chat) = app.chat.stats(&name).await {
            detail["chat"] = json!(chat);
        }
        rooms.push(detail);
    }
    Ok(Json(json!({ "rooms": rooms })))
}

async fn end_room(
    State(app): State<App>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    valid_room(&room)?;
    let admin = app.authorize_admin(&headers)?;
    let sessions = app.sessions.end_room(&room);
    let chats = app.ejector.eject(&room, None);
    if sessions.is_empty() && chats == 0 && app.rooms.get(&room).is_none() {
        return Err(ApiError::not_found(format!("no room `{room}`")));
    }
    tracing::info!(%room, by = %admin.claims().map_or("?", |c| c.sub.as_str()), sessions = sessions.len(), chats, "room ended by an admin");
    Ok(Json(json!({
        "room": room,
        "ended_sessions": sessions.len(),
        "ended_chats": chats,
    })))
}

async fn kick(
    State(app): State<App>,
    Path((room, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    valid_room(&room)?;
    let admin = app.authorize_admin(&headers)?;
    let sessions = app.sessions.end_user(&room, &user);
    let chats = app.ejector.eject(&room, Some(&user));
    if sessions.is_empty() && chats == 0 {
        return Err(ApiError::not_found(format!(
            "user `{user}` has no session or chat in room `{room}`"
        )));
    }
    tracing::info!(%room, %user, by = %admin.claims().map_or("?", |c| c.sub.as_str()), sessions = sessions.len(), chats, "participant kicked by an admin");
    Ok(Json(json!({
        "room": room,
        "user": user,
        "ended_sessions": sessions.len(),
        "ended_chats": chats,
    })))
}

/// `POST /api/tokens` body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct MintRequest {
    room: Option<String>,
    role: Option<Role>,
    name: Option<String>,
    sub: Option<String>,
    ttl: Option<u64>,
    admin: bool,
}

fn check_ttl(ttl: Option<u64>, default: u64) -> Result<u64, ApiError> {
    let ttl = ttl.unwrap_or(default);
    if ttl == 0 || ttl > MAX_TTL {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("ttl must be 1..={MAX_TTL} seconds"),
        ));
    }
    Ok(ttl)
}

fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("{what} must be 1-64 printable characters"),
        ));
    }
    Ok(())
}

async fn mint(
    State(app): State<App>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    app.authorize_admin(&headers)?;
    let req: MintRequest = body(&bytes)?;
    let ttl = check_ttl(req.ttl, 3600)?;
    let name = req.name.unwrap_or_else(|| "admin".to_owned());
    check_name(&name, "name")?;
    let sub = req
        .sub
        .unwrap_or_else(|| name.to_lowercase().replace(' ', "-"));
    check_name(&sub, "sub")?;
    let token = if req.admin {
        app.keys.mint_admin(&sub, &name, ttl)
    } else {
        let room = req.room.ok_or_else(|| {
            ApiError::bad_request("bad_request", "`room` (a room name or `*`) is required")
        })?;
        if room != "*" {
            valid_room(&room)?;
        }
        let role = req.role.ok_or_else(|| {
            ApiError::bad_request(
                "bad_request",
                "`role` (broadcaster, guest, moderator or viewer) is required",
            )
        })?;
        app.keys.mint_for(&room, role, &sub, &name, ttl)
    };
    Ok(Json(json!({ "token": token, "expires": unix_now() + ttl })))
}

/// `POST /api/rooms/{room}/invites` body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct InviteRequest {
    name: Option<String>,
    ttl: Option<u64>,
}

async fn invite(
    State(app): State<App>,
    Path(room): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_room(&room)?;
    let by = app.authorize(&headers, None, &room, Action::Invite)?;
    let req: InviteRequest = body(&bytes)?;
    let ttl = check_ttl(req.ttl, INVITE_TTL)?;
    let name = req.name.unwrap_or_else(|| "Guest".to_owned());
    check_name(&name, "name")?;
    let sub = format!("guest-{}", &random_id()[..12]);
    let token = app.keys.mint_for(&room, Role::Guest, &sub, &name, ttl);
    let by = match &by {
        Principal::Anonymous => "anonymous",
        Principal::User(c) | Principal::Admin(c) => c.sub.as_str(),
    };
    tracing::info!(%room, %by, guest = %sub, "guest invite minted");
    Ok(Json(json!({
        "token": token,
        "url": format!("/guest/{room}?token={}", percent_encode(&token)),
        "expires": unix_now() + ttl,
        "sub": sub,
    })))
}
