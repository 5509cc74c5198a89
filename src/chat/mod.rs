//! Chat (chat path, I/O shell over `core::chat`): one [`hub`] task per room serves both
//! transports, the `chat` data channel of WHIP/WHEP sessions ([`datachannel`]) and
//! `GET /ws/{room}` ([`ws`]). This module holds the registry of hubs, identities, the clock and
//! the ban check WHIP and WHEP make before they accept a session.

pub mod conn;
mod datachannel;
pub mod hub;
pub mod log;
pub mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use dashmap::DashMap;
use webrtc::data_channel::DataChannel;

use crate::auth::Role as AuthRole;
use crate::core::chat::{ChatError, ConnId, Identity, Role, Transport};
use crate::http::{ApiError, App};
use crate::peer::session::{Session, SessionUser};
use conn::{ConnRx, Frame, Inbound};
use hub::{HubHandle, HubStats, JoinError};

/// Label of the chat data channel (DESIGN.md §4).
pub const CHAT_LABEL: &str = "chat";

/// Server time in Unix milliseconds, monotonic within the process (wall clock at start plus
/// the monotonic clock since), so rate limits never see time go backwards.
pub fn now_ms() -> u64 {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, unix) = ANCHOR.get_or_init(|| {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        (Instant::now(), unix)
    });
    unix + at.elapsed().as_millis() as u64
}

/// The chat role of a token role.
pub fn chat_role(role: AuthRole) -> Role {
    match role {
        AuthRole::Broadcaster => Role::Broadcaster,
        AuthRole::Guest => Role::Guest,
        AuthRole::Moderator => Role::Moderator,
        AuthRole::Viewer => Role::Viewer,
    }
}

/// The chat identity of a session's user.
pub fn identity(user: &SessionUser) -> Identity {
    Identity {
        id: user.id.clone(),
        name: user.name.clone(),
        role: chat_role(user.role),
        anonymous: user.anonymous,
    }
}

/// Every room's chat hub.
pub struct ChatHubs {
    hubs: DashMap<String, HubHandle>,
    next_conn: AtomicU64,
    next_hub: AtomicU64,
    /// Cancelled at server shutdown: WebSocket chats close with 1001 (going away).
    closing: tokio_util::sync::CancellationToken,
}

impl Default for ChatHubs {
    fn default() -> Self {
        Self {
            hubs: DashMap::new(),
            next_conn: AtomicU64::new(1),
            next_hub: AtomicU64::new(1),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }
}

impl ChatHubs {
    /// The hub of `room`, started if needed.
    fn hub(&self, app: &App, room: &str) -> HubHandle {
        self.hubs
            .entry(room.to_owned())
            .or_insert_with(|| {
                let id = self.next_hub.fetch_add(1, Ordering::Relaxed);
                hub::spawn(app, room, id)
            })
            .clone()
    }

    /// Removes the registry entry of a hub that is stopping (if it is still that hub).
    fn forget(&self, room: &str, id: u64) {
        self.hubs.remove_if(room, |_, h| h.id == id);
    }

    /// WHIP and WHEP ask before they accept a session: `403 banned` while `user` is banned.
    pub async fn check_ban(&self, room: &str, user: &SessionUser) -> Result<(), ApiError> {
        let Some(hub) = self.hubs.get(room).map(|h| h.clone()) else {
            return Ok(());
        };
        hub.check_ban(&user.id, chat_role(user.role))
            .await
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string()))
    }

    /// Server shutdown: every WebSocket chat gets a close frame (1001, going away).
    pub fn shutdown(&self) {
        self.closing.cancel();
    }

    /// Cancelled when the server shuts down.
    pub(crate) fn closing(&self) -> tokio_util::sync::CancellationToken {
        self.closing.clone()
    }

    /// Sends a server-made JSON frame (stage `system`/`speaker` events, DESIGN.md §4
    /// extended) to everyone in `room`'s chat, over both transports. Never waits; a room
    /// without a chat hub has nobody to tell.
    pub fn broadcast(&self, room: &str, json: String) {
        if let Some(hub) = self.hubs.get(room).map(|h| h.clone())
            && !hub.broadcast(Frame::from(json))
        {
            tracing::debug!(%room, "chat hub busy or gone: stage event dropped");
        }
    }

    /// The counters of `room`'s chat, if it has one.
    pub async fn stats(&self, room: &str) -> Option<HubStats> {
        let hub = self.hubs.get(room).map(|h| h.clone())?;
        hub.stats().await
    }
}

/// A joined connection: its id, hub, outgoing queue and inbound half.
pub(crate) struct Joined {
    pub conn: ConnId,
    pub hub: HubHandle,
    pub rx: ConnRx,
    pub inbound: Inbound,
}

/// Joins `room`'s chat; the welcome is already queued on the returned connection.
pub(crate) async fn join(
    app: &App,
    room: &str,
    identity: Identity,
    transport: Transport,
) -> Result<Joined, ChatError> {
    let limits = &app.config.chat;
    let conn = app.chat.next_conn.fetch_add(1, Ordering::Relaxed);
    for _ in 0..3 {
        let hub = app.chat.hub(app, room);
        let (tx, rx, reply) = conn::pair(&identity.id, limits.queue);
        match hub.join(conn, identity.clone(), transport, tx).await {
            Ok(()) => {
                let inbound = Inbound::new(conn, limits, hub.clone(), reply);
                return Ok(Joined {
                    conn,
                    hub,
                    rx,
                    inbound,
                });
            }
            Err(JoinError::Refused(e)) => return Err(e),
            Err(JoinError::HubGone) => continue,
        }
    }
    Err(ChatError::bad_request(
        "the room's chat is restarting; connect again",
    ))
}

/// A data channel the remote of `session` opened: a `chat` channel joins the room's chat as
/// the session's user (until the channel or the session ends); any other label is closed.
pub fn attach_data_channel(app: &App, session: &Arc<Session>, channel: Arc<dyn DataChannel>) {
    app.tasks
        .spawn(datachannel::run(app.clone(), session.clone(), channel));
}

/// The serialised `error` for `e`.
pub(crate) fn error_frame(e: &ChatError) -> Frame {
    conn::frame(&crate::core::chat::ServerEvent::error(e))
}
