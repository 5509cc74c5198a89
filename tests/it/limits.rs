//! Limits against the real server: each refusal with its documented JSON error (sessions and
//! chat WebSockets per IP, viewers per room, rooms per server, body size, chat length and rate),
//! and a flood of hundreds of malformed WHIP/WHEP/HLS/WebSocket requests while a real H.264
//! publisher keeps streaming to a WHEP viewer that keeps receiving.

use crate::chat_common;
use crate::common;

use std::time::{Duration, Instant};

use chat_common::Client;
use common::offer::{RawOptions, RawPeer};
use common::{TestServer, assert_error};
use onair::auth::Role;
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};

const WAIT: Duration = Duration::from_secs(20);

async fn whep(s: &TestServer, room: &str, offer: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.url(&format!("/whep/{room}")))
        .header("content-type", "application/sdp")
        .body(offer.to_owned())
        .send()
        .await
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_per_ip_viewers_per_room_and_rooms_have_their_errors() {
    let s = TestServer::start_with(|c| {
        c.limits.sessions_per_ip = 3;
        c.limits.viewers_per_room = 2;
        c.limits.rooms = 2;
    })
    .await;
    let peer = RawPeer::new(RawOptions::default()).await;
    let a1 = whep(&s, "a", &peer.offer).await;
    assert_eq!(a1.status(), 201);
    let a2 = whep(&s, "a", &peer.offer).await;
    assert_eq!(a2.status(), 201);
    let r = whep(&s, "a", &peer.offer).await;
    assert_error(r, 503, "room_full").await;
    let b1 = whep(&s, "b", &peer.offer).await;
    assert_eq!(b1.status(), 201);
    let r = whep(&s, "c", &peer.offer).await;
    assert_error(r, 503, "too_many_rooms").await;
    // Three sessions from 127.0.0.1: the fourth is refused whatever the room.
    let r = whep(&s, "b", &peer.offer).await;
    let retry = r.headers()["retry-after"].to_str().unwrap().to_owned();
    assert_error(r, 429, "too_many_sessions").await;
    assert_eq!(retry, "5");
    // Ending one frees a place at once.
    let r = reqwest::Client::new()
        .delete(s.url(&location(&a1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again = whep(&s, "b", &peer.offer).await;
    assert_eq!(again.status(), 201, "a freed place is reusable");
    for r in [a2, b1, again] {
        reqwest::Client::new()
            .delete(s.url(&location(&r)))
            .send()
            .await
            .unwrap();
    }
    peer.pc.close().await.unwrap();
    s.stop().await;
}

/// A WHEP offer sent through a reverse proxy that adds `header: value`.
async fn whep_via(s: &TestServer, offer: &str, header: &str, value: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.url("/whep/a"))
        .header("content-type", "application/sdp")
        .header(header, value)
        .body(offer.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_per_ip_limit() {
    let s = TestServer::start_with(|c| {
        c.limits.sessions_per_ip = 1;
        c.limits.chat_sockets_per_ip = 1;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let peer = RawPeer::new(RawOptions::default()).await;
    let xff = "x-forwarded-for";
    let first = whep_via(&s, &peer.offer, xff, "198.51.100.1").await;
    assert_eq!(first.status(), 201);
    let second = whep_via(&s, &peer.offer, xff, "198.51.100.2").await;
    assert_eq!(second.status(), 201, "another client behind the same proxy");
    let third = whep_via(&s, &peer.offer, "forwarded", "for=\"[2001:db8::7]:4711\"").await;
    assert_eq!(third.status(), 201, "RFC 7239 Forwarded");
    let r = whep_via(&s, &peer.offer, xff, "198.51.100.1").await;
    assert_error(r, 429, "too_many_sessions").await;
    // What the client wrote itself comes before what the proxy appended, and does not count.
    let r = whep_via(&s, &peer.offer, xff, "203.0.113.50, 198.51.100.1").await;
    assert_error(r, 429, "too_many_sessions").await;
    // The LL-HLS viewers' chat WebSockets are counted the same way.
    let ws_via = |client: &'static str| ws_request(&s, "a").header(xff, client).send();
    let chat_one = ws_via("198.51.100.1").await.unwrap();
    assert_eq!(chat_one.status(), 101);
    let chat_two = ws_via("198.51.100.2").await.unwrap();
    assert_eq!(chat_two.status(), 101);
    let r = ws_via("198.51.100.1").await.unwrap();
    assert_error(r, 429, "too_many_connections").await;
    drop((chat_one, chat_two));
    for r in [first, second, third] {
        let r = reqwest::Client::new()
            .delete(s.url(&location(&r)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    s.stop().await;

    // Without trusted proxies the headers are anyone's to write, and are ignored.
    let s = TestServer::start_with(|c| c.limits.sessions_per_ip = 1).await;
    let first = whep_via(&s, &peer.offer, xff, "198.51.100.1").await;
    assert_eq!(first.status(), 201);
    let r = whep_via(&s, &peer.offer, xff, "198.51.100.2").await;
    assert_error(r, 429, "too_many_sessions").await;
    reqwest::Client::new()
        .delete(s.url(&location(&first)))
        .send()
        .await
        .unwrap();
    peer.pc.close().await.unwrap();
    s.stop().await;
}

/// A WebSocket upgrade request for `/ws/{room}` sent as plain HTTP, so a refusal's JSON body
/// can be read.
async fn ws_upgrade(s: &TestServer, room: &str) -> reqwest::Response {
    ws_request(s, room).send().await.unwrap()
}

fn ws_request(s: &TestServer, room: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(s.url(&format!("/ws/{room}")))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_websockets_per_ip_have_their_error_and_free_their_place_on_close() {
    let s = TestServer::start_with(|c| c.limits.chat_sockets_per_ip = 2).await;
    // The limit is per address over all rooms; WebRTC viewers' data channels are not counted.
    let mut first = Client::ws(&s, "a", None).await;
    first.expect_type("welcome").await;
    let mut second = Client::ws(&s, "b", None).await;
    second.expect_type("welcome").await;
    let r = ws_upgrade(&s, "c").await;
    let retry = r.headers()["retry-after"].to_str().unwrap().to_owned();
    assert_error(r, 429, "too_many_connections").await;
    assert_eq!(retry, "5");
    let mut viewer = Client::viewer(&s, "a", None).await;
    viewer.expect_type("welcome").await;
    // Closing one gives its place back once the server has seen the close.
    first.close().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ws_upgrade(&s, "c").await;
        if r.status() == 101 {
            break;
        }
        assert_error(r, 429, "too_many_connections").await;
        assert!(
            Instant::now() < deadline,
            "the closed socket's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.close().await;
    viewer.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_and_chat_messages_are_bounded() {
    let s = TestServer::start().await;
    let big = "v=0\r\n".repeat(20_000);
    let r = reqwest::Client::new()
        .post(s.url("/whep/demo"))
        .header("content-type", "application/sdp")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "too_large").await;
    let secret = s.server.app().keys.mint_admin("ops", "Ops", 60);
    let r = reqwest::Client::new()
        .post(s.url("/api/tokens"))
        .header("authorization", format!("Bearer {secret}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "admin bodies are bounded too");

    let mut c = Client::ws(&s, "demo", Some(s.token("demo", Role::Viewer, "talker"))).await;
    chat_common::welcome(&mut c).await;
    let max = s.server.app().config.chat.max_length;
    c.say(&"x".repeat(max + 1)).await;
    c.expect_error("too_long").await;
    for i in 0..40 {
        c.say(&format!("spam {i}")).await;
    }
    c.expect_error("rate_limited").await;
    c.close().await;
    assert!(
        s.server.app().config.connect_timeout_secs <= 10,
        "never-connected sessions are reaped within seconds by default"
    );
    s.stop().await;
}

/// Sends one malformed request of kind `i % 8`; returns its status (never a 5xx).
async fn bad_request(http: &reqwest::Client, base: &str, i: usize) -> u16 {
    let url = |path: &str| format!("{base}{path}");
    let r = match i % 8 {
        0 => http
            .post(url("/whip/live"))
            .header("content-type", "application/sdp")
            .body("v=0\r\nnot sdp"),
        1 => http
            .post(url("/whip/live"))
            .header("authorization", "Bearer not.a.token")
            .header("content-type", "application/sdp")
            .body("v=0\r\n"),
        2 => http
            .post(url("/whep/live"))
            .header("content-type", "application/sdp")
            .body(format!("v=0\r\nm=video {i} garbage\r\n")),
        3 => http
            .post(url("/whep/live"))
            .header("content-type", "text/plain")
            .body("hello"),
        4 => http.get(url("/hls/live/video.m3u8?_HLS_msn=x&_HLS_part=-1")),
        5 => http.get(url(&format!("/hls/live/video-{i}-nope.m4s"))),
        6 => http.get(url("/ws/live")), // not an upgrade
        _ => http
            .patch(url(&format!("/whep/live/{i:032x}")))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body("a=ice-ufrag:x\r\n"),
    };
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert!(
        (400..500).contains(&status) && body["error"].is_string(),
        "request kind {}: {status} {body}",
        i % 8
    );
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_requests_does_not_disturb_a_running_broadcast() {
    let s = TestServer::start().await;
    let publisher = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: "live".into(),
        token: Some(s.token("live", Role::Broadcaster, "host")),
        video: Some(VideoConfig {
            width: 160,
            height: 120,
            fps: 15,
            bitrate_bps: 150_000,
            keyframe_interval_frames: 15,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    publisher.wait_connected(WAIT).await.unwrap();
    let viewer = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: "live".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    viewer.wait_connected(WAIT).await.unwrap();
    viewer
        .wait_for(|st| st.video.keyframes > 0, WAIT)
        .await
        .expect("video flows before the flood");
    let before = viewer.stats().video.packets;

    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let http = http.clone();
        let base = s.base.clone();
        flood.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..100 {
                statuses.push(bad_request(&http, &base, worker * 100 + i).await);
            }
            statuses
        });
    }
    let mut total = 0;
    while let Some(done) = flood.join_next().await {
        total += done.unwrap().len();
    }
    let flood_time = started.elapsed();
    println!(
        "flood: {total} malformed requests in {flood_time:?} ({:.0} req/s)",
        total as f64 / flood_time.as_secs_f64()
    );
    assert_eq!(total, 800);
    let during = viewer.stats().video.packets;
    assert!(
        during > before,
        "video kept flowing during the flood ({before} -> {during})"
    );
    let after = viewer
        .wait_for(|st| st.video.packets > during + 20, WAIT)
        .await
        .expect("video keeps flowing after the flood");
    assert_eq!(after.video.seq_backwards, 0);
    assert!(after.connected, "the viewer is still connected");
    let room = s.wait_room("live", WAIT, |r| r["live"] == true).await;
    assert_eq!(room["viewers"], 1, "{room}");
    viewer.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}
