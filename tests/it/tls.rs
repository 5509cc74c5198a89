//! HTTPS and connection handling of both listeners (integration, real server on port 0): curl
//! fetches the LL-HLS playlist of a live broadcast over HTTP/2 and HTTP/1.1, a rustls client
//! sees ALPN `h2` and the development certificate, the certificate is swapped under a running
//! WHEP session and an open HTTP/2 connection, and idle connections are closed while long
//! polls and WebSockets keep working.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use onair::auth::Role;
use onair_loadtest::media::AudioConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

async fn publish(s: &TestServer, room: &str) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, "tls-alice")),
        audio: Some(AudioConfig::default()),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    p.wait_connected(WAIT).await.expect("publisher connects");
    p
}

fn https_url(s: &TestServer, path: &str) -> String {
    let addr = s.server.https_addr().expect("HTTPS runs");
    format!("https://127.0.0.1:{}{path}", addr.port())
}

/// `curl -k` with `flags`: (HTTP version curl used, status, body).
async fn curl(url: &str, flags: &[&str]) -> (String, u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20", "-o", "-", "-w"])
        .arg("\n%{http_version} %{http_code}")
        .args(flags)
        .arg(url)
        .output()
        .await
        .expect("curl runs (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl {url}: {text} {:?}", out.stderr);
    let (body, tail) = text.rsplit_once('\n').expect("curl -w line");
    let (version, code) = tail.split_once(' ').expect("version and code");
    (version.to_owned(), code.parse().unwrap(), body.to_owned())
}

async fn wait_playlist(s: &TestServer, room: &str) {
    let url = s.url(&format!("/hls/{room}/video.m3u8"));
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
            && r.text().await.unwrap_or_default().contains("#EXTINF")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the LL-HLS playlist never got a segment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn curl_fetches_ll_hls_over_http2_and_http11() {
    let s = TestServer::start_with(|c| c.http_timeouts.idle_secs = 1).await;
    let room = "tls-hls";
    let publisher = publish(&s, room).await;
    wait_playlist(&s, room).await;

    let index = https_url(&s, &format!("/hls/{room}/index.m3u8"));
    let (version, code, body) = curl(&index, &["--http2"]).await;
    assert_eq!((version.as_str(), code), ("2", 200), "{body}");
    assert!(body.starts_with("#EXTM3U"), "{body}");
    let (version, code, body) = curl(&index, &["--http1.1"]).await;
    assert_eq!((version.as_str(), code), ("1.1", 200));
    assert!(body.starts_with("#EXTM3U"));

    // A blocking reload for the next segment outlasts the 1 s idle timeout: a request in
    // flight is not idle, so it is answered, over HTTP/2.
    let (_, _, media) = curl(
        &https_url(&s, &format!("/hls/{room}/video.m3u8")),
        &["--http2"],
    )
    .await;
    let next = media
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("media sequence")
        + media.matches("#EXTINF").count() as u64;
    let started = Instant::now();
    let url = https_url(&s, &format!("/hls/{room}/video.m3u8?_HLS_msn={next}"));
    let (version, code, body) = curl(&url, &["--http2"]).await;
    println!(
        "blocking reload over h2 answered after {:?}",
        started.elapsed()
    );
    assert_eq!((version.as_str(), code), ("2", 200), "{body}");
    publisher.close().await.ok();
    s.stop().await;
}

/// A rustls client that trusts exactly `cert_pem` and offers `h2` then `http/1.1`.
fn client_config(cert_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.expect("PEM")).expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A verified TLS connection to `addr` as `127.0.0.1`.
async fn tls_connect(addr: SocketAddr, cert_pem: &[u8]) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(("127.0.0.1", addr.port())).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(client_config(cert_pem))
        .connect(name, tcp)
        .await
}

fn presented(stream: &TlsStream) -> Vec<u8> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .to_vec()
}

fn pem_der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("PEM certificate")
        .to_vec()
}

/// An HTTP/2 client connection over `stream`.
async fn h2(stream: TlsStream) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

async fn get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (u16, String) {
    let request = hyper::Request::get(format!("https://127.0.0.1{path}"))
        .body(Empty::new())
        .unwrap();
    let response = send.send_request(request).await.expect("HTTP/2 request");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn dev_certificate_verifies_and_reload_keeps_sessions() {
    let s = TestServer::start_with(|c| c.tls.reload_poll_ms = 200).await;
    let addr = s.server.https_addr().expect("HTTPS runs");
    let certs = s.server.app().config.data_dir.join("certs");
    let (cert_path, key_path) = (certs.join("dev-cert.pem"), certs.join("dev-key.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is private");
    }
    let old_pem = std::fs::read(&cert_path).unwrap();

    // The generated certificate verifies for 127.0.0.1 and the server picks h2 by ALPN.
    let stream = tls_connect(addr, &old_pem).await.expect("verified TLS");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(presented(&stream), pem_der(&cert_path));
    let mut old_conn = h2(stream).await;
    let (status, body) = get(&mut old_conn, "/healthz").await;
    assert_eq!(status, 200, "{body}");

    let room = "tls-reload";
    let publisher = publish(&s, room).await;
    let viewer = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: room.into(),
        ..Default::default()
    })
    .await
    .expect("viewer connects");
    viewer.wait_connected(WAIT).await.expect("viewer connects");
    viewer
        .wait_for(|st| st.video.packets > 20, WAIT)
        .await
        .expect("video flows");

    // Replace the pair (key first, as an operator's tooling might): new handshakes get it.
    let (new_pem, new_key) = onair::http::tls::generate_dev_cert(&["127.0.0.1".into()]).unwrap();
    std::fs::write(&key_path, new_key).unwrap();
    std::fs::write(&cert_path, &new_pem).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(stream) = tls_connect(addr, new_pem.as_bytes()).await {
            assert_eq!(presented(&stream), pem_der(&cert_path));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection made before the reload still works, and so does the WHEP session.
    let (status, _) = get(&mut old_conn, "/healthz").await;
    assert_eq!(status, 200);
    let before = viewer.stats().video.packets;
    viewer
        .wait_for(|st| st.video.packets > before + 20, WAIT)
        .await
        .expect("video keeps flowing across the reload");
    assert!(viewer.stats().connected);

    // A broken file is refused: the new certificate stays in use.
    std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stream = tls_connect(addr, new_pem.as_bytes())
        .await
        .expect("still the new certificate");
    assert_eq!(
        presented(&stream),
        CertificateDer::from_pem_slice(new_pem.as_bytes())
            .unwrap()
            .to_vec()
    );

    viewer.close().await.ok();
    publisher.close().await.ok();
    s.stop().await;
}

/// Reads until the peer closes; `false` if it did not within `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_connections_close_but_websockets_stay() {
    let s = TestServer::start_with(|c| c.http_timeouts.idle_secs = 1).await;
    let limit = Duration::from_secs(15);

    // HTTP/1.1 keep-alive after a response.
    let mut plain = TcpStream::connect(s.server.addr()).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    plain.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut plain, limit).await,
        "idle keep-alive connection closed"
    );

    // A connection that never sends a request, plain and after a TLS handshake.
    let mut silent = TcpStream::connect(s.server.addr()).await.unwrap();
    assert!(
        closed_within(&mut silent, limit).await,
        "silent connection closed"
    );
    let https = s.server.https_addr().unwrap();
    let pem = std::fs::read(s.server.app().config.data_dir.join("certs/dev-cert.pem")).unwrap();
    let mut tls = tls_connect(https, &pem).await.expect("TLS");
    assert!(
        closed_within(&mut tls, limit).await,
        "idle HTTP/2 connection closed"
    );

    // A WebSocket idle for longer than the timeout still carries chat.
    let room = "tls-ws";
    let url = format!("{}/ws/{room}", s.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let welcome = ws.next().await.expect("welcome").expect("frame");
    assert!(welcome.to_text().unwrap().contains("welcome"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"chat","text":"still here"}"#,
    ))
    .await
    .expect("send after idling");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the chat message comes back")
            .expect("open")
            .expect("frame");
        if frame.is_text() && frame.to_text().unwrap().contains("still here") {
            break;
        }
    }
    s.stop().await;
}
