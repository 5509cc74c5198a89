//! The offer/answer exchange of a WHIP or WHEP `POST` (RFC 9725 §4.2): checks the offer, applies
//! it, waits for our candidates and builds the `201 Created` response. Control plane.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::session::{Session, media_type_is};
use crate::auth::Action;
use crate::config::IceServer;
use crate::core::sdp::{OfferSummary, advertise_host_address, parse_offer};
use crate::http::{ApiError, App, AppState};

/// How long we wait for our own candidates; an ICE-lite server gathers host candidates at
/// once, so this only bounds a misbehaving network stack.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// The codecs onair forwards, named in 406 errors.
pub const SUPPORTED_CODECS: &str = "H.264 (packetization-mode=1) and Opus";

/// Checks `Content-Type`, encoding, syntax and codecs of an SDP offer: 415, 400 or 406.
pub fn read_offer(headers: &HeaderMap, body: &Bytes) -> Result<(String, OfferSummary), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !media_type_is(content_type, "application/sdp") {
        return Err(ApiError::unsupported_media_type("application/sdp"));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("bad_sdp", "the SDP offer is not UTF-8"))?;
    let summary = parse_offer(text).map_err(|e| {
        ApiError::bad_request("bad_sdp", format!("the SDP offer does not parse: {e}"))
    })?;
    if !summary.has_supported_codec() {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported_codec",
            format!("the offer has no codec onair forwards; supported: {SUPPORTED_CODECS}"),
        ));
    }
    Ok((text.to_owned(), summary))
}

/// Sets the client's offer as the remote description; a refusal is the client's fault (400).
pub async fn apply_offer(pc: &dyn PeerConnection, sdp: String) -> Result<(), ApiError> {
    let offer = RTCSessionDescription::offer(sdp)
        .map_err(|e| ApiError::bad_request("bad_sdp", format!("the SDP offer was refused: {e}")))?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| ApiError::bad_request("bad_sdp", format!("the SDP offer was refused: {e}")))
}

/// Creates and applies the answer, waits for ICE gathering, and returns the answer SDP with
/// every candidate in it (non-trickle answers are what every WHIP client handles).
pub async fn complete_answer(
    pc: &dyn PeerConnection,
    mut gathered: watch::Receiver<bool>,
    public_ip: Option<IpAddr>,
) -> Result<String, ApiError> {
    let answer = pc.create_answer(None).await.map_err(|e| {
        ApiError::bad_request(
            "negotiation_failed",
            format!("no answer to this offer: {e}"),
        )
    })?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| ApiError::internal("setting the local description failed", e))?;
    if tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done))
        .await
        .is_err()
    {
        tracing::warn!("ICE gathering did not complete in time; answering with what we have");
    }
    let sdp =
        pc.local_description().await.map(|d| d.sdp).ok_or_else(|| {
            ApiError::internal("answer", "no local description after negotiation")
        })?;
    Ok(match public_ip {
        Some(ip) => advertise_host_address(&sdp, ip),
        None => sdp,
    })
}

/// `Link` header values for the configured STUN/TURN servers (RFC 9725 §4.6).
pub fn ice_server_links(servers: &[IceServer]) -> Vec<HeaderValue> {
    let mut links = Vec::new();
    for server in servers {
        for url in &server.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    user.replace('"', ""),
                    credential.replace('"', "")
                ));
            }
            if let Ok(v) = HeaderValue::from_str(&link) {
                links.push(v);
            }
        }
    }
    links
}

/// Starts the embedded TURN server when `[turn] enabled` (the default): its secret comes from
/// the configuration or `data_dir/turn-secret`, and onair's media sockets are always a
/// permitted peer.
pub async fn start_turn(
    config: &crate::config::Config,
) -> Result<Option<std::sync::Arc<onair_turn::TurnServer>>, String> {
    if !config.turn.enabled {
        return Ok(None);
    }
    let secret =
        onair_turn::config::load_or_create_secret(config.turn.secret.as_deref(), &config.data_dir)
            .map_err(|e| format!("secret in {}: {e}", config.data_dir.display()))?;
    let media = onair_turn::server::MediaAddrs {
        ips: vec![config.udp_host],
        ports: config.udp_ports.first..=config.udp_ports.last,
    };
    let started =
        onair_turn::TurnServer::start(&config.turn, secret.as_bytes(), media, config.public_ip)
            .await;
    match started {
        Ok(server) => Ok(Some(std::sync::Arc::new(server))),
        // Like HTTPS: when the *default* port is taken (a coturn or another onair on this
        // machine), serve without the embedded relay rather than not at all; a configured port
        // that cannot be bound is an error.
        Err(onair_turn::TurnStartError::Bind { source, addr, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse
                && uses_default_turn_ports(&config.turn) =>
        {
            tracing::warn!(%addr, "the default TURN port is taken: running without the embedded TURN server (set [turn] udp_port/tcp_port)");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn uses_default_turn_ports(turn: &onair_turn::TurnConfig) -> bool {
    let default = onair_turn::TurnConfig::default();
    (turn.listen, turn.udp_port, turn.tcp_port)
        == (default.listen, default.udp_port, default.tcp_port)
}

/// `Link` values for one response (RFC 9725 §4.6): the configured servers, then the embedded
/// TURN server over UDP and TCP with REST credentials minted for `user` just now.
pub fn ice_links(app: &AppState, headers: &HeaderMap, user: &str) -> Vec<HeaderValue> {
    let mut links = app.link_headers.clone();
    if let Some(turn) = app.turn.get() {
        let host = turn_host(app, headers, turn.relay_ip());
        let mut urls = vec![format!(
            "turn:{host}:{}?transport=udp",
            turn.udp_addr().port()
        )];
        if let Some(tcp) = turn.tcp_addr() {
            urls.push(format!("turn:{host}:{}?transport=tcp", tcp.port()));
        }
        let credentials = turn.credentials(user);
        links.extend(ice_server_links(&[IceServer {
            urls,
            username: Some(credentials.username),
            credential: Some(credentials.password),
        }]));
    }
    links
}

/// The host clients reach the TURN server at: `public_ip`, else the TURN listen address
/// when it is concrete, else the host the client used for this request, else the relay IP.
fn turn_host(app: &AppState, headers: &HeaderMap, relay_ip: IpAddr) -> String {
    let listen = app.config.turn.listen;
    let ip = app
        .config
        .public_ip
        .or((!listen.is_unspecified()).then_some(listen));
    if let Some(ip) = ip {
        return bracketed(ip);
    }
    let from_request = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            // `[v6]:port`, `v4:port` or `name:port`; a bare `[v6]` or name keeps its colons.
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => h,
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    match from_request {
        Some(host) => host.to_owned(),
        None => bracketed(relay_ip),
    }
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `OPTIONS /whip/{room}` and `/whep/{room}` (answered by the CORS layer): an authorised
/// request also learns the ICE servers, before it creates its PeerConnection (RFC 9725 §4.6),
/// which a relay-only client needs. A browser's cross-origin preflight carries no token and
/// gets none.
pub async fn options_links(State(app): State<App>, request: Request, next: Next) -> Response {
    let target = (request.method() == Method::OPTIONS)
        .then(|| {
            let mut parts = request.uri().path().trim_start_matches('/').split('/');
            let action = match parts.next() {
                Some("whip") => Action::Publish,
                Some("whep") => Action::ViewWhep,
                _ => return None,
            };
            let room = parts
                .next()
                .filter(|r| crate::room::is_valid_room_name(r))?;
            parts.next().is_none().then(|| (action, room.to_owned()))
        })
        .flatten();
    let Some((action, room)) = target else {
        return next.run(request).await;
    };
    let headers = request.headers().clone();
    let mut response = next.run(request).await;
    match app.authorize(&headers, None, &room, action) {
        Ok(principal) => {
            let user = principal
                .claims()
                .map(|c| c.sub.clone())
                .unwrap_or_else(|| format!("anon-{:08x}", rand::random::<u32>()));
            let h = response.headers_mut();
            for link in ice_links(&app, &headers, &user) {
                h.append(header::LINK, link);
            }
        }
        // A request with a token is never a preflight: a token that cannot do this is refused
        // as the POST would refuse it, so a relay-only client shows why instead of "no ICE
        // servers". The CORS headers stay, for pages on other origins to read the reason.
        Err(error) if headers.contains_key(header::AUTHORIZATION) => {
            let cors = std::mem::take(response.headers_mut());
            let mut refused = error.into_response();
            let own: Vec<_> = refused.headers().keys().cloned().collect();
            for (name, value) in &cors {
                if !own.contains(name) && name != header::CONTENT_LENGTH {
                    refused.headers_mut().append(name.clone(), value.clone());
                }
            }
            return refused;
        }
        Err(_) => {}
    }
    response
}

/// `201 Created` with `Location`, `ETag`, `Link`s and the answer.
pub fn created(session: &Session, answer: String, links: &[HeaderValue]) -> Response {
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&session.location()) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&session.etag()) {
        h.insert(header::ETAG, v);
    }
    for link in links {
        h.append(header::LINK, link.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_quote_turn_credentials() {
        let links = ice_server_links(&[
            IceServer {
                urls: vec!["stun:stun.example.net".into()],
                ..Default::default()
            },
            IceServer {
                urls: vec!["turn:turn.example.net?transport=udp".into()],
                username: Some("u".into()),
                credential: Some("p".into()),
            },
        ]);
        assert_eq!(links[0], "<stun:stun.example.net>; rel=\"ice-server\"");
        assert_eq!(
            links[1],
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"u\"; credential=\"p\"; credential-type=\"password\""
        );
    }
}
