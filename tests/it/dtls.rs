//! Both RSA and ECDSA DTLS peers connect (GStreamer 1.22 presents an RSA certificate; browsers
//! and aiortc ECDSA).

use crate::common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use common::TestServer;
use common::offer::{RawOptions, RawPeer};
use onair::auth::Role;
use rtc::crypto::{SignatureScheme, default_provider};
use webrtc::peer_connection::RTCCertificate;

/// An RSA-2048 key and self-signed certificate, made fresh by openssl (no key lives in git).
fn rsa_certificate() -> RTCCertificate {
    let dir = std::env::temp_dir().join(format!("onair-rsa-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-outform",
        "DER",
        "-out",
        "cert.der",
        "-days",
        "2",
        "-subj",
        "/CN=onair-test",
    ]);
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
    ]);
    let cert = std::fs::read(dir.join("cert.der")).unwrap();
    let key = std::fs::read(dir.join("key.der")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let provider = default_provider().expect("crypto provider");
    RTCCertificate::from_pkcs8(
        provider.crypto(),
        SignatureScheme::RsaPkcs1Sha256,
        vec![rustls_pki_types::CertificateDer::from(cert)],
        &key,
        SystemTime::now() + Duration::from_secs(86400),
    )
    .expect("RSA certificate imports")
}

async fn whip_connects(s: &TestServer, room: &str, certificate: Option<RTCCertificate>) {
    let mut peer = RawPeer::new(RawOptions {
        certificate,
        send: true,
    })
    .await;
    let r = reqwest::Client::new()
        .post(s.url(&format!("/whip/{room}")))
        .header("content-type", "application/sdp")
        .header("authorization", s.bearer(room, Role::Broadcaster, room))
        .body(peer.offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    peer.answer(r.text().await.unwrap()).await;
    peer.connected(Duration::from_secs(20)).await;
    s.wait_room(room, Duration::from_secs(10), |r| r["live"] == true)
        .await;
    peer.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rsa_and_ecdsa_dtls_clients_both_connect() {
    let s = TestServer::start().await;
    whip_connects(&s, "rsa", Some(rsa_certificate())).await;
    whip_connects(&s, "ecdsa", None).await;
    s.stop().await;
}
