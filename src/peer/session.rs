//! WHIP/WHEP session resources (RFC 9725 §4.3-4.4): the registry behind `Location`, `ETag`,
//! trickle ICE and ICE restarts over `PATCH`, and `DELETE`. Control plane; each session's media
//! task lives in `ingest/` or `egress/`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use crate::auth::{Claims, Role};
use crate::core::sdp::{SdpFrag, advertise_host_address, parse_sdpfrag};
use crate::http::ApiError;

/// WHIP (publisher) or WHEP (viewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// `/whip/...`
    Whip,
    /// `/whep/...`
    Whep,
}

impl SessionKind {
    /// The path segment of the protocol.
    pub fn path(self) -> &'static str {
        match self {
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
        }
    }
}

/// Who opened a session: from the token, or generated for an anonymous viewer. A chat data
/// channel of the session speaks as this user, and a chat ban ends the user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// Token `sub`, or `anon-<random>`.
    pub id: String,
    /// Display name (`viewer-<random>` when anonymous).
    pub name: String,
    /// Token role (`viewer` when anonymous).
    pub role: Role,
    /// No token was sent.
    pub anonymous: bool,
}

impl SessionUser {
    /// The user a token names.
    pub fn from_claims(claims: &Claims) -> Self {
        Self {
            id: claims.sub.clone(),
            name: claims.name.clone(),
            role: claims.role,
            anonymous: false,
        }
    }

    /// A fresh anonymous viewer (public rooms need no token).
    pub fn anonymous() -> Self {
        let random = random_id();
        Self {
            id: format!("anon-{}", &random[..12]),
            name: format!("viewer-{}", &random[12..18]),
            role: Role::Viewer,
            anonymous: true,
        }
    }
}

/// One WHIP or WHEP session: the PeerConnection and what the resource URL needs.
pub struct Session {
    /// Random id, the last segment of `Location`.
    pub id: String,
    /// The room.
    pub room: String,
    /// Protocol.
    pub kind: SessionKind,
    /// Who opened it.
    pub user: SessionUser,
    /// The PeerConnection.
    pub pc: Arc<dyn PeerConnection>,
    /// Cancelled when the session must end; the media task then cleans up.
    pub cancel: CancellationToken,
    etag: Mutex<String>,
    /// Serialises PATCHes: an ICE restart is a renegotiation.
    patch_lock: tokio::sync::Mutex<()>,
    /// Per-session messages (the stage layout of a WHEP session) that the session's `chat`
    /// data channel writes after its `welcome`, in order with the chat frames.
    side_feed: std::sync::OnceLock<tokio::sync::watch::Receiver<Arc<str>>>,
}

impl Session {
    /// A new session of `user` with a fresh id and ETag.
    pub fn new(
        room: &str,
        kind: SessionKind,
        user: SessionUser,
        pc: Arc<dyn PeerConnection>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: random_id(),
            room: room.to_owned(),
            kind,
            user,
            pc,
            cancel: CancellationToken::new(),
            etag: Mutex::new(new_etag()),
            patch_lock: tokio::sync::Mutex::new(()),
            side_feed: std::sync::OnceLock::new(),
        })
    }

    /// Sets the session's side feed (once): its current and every later value is sent on the
    /// session's `chat` data channel after the `welcome`.
    pub fn set_side_feed(&self, feed: tokio::sync::watch::Receiver<Arc<str>>) {
        let _ = self.side_feed.set(feed);
    }

    /// A receiver of the side feed, if one was set.
    pub fn side_feed(&self) -> Option<tokio::sync::watch::Receiver<Arc<str>>> {
        self.side_feed.get().cloned()
    }

    /// The current entity tag, quoted.
    pub fn etag(&self) -> String {
        self.etag.lock().expect("etag lock poisoned").clone()
    }

    /// The resource path, used as `Location`.
    pub fn location(&self) -> String {
        format!("/{}/{}/{}", self.kind.path(), self.room, self.id)
    }
}

/// 128 random bits, hex.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn new_etag() -> String {
    format!("\"{}\"", hex::encode(rand::random::<[u8; 8]>()))
}

/// Every live session, by id.
#[derive(Default)]
pub struct Sessions {
    map: DashMap<String, Arc<Session>>,
}

impl Sessions {
    /// Registers a session.
    pub fn insert(&self, session: Arc<Session>) {
        self.map.insert(session.id.clone(), session);
    }

    /// The session `id` if it is a `kind` session of `room`.
    pub fn get(&self, kind: SessionKind, room: &str, id: &str) -> Option<Arc<Session>> {
        self.map
            .get(id)
            .filter(|s| s.kind == kind && s.room == room)
            .map(|s| s.clone())
    }

    /// Removes `id` from the registry; true if it was there.
    pub fn remove(&self, id: &str) -> bool {
        self.map.remove(id).is_some()
    }

    /// Ends session `id`, if it exists: it disappears from the registry at once and its media
    /// task tears the PeerConnection down.
    pub fn end(&self, id: &str) {
        if let Some((_, s)) = self.map.remove(id) {
            s.cancel.cancel();
        }
    }

    /// Ends every WHIP and WHEP session of `user` in `room` (a chat ban); returns their ids.
    pub fn end_user(&self, room: &str, user: &str) -> Vec<String> {
        let ids: Vec<String> = self
            .map
            .iter()
            .filter(|s| s.room == room && s.user.id == user)
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            self.end(id);
        }
        ids
    }

    /// Ends every WHIP and WHEP session in `room` (the admin API ends a room); returns their ids.
    pub fn end_room(&self, room: &str) -> Vec<String> {
        let ids: Vec<String> = self
            .map
            .iter()
            .filter(|s| s.room == room)
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            self.end(id);
        }
        ids
    }

    /// Ends every session (shutdown).
    pub fn end_all(&self) -> Vec<Arc<Session>> {
        let all: Vec<_> = self.map.iter().map(|s| s.clone()).collect();
        for s in &all {
            self.map.remove(&s.id);
            s.cancel.cancel();
        }
        all
    }

    /// Number of live sessions of `kind`.
    pub fn count(&self, kind: SessionKind) -> usize {
        self.map.iter().filter(|s| s.kind == kind).count()
    }
}

/// `DELETE /whip|whep/{room}/{session}`: 200 and the session ends at once; 404 if unknown.
pub fn delete(
    sessions: &Sessions,
    kind: SessionKind,
    room: &str,
    id: &str,
) -> Result<Response, ApiError> {
    let session = sessions
        .get(kind, room, id)
        .ok_or_else(|| ApiError::not_found("no such session (already ended?)"))?;
    sessions.end(&session.id);
    tracing::info!(
        room,
        session = id,
        kind = kind.path(),
        "session ended by DELETE"
    );
    Ok(StatusCode::OK.into_response())
}

/// `PATCH` with `application/trickle-ice-sdpfrag` (RFC 9725 §4.3.1, RFC 8840): trickled
/// candidates answer 204; new ICE credentials restart ICE and answer 200 with ours.
pub async fn patch(
    sessions: &Sessions,
    target: (SessionKind, &str, &str),
    public_ip: Option<IpAddr>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let (kind, room, id) = target;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !media_type_is(content_type, "application/trickle-ice-sdpfrag") {
        return Err(ApiError::unsupported_media_type(
            "application/trickle-ice-sdpfrag",
        ));
    }
    let session = sessions
        .get(kind, room, id)
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    let _patching = session.patch_lock.lock().await;
    if let Some(if_match) = headers.get(header::IF_MATCH) {
        let tag = if_match.to_str().unwrap_or("");
        if tag.trim() != "*" && tag.trim() != session.etag() {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "etag_mismatch",
                "If-Match does not match the session's current ETag",
            ));
        }
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("bad_sdpfrag", "the body is not UTF-8"))?;
    let frag = parse_sdpfrag(text)
        .map_err(|e| ApiError::bad_request("bad_sdpfrag", format!("invalid SDP fragment: {e}")))?;
    let remote = session.pc.remote_description().await.ok_or_else(|| {
        ApiError::conflict("not_negotiated", "the session has no remote description")
    })?;
    let current_ufrag = sdp_attribute(&remote.sdp, "ice-ufrag").unwrap_or_default();
    if frag.is_ice_restart(&current_ufrag) {
        return restart_ice(&session, &remote.sdp, &frag, public_ip).await;
    }
    add_candidates(&session, &frag).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_candidates(session: &Session, frag: &SdpFrag) -> Result<(), ApiError> {
    for (index, media) in frag.media.iter().enumerate() {
        for candidate in &media.candidates {
            let init = RTCIceCandidateInit {
                candidate: candidate.clone(),
                sdp_mid: media.mid.clone(),
                sdp_mline_index: u16::try_from(index).ok(),
                username_fragment: frag.ice_ufrag.clone(),
                ..Default::default()
            };
            // An ICE-lite server learns the browser's addresses from its checks, so a
            // candidate it cannot use is logged, not an error for the client.
            if let Err(e) = session.pc.add_ice_candidate(init).await {
                tracing::debug!(session = %session.id, error = %e, "trickled candidate ignored");
            }
        }
    }
    Ok(())
}

async fn restart_ice(
    session: &Session,
    remote_sdp: &str,
    frag: &SdpFrag,
    public_ip: Option<IpAddr>,
) -> Result<Response, ApiError> {
    let (Some(ufrag), Some(pwd)) = (&frag.ice_ufrag, &frag.ice_pwd) else {
        return Err(ApiError::bad_request(
            "bad_sdpfrag",
            "an ICE restart needs both a=ice-ufrag and a=ice-pwd",
        ));
    };
    let offer = replace_ice_credentials(remote_sdp, ufrag, pwd);
    let offer = RTCSessionDescription::offer(offer)
        .map_err(|e| ApiError::bad_request("bad_sdpfrag", format!("ICE restart refused: {e}")))?;
    session
        .pc
        .set_remote_description(offer)
        .await
        .map_err(|e| {
            ApiError::bad_request("ice_restart_failed", format!("ICE restart refused: {e}"))
        })?;
    let answer = session
        .pc
        .create_answer(None)
        .await
        .map_err(|e| ApiError::internal("ICE restart answer failed", e))?;
    session
        .pc
        .set_local_description(answer)
        .await
        .map_err(|e| ApiError::internal("ICE restart answer failed", e))?;
    let local = session
        .pc
        .local_description()
        .await
        .ok_or_else(|| ApiError::internal("ICE restart", "no local description"))?;
    let etag = new_etag();
    *session.etag.lock().expect("etag lock poisoned") = etag.clone();
    tracing::info!(session = %session.id, "ICE restarted");
    let mut fragment = restart_fragment(&local.sdp);
    if let Some(ip) = public_ip {
        fragment = advertise_host_address(&fragment, ip);
    }
    let mut response = (StatusCode::OK, fragment).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

/// True when a `Content-Type` value names `expected` (parameters and case ignored).
pub fn media_type_is(content_type: &str, expected: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}

/// The first `a=<name>:` value of an SDP.
fn sdp_attribute(sdp: &str, name: &str) -> Option<String> {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// The remote offer with its ICE credentials replaced, to apply an ICE restart.
fn replace_ice_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The answer to an ICE restart (RFC 9725 §4.3.2): our new credentials and candidates, for
/// the first (bundled) media section.
fn restart_fragment(local_sdp: &str) -> String {
    let mut out = String::new();
    let mut in_first_media = false;
    let mut seen_media = false;
    for line in local_sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            if seen_media {
                break;
            }
            seen_media = true;
            in_first_media = true;
            out.push_str(line);
            out.push_str("\r\n");
            continue;
        }
        let keep = line == "a=ice-lite"
            || line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=ice-options:")
            || line.starts_with("a=group:BUNDLE")
            || (in_first_media
                && (line.starts_with("a=mid:")
                    || line.starts_with("a=candidate:")
                    || line == "a=end-of-candidates"));
        if keep {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:NEWU\r\na=ice-pwd:NEWP\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host\r\na=end-of-candidates\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host\r\n";

    #[test]
    fn restart_fragment_carries_credentials_and_first_media_candidates() {
        let frag = restart_fragment(ANSWER);
        assert!(frag.starts_with("a=ice-lite\r\na=group:BUNDLE 0 1\r\nm=video"));
        assert!(frag.contains("a=ice-ufrag:NEWU\r\n") && frag.contains("a=ice-pwd:NEWP\r\n"));
        assert_eq!(frag.matches("a=candidate:").count(), 1);
        assert!(!frag.contains("m=audio"));
        let parsed = parse_sdpfrag(&frag).expect("our fragment parses as RFC 8840");
        assert_eq!(parsed.ice_ufrag.as_deref(), Some("NEWU"));
    }

    #[test]
    fn credentials_are_replaced_everywhere() {
        let sdp =
            "v=0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=video 9 X 1\r\na=ice-ufrag:old\r\n";
        let out = replace_ice_credentials(sdp, "new", "newpwd");
        assert_eq!(out.matches("a=ice-ufrag:new\r\n").count(), 2);
        assert!(out.contains("a=ice-pwd:newpwd") && !out.contains("old"));
        assert_eq!(sdp_attribute(&out, "ice-ufrag").as_deref(), Some("new"));
    }

    #[test]
    fn media_types_ignore_case_and_parameters() {
        assert!(media_type_is(
            "application/SDP; charset=utf-8",
            "application/sdp"
        ));
        assert!(!media_type_is("text/plain", "application/sdp"));
        assert!(!media_type_is("", "application/sdp"));
    }
}
