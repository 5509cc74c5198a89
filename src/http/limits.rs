//! Admission limits (control plane, I/O shell in front of `POST /whip|whep/{room}` and the chat
//! WebSocket upgrade): sessions and chat WebSockets per client IP, viewers per room and rooms per
//! server, each refused with its own JSON error before any PeerConnection or socket is built. Counting is exact under concurrency: a request holds a
//! pending slot while it negotiates, and its session is counted from its `Location` on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, App};
use crate::core::forwarded;
use crate::peer::session::{SessionKind, Sessions};

/// `[limits]` in `onair.toml`. `0` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// WHIP + WHEP sessions one client IP may hold at once (`429 too_many_sessions`).
    pub sessions_per_ip: usize,
    /// WHEP viewers per room (`503 room_full`); LL-HLS viewers are not counted.
    pub viewers_per_room: usize,
    /// Rooms the server holds at once; a publish or view that would open one more gets
    /// `503 too_many_rooms`.
    pub rooms: usize,
    /// Chat WebSockets (`GET /ws/{room}`, the LL-HLS viewers' chat) one client IP may hold at
    /// once, over all rooms (`429 too_many_connections`).
    pub chat_sockets_per_ip: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            sessions_per_ip: 50,
            viewers_per_room: 2000,
            rooms: 500,
            chat_sockets_per_ip: 100,
        }
    }
}

/// Live and pending sessions per IP and pending viewers per room.
#[derive(Default)]
pub struct Limiter {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_ip: HashMap<IpAddr, IpSessions>,
    pending_viewers: HashMap<String, usize>,
    /// Open chat WebSockets per IP (entries at zero are removed).
    chat_sockets: HashMap<IpAddr, usize>,
}

#[derive(Default)]
struct IpSessions {
    pending: usize,
    /// `(kind, room, id)` of sessions created from this IP; pruned when they end.
    live: Vec<(SessionKind, String, String)>,
}

/// What a request has reserved; released on drop (also when the request is cancelled).
struct Reservation<'a> {
    limiter: &'a Limiter,
    ip: Option<IpAddr>,
    viewer_of: Option<String>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut inner = self.limiter.inner.lock().expect("limiter lock poisoned");
        if let Some(ip) = self.ip
            && let Some(entry) = inner.by_ip.get_mut(&ip)
        {
            entry.pending = entry.pending.saturating_sub(1);
            if entry.pending == 0 && entry.live.is_empty() {
                inner.by_ip.remove(&ip);
            }
        }
        if let Some(room) = &self.viewer_of
            && let Some(n) = inner.pending_viewers.get_mut(room)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.pending_viewers.remove(room);
            }
        }
    }
}

impl Limiter {
    /// Reserves a session for `ip` (and a viewer place in `viewer_of`) or says which limit
    /// refuses it. `viewers_now` is the room's current WHEP viewer count.
    fn reserve(
        &self,
        limits: &LimitsConfig,
        sessions: &Sessions,
        ip: Option<IpAddr>,
        viewer_of: Option<(&str, usize)>,
    ) -> Result<Reservation<'_>, ApiError> {
        let mut inner = self.inner.lock().expect("limiter lock poisoned");
        if let Some(ip) = ip {
            let entry = inner.by_ip.entry(ip).or_default();
            entry
                .live
                .retain(|(kind, room, id)| sessions.get(*kind, room, id).is_some());
            let held = entry.pending + entry.live.len();
            if limits.sessions_per_ip > 0 && held >= limits.sessions_per_ip {
                return Err(too_many_sessions(limits.sessions_per_ip));
            }
        }
        if let Some((room, viewers_now)) = viewer_of {
            let pending = inner.pending_viewers.get(room).copied().unwrap_or(0);
            if limits.viewers_per_room > 0 && viewers_now + pending >= limits.viewers_per_room {
                return Err(ApiError::unavailable(
                    "room_full",
                    format!(
                        "room `{room}` has its maximum of {} viewers; try again later or watch over LL-HLS",
                        limits.viewers_per_room
                    ),
                ));
            }
            *inner.pending_viewers.entry(room.to_owned()).or_default() += 1;
        }
        if let Some(ip) = ip {
            inner.by_ip.entry(ip).or_default().pending += 1;
        }
        Ok(Reservation {
            limiter: self,
            ip,
            viewer_of: viewer_of.map(|(room, _)| room.to_owned()),
        })
    }

    /// Counts the session at `location` (`/whip|whep/{room}/{id}`) against `ip`.
    fn admitted(&self, ip: IpAddr, location: &str) {
        let mut parts = location.trim_start_matches('/').split('/');
        let (Some(kind), Some(room), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let kind = match kind {
            "whip" => SessionKind::Whip,
            "whep" => SessionKind::Whep,
            _ => return,
        };
        let mut inner = self.inner.lock().expect("limiter lock poisoned");
        inner
            .by_ip
            .entry(ip)
            .or_default()
            .live
            .push((kind, room.to_owned(), id.to_owned()));
    }

    /// Live sessions counted against `ip` (ended ones pruned).
    pub fn sessions_of(&self, ip: IpAddr, sessions: &Sessions) -> usize {
        let mut inner = self.inner.lock().expect("limiter lock poisoned");
        inner.by_ip.get_mut(&ip).map_or(0, |e| {
            e.live
                .retain(|(kind, room, id)| sessions.get(*kind, room, id).is_some());
            e.live.len()
        })
    }
}

/// A chat WebSocket's place in its IP's count, given back when the connection ends.
pub struct ChatSocketSlot {
    app: App,
    ip: IpAddr,
}

impl Drop for ChatSocketSlot {
    fn drop(&mut self) {
        let mut inner = self
            .app
            .limiter
            .inner
            .lock()
            .expect("limiter lock poisoned");
        if let Some(n) = inner.chat_sockets.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.chat_sockets.remove(&self.ip);
            }
        }
    }
}

/// Takes a chat WebSocket place for `ip` (none is counted without a peer address), or refuses
/// with `429 too_many_connections` (answer it with [`with_retry`]) when the IP holds its maximum.
pub fn hold_chat_socket(app: &App, ip: Option<IpAddr>) -> Result<Option<ChatSocketSlot>, ApiError> {
    let Some(ip) = ip else { return Ok(None) };
    let max = app.config.limits.chat_sockets_per_ip;
    let mut inner = app.limiter.inner.lock().expect("limiter lock poisoned");
    let held = inner.chat_sockets.entry(ip).or_default();
    if max > 0 && *held >= max {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!("this address already holds {max} chat connections; close one first"),
        );
        return Err(e);
    }
    *held += 1;
    Ok(Some(ChatSocketSlot {
        app: app.clone(),
        ip,
    }))
}

fn too_many_sessions(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sessions",
        format!("this address already holds {max} sessions; end one (DELETE) first"),
    )
}

/// Middleware on the WHIP/WHEP routes: `POST /whip|whep/{room}` passes only within the limits.
pub async fn admission(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut segments = path.trim_start_matches('/').split('/');
    let (kind, room, extra) = (segments.next(), segments.next(), segments.next());
    let (Some(kind @ ("whip" | "whep")), Some(room), None) = (kind, room, extra) else {
        return next.run(request).await;
    };
    if request.method() != Method::POST || !crate::room::is_valid_room_name(room) {
        return next.run(request).await;
    }
    let limits = &app.config.limits;
    let existing = app.rooms.get(room);
    if existing.is_none() && limits.rooms > 0 && app.rooms.list().len() >= limits.rooms {
        return with_retry(ApiError::unavailable(
            "too_many_rooms",
            format!(
                "the server already holds its maximum of {} rooms",
                limits.rooms
            ),
        ));
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let ip = client_ip(&app, request.headers(), peer.map(|c| c.0));
    let viewer_of = (kind == "whep").then(|| (room, existing.map_or(0, |r| r.viewer_count())));
    let reservation = match app.limiter.reserve(limits, &app.sessions, ip, viewer_of) {
        Ok(r) => r,
        Err(e) => return with_retry(e),
    };
    let response = next.run(request).await;
    if let Some(ip) = ip
        && response.status() == StatusCode::CREATED
        && let Some(location) = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    {
        app.limiter.admitted(ip, location);
    }
    drop(reservation);
    response
}

/// The address the per-IP limits count for a request from TCP peer `peer`: the peer itself,
/// or, when it is one of the `trusted_proxies`, the client its `Forwarded` /
/// `X-Forwarded-For` names (see `core::forwarded`). `None` without a peer (in-process tests).
pub fn client_ip(app: &App, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let peer = peer?.ip();
    let trusted = &app.config.trusted_proxies;
    if trusted.is_empty() {
        return Some(peer.to_canonical());
    }
    let lines = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    Some(forwarded::client_ip(
        peer,
        trusted,
        &lines(header::FORWARDED.as_str()),
        &lines("x-forwarded-for"),
    ))
}

/// The error's answer with `Retry-After: 5` (a limit that frees itself as sessions end).
pub fn with_retry(e: ApiError) -> Response {
    let mut response = e.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_per_room_reservations_are_released() {
        let limiter = Limiter::default();
        let sessions = Sessions::default();
        let limits = LimitsConfig {
            sessions_per_ip: 2,
            viewers_per_room: 1,
            rooms: 0,
            chat_sockets_per_ip: 0,
        };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = limiter.reserve(&limits, &sessions, Some(ip), None).unwrap();
        let b = limiter
            .reserve(&limits, &sessions, Some(ip), Some(("r", 0)))
            .unwrap();
        let e = limiter
            .reserve(&limits, &sessions, Some(ip), None)
            .err()
            .unwrap();
        assert_eq!(e.code, "too_many_sessions");
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let e = limiter
            .reserve(&limits, &sessions, Some(other), Some(("r", 0)))
            .err()
            .unwrap();
        assert_eq!(e.code, "room_full", "the pending viewer holds the place");
        drop((a, b));
        assert!(
            limiter
                .reserve(&limits, &sessions, Some(other), Some(("r", 0)))
                .is_ok()
        );
        // A session that is not (or no longer) registered is not counted.
        limiter.admitted(ip, "/whep/r/0123");
        assert_eq!(limiter.sessions_of(ip, &sessions), 0);
        assert!(limiter.inner.lock().unwrap().pending_viewers.is_empty());
    }
}
