//! The offer/answer exchange of a WHIP or WHEP `POST` (RFC 9725 §4.2): checks the offer, applies
//! it, waits for our candidates and builds the `201 Created` response. Control plane.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::session::{Session, media_type_is};
use crate::config::IceServer;
use crate::core::sdp::{OfferSummary, advertise_host_address, parse_offer};
use crate::http::ApiError;

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
