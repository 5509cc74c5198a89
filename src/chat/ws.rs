//! `GET /ws/{room}` (chat path, I/O shell): chat over WebSocket for viewers without WebRTC
//! (the LL-HLS live page, programs). Same JSON as the data channel, one object per text frame.
//! `?token=` (or `Authorization: Bearer`) gives the identity; without one, public rooms accept
//! an anonymous viewer. A banned user's upgrade succeeds, gets `{"type":"error","code":"banned"}`
//! and a close frame (1008), so a browser page can say why.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};

use super::conn::ConnRx;
use super::{Joined, error_frame, identity, join};
use crate::auth::AuthError;
use crate::core::chat::Transport;
use crate::http::{ApiError, App, valid_room};
use crate::peer::session::SessionUser;

/// Largest WebSocket message read; bigger frames end the connection (chat frames are far
/// smaller; the gate answers `too_long` above the configured size).
const MAX_MESSAGE: usize = 64 * 1024;
/// Keep-alive ping interval.
const PING_EVERY: Duration = Duration::from_secs(25);
/// A connection silent (not even a pong) for this long is closed.
const IDLE: Duration = Duration::from_secs(75);
/// Frames written per flush.
const BATCH: usize = 64;
/// Close code for a ban (RFC 6455 §7.4.1, policy violation).
const CLOSE_POLICY: u16 = 1008;

/// `GET /ws/{room}`: upgrade to a chat connection.
pub async fn get(
    State(app): State<App>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    valid_room(&room)?;
    let token = query_token(query.as_deref()).or_else(|| bearer(&headers));
    let user = match token {
        Some(token) => {
            let claims = app.keys.verify(&token)?;
            if !claims.covers_room(&room) {
                return Err(AuthError::WrongRoom.into());
            }
            SessionUser::from_claims(&claims)
        }
        None => SessionUser::anonymous(),
    };
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("/ws/{{room}} speaks WebSocket only ({e})"),
        )
    })?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(app, room, user, socket)))
}

/// The `token` parameter of a query string, percent-decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(percent_decode)
        .filter(|t| !t.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if hex.iter().all(u8::is_ascii_hexdigit) => std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve(app: App, room: String, user: SessionUser, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let joined = join(&app, &room, identity(&user), Transport::WebSocket).await;
    let Joined {
        conn,
        hub,
        mut rx,
        mut inbound,
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
    let reader = async {
        loop {
            let message = match tokio::time::timeout(IDLE, stream.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(_)) | None) | Err(_) => break,
            };
            let alive = match message {
                Message::Text(text) => inbound.frame(text.as_bytes()).await,
                Message::Binary(bytes) => inbound.frame(&bytes).await,
                Message::Close(_) => false,
                Message::Ping(_) | Message::Pong(_) => true,
            };
            if !alive {
                break;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = write(&mut sink, &mut rx) => {}
    }
    hub.leave(conn).await;
    tracing::debug!(%room, user = %user.id, conn, "chat WebSocket left");
}

/// Writes queued frames (batched per flush) and keep-alive pings; a kicked connection writes
/// what is left, then a close frame.
async fn write(sink: &mut SplitSink<WebSocket, Message>, rx: &mut ConnRx) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = rx.kick.cancelled() => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_query_and_is_percent_decoded() {
        assert_eq!(query_token(Some("token=a.b.c")), Some("a.b.c".into()));
        assert_eq!(
            query_token(Some("x=1&token=a%2Eb%2ec")),
            Some("a.b.c".into())
        );
        assert_eq!(query_token(Some("token=")), None);
        assert_eq!(query_token(Some("tokens=x")), None);
        assert_eq!(query_token(None), None);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("%C3%A9+x"), "é x");
    }
}
