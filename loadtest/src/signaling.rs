//! Test/load client: WHIP/WHEP HTTP signaling (RFC 9725 §4.2) — POST the offer, read the answer,
//! `Location` and `ETag`, DELETE the session — and the choice of the local address to bind.
//! Does network I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, LOCATION};
use reqwest::{StatusCode, Url};

use crate::error::ClientError;

/// How long one signaling request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One HTTP client (and connection pool) shared by every publisher and viewer in the process.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// What a successful `POST` established.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Absolute URL of the session resource (the `Location`, resolved against the request).
    pub resource_url: String,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The SDP answer.
    pub answer: String,
    /// When the POST was handed to the HTTP client.
    pub posted_at: Instant,
    /// When the whole `201` response (the answer) had arrived.
    pub answered_at: Instant,
}

/// `{base}/{endpoint}/{room}`, with `room` percent-encoded as one path segment.
pub(crate) fn endpoint_url(base: &str, endpoint: &str, room: &str) -> Result<Url, ClientError> {
    let mut url = Url::parse(base)
        .map_err(|e| ClientError::Protocol(format!("bad base URL {base:?}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| ClientError::Protocol(format!("base URL {base:?} cannot have a path")))?
        .pop_if_empty()
        .push(endpoint)
        .push(room);
    Ok(url)
}

/// POSTs an `application/sdp` offer; expects `201 Created` with a `Location` (RFC 9725 §4.2).
pub(crate) async fn post_offer(
    url: Url,
    token: Option<&str>,
    offer: String,
) -> Result<Session, ClientError> {
    let mut request = client()
        .post(url.clone())
        .header(CONTENT_TYPE, "application/sdp")
        .body(offer);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let posted_at = Instant::now();
    let response = request.send().await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Http {
            status: status.as_u16(),
            body,
        });
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header(LOCATION)
        .ok_or_else(|| ClientError::Protocol("201 without a Location header".into()))?;
    let etag = header(ETAG);
    let resource_url = url
        .join(&location)
        .map_err(|e| ClientError::Protocol(format!("bad Location {location:?}: {e}")))?
        .to_string();
    let answer = response.text().await?;
    let answered_at = Instant::now();
    if !answer.starts_with("v=0") {
        return Err(ClientError::Protocol(format!(
            "201 body is not an SDP answer: {:?}",
            answer.chars().take(80).collect::<String>()
        )));
    }
    Ok(Session {
        resource_url,
        etag,
        answer,
        posted_at,
        answered_at,
    })
}

/// DELETEs a session resource (RFC 9725 §4.2); any 2xx is success.
pub(crate) async fn delete(resource_url: &str, token: Option<&str>) -> Result<(), ClientError> {
    let mut request = client().delete(resource_url);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Http {
            status: status.as_u16(),
            body,
        });
    }
    Ok(())
}

/// The local IP to bind the ICE socket to: the address this host would use to reach the server
/// (so `127.0.0.1` for a server on loopback, which a wildcard bind would skip).
pub(crate) async fn bind_ip_for(url: &Url) -> Result<IpAddr, ClientError> {
    let host = url
        .host_str()
        .ok_or_else(|| ClientError::Protocol(format!("URL {url} has no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            addrs.sort_by_key(|a| !a.is_ipv4()); // prefer IPv4, as browsers' loopback tests do
            addrs
                .first()
                .map(SocketAddr::ip)
                .ok_or_else(|| ClientError::Protocol(format!("{host} resolves to nothing")))?
        }
    };
    if server.is_loopback() {
        return Ok(server);
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route's source.
    let unspecified = match server {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let probe = UdpSocket::bind((unspecified, 0))?;
    probe.connect((server, port))?;
    Ok(probe.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_encode_the_room() {
        let url = endpoint_url("http://127.0.0.1:8080", "whip", "my room/1").expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/whip/my%20room%2F1");
        let url = endpoint_url("http://h:1/prefix/", "whep", "r").expect("url");
        assert_eq!(url.as_str(), "http://h:1/prefix/whep/r");
        assert!(endpoint_url("not a url", "whip", "r").is_err());
    }

    #[tokio::test]
    async fn loopback_servers_bind_loopback() {
        let url = Url::parse("http://127.0.0.1:9/").expect("url");
        assert_eq!(
            bind_ip_for(&url).await.expect("ip"),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let url = Url::parse("http://localhost:9/").expect("url");
        assert!(bind_ip_for(&url).await.expect("ip").is_loopback());
    }
}
