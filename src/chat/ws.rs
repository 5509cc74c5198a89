//! `GET /ws/{room}` (chat path, I/O shell): chat over WebSocket for viewers without WebRTC
//! (the LL-HLS live page, programs). Same JSON as the data channel, one object per text frame.
//! `?token=` (or `Authorization: Bearer`) gives the identity; without one, public rooms accept
//! an anonymous viewer. A banned user's upgrade succeeds, gets `{"type":"error","code":"banned"}`
//! and a close frame (1008), so a browser page can say why.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};

use super::conn::{ConnRx, Inbound};
use super::{Joined, error_frame, identity, join};
use crate::auth::Action;
use crate::core::chat::Transport;
use crate::http::limits::{ChatSocketSlot, client_ip, hold_chat_socket, with_retry};
use crate::http::{ApiError, App, valid_room};
use crate::peer::session::SessionUser;

/// Largest WebSocket message read; bigger frames end the connection (chat frames are far
/// smaller; the gate answers `too_long` above the configured size).
const MAX_MESSAGE: usize = 64 * 1024;
/// Read buffer of a connection (tungstenite's default is 128 KiB, zeroed before each read);
/// chat frames are small and a bigger one still fits, the buffer grows for it.
const READ_BUFFER: usize = 4 * 1024;
/// Keep-alive ping interval.
const PING_EVERY: Duration = Duration::from_secs(25);
/// A connection silent (not even a pong) for this long is closed.
const IDLE: Duration = Duration::from_secs(75);
/// Frames written per flush.
const BATCH: usize = 64;
/// Close code for a ban (RFC 6455 §7.4.1, policy violation).
const CLOSE_POLICY: u16 = 1008;
/// Close code at server shutdown (RFC 6455 §7.4.1, going away).
const CLOSE_GOING_AWAY: u16 = 1001;

/// `GET /ws/{room}`: upgrade to a chat connection, within the client IP's chat socket limit.
pub async fn get(
    State(app): State<App>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    valid_room(&room)?;
    let principal = app.authorize(&headers, query.as_deref(), &room, Action::ChatRead)?;
    let user = principal
        .claims()
        .map(SessionUser::from_claims)
        .unwrap_or_else(SessionUser::anonymous);
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("/ws/{{room}} speaks WebSocket only ({e})"),
        )
    })?;
    let ip = client_ip(&app, &headers, peer.map(|Extension(ConnectInfo(a))| a));
    let slot = match hold_chat_socket(&app, ip) {
        Ok(slot) => slot,
        Err(refused) => return Ok(with_retry(refused)),
    };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(app, room, user, socket, slot)))
}

/// One chat connection, from the upgrade to the close; `_slot` keeps its place in the IP's
/// count until then.
async fn serve(
    app: App,
    room: String,
    user: SessionUser,
    socket: WebSocket,
    _slot: Option<ChatSocketSlot>,
) {
    // Shutdown waits (boundedly) for this connection's close frame.
    let _task = app.tasks.token();
    let closing = app.chat.closing();
    let (mut sink, stream) = socket.split();
    let joined = join(&app, &room, identity(&user), Transport::WebSocket).await;
    let Joined {
        conn,
        hub,
        mut rx,
        inbound,
    } = match joined {
        Ok(joined) => joined,
        Err(e) => {
            let _ = sink.send(Message::Text(error_frame(&e))).await;
            let close = CloseFrame {
                code: CLOSE_POLICY,
                reason: e.code().into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
            return;
        }
    };
    tracing::debug!(%room, user = %user.id, conn, "chat WebSocket joined");
    // The reader runs as its own task: a wake-up for outgoing frames (the hot path, one per
    // delivery) then polls only the writer, not the socket's read side as well.
    let mut reader = tokio::spawn(read(stream, inbound));
    let ejectable = app.ejector.register(&room, &user.id);
    // A token of this connection's own: the shared `closing` one would be locked by every
    // connection on every wake-up.
    let closing = closing.child_token();
    let (shutting_down, read_ended) = tokio::select! {
        _ = &mut reader => (false, true),
        _ = write(&mut sink, &mut rx) => (false, false),
        _ = closing.cancelled() => (true, false),
        _ = ejectable.ejected.cancelled() => (false, false),
    };
    if !read_ended {
        // Stopped before the leave below, so no message of this connection follows it.
        reader.abort();
        let _ = reader.await;
    }
    if ejectable.ejected.is_cancelled() {
        // The admin API ended the room or kicked the user (RFC 6455 §7.4.1: policy).
        let close = CloseFrame {
            code: CLOSE_POLICY,
            reason: "ended by an admin".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    }
    if shutting_down {
        let close = CloseFrame {
            code: CLOSE_GOING_AWAY,
            reason: "server shutting down".into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            sink.send(Message::Close(Some(close))),
        )
        .await;
    }
    hub.leave(conn).await;
    tracing::debug!(%room, user = %user.id, conn, "chat WebSocket left");
}

/// Reads the client's frames into the hub until the socket closes, fails or stays silent
/// (not even a pong) for [`IDLE`], or the hub is gone.
async fn read(mut stream: SplitStream<WebSocket>, mut inbound: Inbound) {
    loop {
        let message = match tokio::time::timeout(IDLE, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(_)) | None) | Err(_) => return,
        };
        let alive = match message {
            Message::Text(text) => inbound.frame(text.as_bytes()).await,
            Message::Binary(bytes) => inbound.frame(&bytes).await,
            Message::Close(_) => false,
            Message::Ping(_) | Message::Pong(_) => true,
        };
        if !alive {
            return;
        }
    }
}

/// Writes queued frames (batched per flush) and keep-alive pings; a kicked connection writes
/// what is left, then a close frame.
async fn write(sink: &mut SplitSink<WebSocket, Message>, rx: &mut ConnRx) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    // Made once: a fresh `cancelled()` per loop would register and unregister a waiter on
    // every wake-up.
    let kicked = rx.kick.cancelled();
    tokio::pin!(kicked);
    loop {
        tokio::select! {
            biased;
            _ = &mut kicked => {
                while let Ok(frame) = rx.frames.try_recv() {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                let close = CloseFrame { code: CLOSE_POLICY, reason: "banned".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                return;
            }
            n = rx.frames.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                for frame in batch.drain(..) {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}
