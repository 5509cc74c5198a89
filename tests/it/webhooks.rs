//! Webhooks against a real receiver (a local axum server): a real broadcast (openh264 + Opus
//! publisher, WHEP viewer) produces signed events in order; a 500 is retried and a 400 is not;
//! a dead and a stalled endpoint delay neither WHIP/WHEP answers nor media; an `https://`
//! endpoint is reached once its certificate is trusted (`webhooks.ca_file`), not before.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::TestServer;
use onair::auth::Role;
use onair::ops::webhook::{SIGNATURE_HEADER, verify};
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "webhook-secret-0123456789";

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    event_header: String,
    body: serde_json::Value,
    raw: Bytes,
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Always 400.
    Refuse,
    /// Never answers (until the test ends).
    Stall,
}

#[derive(Clone)]
struct Receiver {
    behaviour: Behaviour,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push(Received {
            signature: header(SIGNATURE_HEADER),
            event_header: header("x-onair-event"),
            body: serde_json::from_slice(&raw).expect("the body is JSON"),
            raw: raw.clone(),
        });
        got.len()
    };
    match r.behaviour {
        Behaviour::Ok => StatusCode::NO_CONTENT,
        Behaviour::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::OK,
        Behaviour::Refuse => StatusCode::BAD_REQUEST,
        Behaviour::Stall => std::future::pending().await,
    }
}

/// Starts a receiver; returns its URL and what it got.
async fn receiver(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Receiver {
            behaviour,
            got: got.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

async fn server(urls: Vec<String>, retries: u32, queue: usize) -> TestServer {
    TestServer::start_with(|c| {
        c.webhooks.urls = urls;
        c.webhooks.secret = Some(SECRET.into());
        c.webhooks.retries = retries;
        c.webhooks.backoff_ms = 100;
        c.webhooks.max_backoff_ms = 400;
        c.webhooks.timeout_ms = 20_000;
        c.webhooks.queue = queue;
    })
    .await
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn snapshot(got: &Arc<Mutex<Vec<Received>>>) -> Vec<Received> {
    got.lock().unwrap().clone()
}

/// Waits until the receiver holds `n` requests.
async fn wait_count(got: &Arc<Mutex<Vec<Received>>>, n: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = snapshot(got);
        if now.len() >= n {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} webhooks arrived: {:#?}",
            now.len(),
            now.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publisher(s: &TestServer, room: &str, sub: &str) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, sub)),
        video: Some(VideoConfig {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_bps: 300_000,
            keyframe_interval_frames: 30,
        }),
        ..Default::default()
    })
    .await
    .expect("publisher");
    p.wait_connected(WAIT).await.expect("publisher connects");
    p
}

async fn metric(s: &TestServer, series: &str) -> u64 {
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_reports_signed_events_in_order() {
    let (url, got) = receiver(Behaviour::Ok).await;
    let s = server(vec![url], 3, 64).await;
    let publisher = publisher(&s, "hooked", "alice").await;
    let viewer = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: "hooked".into(),
        ..Default::default()
    })
    .await
    .expect("viewer");
    viewer
        .wait_for(|v| v.video.packets > 60 && v.audio.packets > 20, WAIT)
        .await
        .expect("media reaches the viewer");
    let viewer_session = viewer.resource_url().rsplit('/').next().unwrap().to_owned();
    let publisher_session = publisher
        .resource_url()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    viewer.close().await.unwrap();
    // The viewer's participant_left is out before the publisher leaves.
    wait_count(&got, 4).await;
    publisher.close().await.unwrap();

    let events = wait_count(&got, 7).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "participant_joined",
            "room_started",
            "participant_joined",
            "participant_left",
            "participant_left",
            "room_finished",
            "recording_ready",
        ]
    );
    for e in &events {
        verify(SECRET.as_bytes(), &e.signature, &e.raw, now_unix(), 300)
            .unwrap_or_else(|err| panic!("{err}: {} for {}", e.signature, e.body));
        assert_eq!(
            verify(
                b"not-the-secret-at-all",
                &e.signature,
                &e.raw,
                now_unix(),
                300
            ),
            Err(onair::ops::webhook::VerifyError::Mismatch)
        );
        assert_eq!(e.event_header, e.body["type"]);
        assert_eq!(e.body["room"], "hooked");
        assert_eq!(e.body["id"].as_str().unwrap().len(), 32);
        assert!(e.body["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let data = |i: usize| &events[i].body["data"];
    assert_eq!(data(0)["kind"], "publisher");
    assert_eq!(data(0)["role"], "broadcaster");
    assert_eq!(data(0)["user"], "alice");
    assert_eq!(data(0)["session"], publisher_session.as_str());
    assert_eq!(data(1)["publisher"]["user"], "alice");
    assert_eq!(data(2)["kind"], "viewer");
    assert_eq!(data(2)["role"], "viewer");
    assert_eq!(data(2)["anonymous"], true);
    assert_eq!(data(2)["session"], viewer_session.as_str());
    assert_eq!(data(3)["session"], viewer_session.as_str());
    assert!(data(3)["duration"].as_f64().unwrap() > 0.0);
    assert_eq!(data(4)["session"], publisher_session.as_str());
    assert!(data(5)["duration"].as_f64().unwrap() > 0.0);
    let recording = data(6);
    assert!(recording["file"].as_str().unwrap().starts_with("hooked-"));
    assert!(recording["duration"].as_f64().unwrap() > 0.5);
    let size = recording["size"].as_u64().unwrap();
    let file = reqwest::get(s.url(recording["url"].as_str().unwrap()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        file.len() as u64,
        size,
        "the announced file is downloadable"
    );
    assert_eq!(
        metric(&s, "onair_webhook_deliveries_total{result=\"delivered\"}").await,
        7
    );
    s.stop().await;
}

/// A WHEP session with nobody publishing: enough for `participant_joined`.
async fn join_viewer(s: &TestServer, room: &str) -> Viewer {
    Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: room.into(),
        ..Default::default()
    })
    .await
    .expect("WHEP answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_500_is_retried_and_a_400_is_not() {
    let (flaky, flaky_got) = receiver(Behaviour::FailFirst(1)).await;
    let (refusing, refusing_got) = receiver(Behaviour::Refuse).await;
    let s = server(vec![flaky, refusing], 4, 64).await;
    let viewer = join_viewer(&s, "retry").await;

    let flaky = wait_count(&flaky_got, 2).await;
    assert_eq!(flaky[0].body["type"], "participant_joined");
    assert_eq!(
        flaky[0].body["id"], flaky[1].body["id"],
        "the same event again"
    );
    for attempt in &flaky {
        verify(
            SECRET.as_bytes(),
            &attempt.signature,
            &attempt.raw,
            now_unix(),
            300,
        )
        .unwrap();
    }
    wait_count(&refusing_got, 1).await;
    // Give a wrong retry of the 400 time to show up before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(snapshot(&refusing_got).len(), 1, "a 4xx is final");
    assert_eq!(snapshot(&flaky_got).len(), 2, "delivered on the retry");
    assert_eq!(metric(&s, "onair_webhook_retries_total").await, 1);
    assert_eq!(
        metric(&s, "onair_webhook_deliveries_total{result=\"delivered\"}").await,
        1
    );
    assert_eq!(
        metric(&s, "onair_webhook_deliveries_total{result=\"failed\"}").await,
        1
    );
    viewer.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_and_stalled_endpoints_delay_neither_sessions_nor_media() {
    let (stalled, stalled_got) = receiver(Behaviour::Stall).await;
    // Nothing listens on port 9 of loopback: connections are refused.
    let dead = "http://127.0.0.1:9/hook".to_owned();
    let s = server(vec![stalled, dead], 20, 4).await;

    let started = Instant::now();
    let publisher = publisher(&s, "stuck", "bob").await;
    let whip_ms = started.elapsed().as_millis();
    // The stalled endpoint holds the first event and answers nothing.
    wait_count(&stalled_got, 1).await;

    let started = Instant::now();
    let viewer = join_viewer(&s, "stuck").await;
    let whep_ms = started.elapsed().as_millis();
    viewer
        .wait_for(|v| v.video.packets > 60 && v.audio.packets > 20, WAIT)
        .await
        .expect("media flows while the webhook endpoints hang");
    // More sessions than the queue holds: the oldest events are dropped, nothing blocks.
    let mut extra = Vec::new();
    for _ in 0..6 {
        extra.push(join_viewer(&s, "stuck").await);
    }
    assert!(metric(&s, "onair_webhook_dropped_total").await >= 2);
    assert_eq!(snapshot(&stalled_got).len(), 1, "still stuck on the first");
    println!(
        "with a stalled and a dead webhook endpoint: WHIP connect {whip_ms} ms, WHEP answer {whep_ms} ms"
    );
    for v in extra {
        v.close().await.unwrap();
    }
    viewer.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}

/// The receiver of `behaviour` over HTTPS with a self-signed certificate made in `dir`: the
/// URL and the certificate file a client must trust.
async fn tls_receiver(
    dir: &std::path::Path,
) -> (String, std::path::PathBuf, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Receiver {
            behaviour: Behaviour::Ok,
            got: got.clone(),
        });
    let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
    let tls = onair::http::tls::Tls::load(&Default::default(), dir, &localhost).unwrap();
    let cert = tls.files.cert.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = onair::http::tls::HttpsListener { listener, tls };
    // Never stopped: it serves until the test's runtime ends.
    let stop = tokio_util::sync::CancellationToken::new();
    onair::http::listener::spawn(plain, Some(https), app, &Default::default(), stop);
    (format!("https://127.0.0.1:{}/hook", addr.port()), cert, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_https_endpoint_is_reached_when_its_certificate_is_trusted() {
    let dir = std::env::temp_dir().join(format!("onair-webhook-tls-{}", std::process::id()));
    let (url, cert, got) = tls_receiver(&dir).await;
    // Without the receiver's certificate among the roots, delivery fails (and is counted);
    // with it (`webhooks.ca_file`), the same endpoint gets signed events.
    let untrusted = server(vec![url.clone()], 0, 64).await;
    let viewer = join_viewer(&untrusted, "tls").await;
    let deadline = Instant::now() + WAIT;
    while metric(
        &untrusted,
        "onair_webhook_deliveries_total{result=\"failed\"}",
    )
    .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the untrusted delivery never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        snapshot(&got).is_empty(),
        "an untrusted certificate was accepted"
    );
    viewer.close().await.unwrap();
    untrusted.stop().await;

    let trusted = TestServer::start_with(|c| {
        c.webhooks.urls = vec![url];
        c.webhooks.secret = Some(SECRET.into());
        c.webhooks.ca_file = Some(cert);
    })
    .await;
    let viewer = join_viewer(&trusted, "tls").await;
    let events = wait_count(&got, 1).await;
    assert_eq!(events[0].body["type"], "participant_joined");
    verify(
        SECRET.as_bytes(),
        &events[0].signature,
        &events[0].raw,
        now_unix(),
        300,
    )
    .unwrap();
    viewer.close().await.unwrap();
    trusted.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
