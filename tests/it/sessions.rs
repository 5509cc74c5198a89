//! WHIP/WHEP session resources against real WebRTC peers: 201 headers, the one-broadcaster rule,
//! DELETE, PATCH (trickle, ICE restart, If-Match) and crash detection.

use crate::common;

use std::time::Duration;

use common::{TestServer, assert_error};
use onair::auth::Role;
use onair_loadtest::error::ClientError;
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};

const WAIT: Duration = Duration::from_secs(20);

fn options(s: &TestServer, room: &str, token: Option<String>) -> PublishOptions {
    PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token,
        video: Some(VideoConfig {
            width: 160,
            height: 120,
            fps: 15,
            bitrate_bps: 150_000,
            keyframe_interval_frames: 30,
        }),
        ..Default::default()
    }
}

/// A client that sends `sub`'s broadcaster token, as the session's owner must.
fn owner_client(s: &TestServer, room: &str, sub: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        s.bearer(room, Role::Broadcaster, sub).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn publish_as(s: &TestServer, room: &str, sub: &str) -> Result<Publisher, ClientError> {
    Publisher::connect(options(
        s,
        room,
        Some(s.token(room, Role::Broadcaster, sub)),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn created_session_has_location_etag_and_an_answer_with_candidates() {
    let s = TestServer::start_with(|c| {
        c.ice_servers = vec![onair::config::IceServer {
            urls: vec!["stun:stun.example.net:3478".into()],
            ..Default::default()
        }]
    })
    .await;
    let offer = {
        // Use the client's own offer through a raw request to look at every header.
        let p = publish_as(&s, "hdr", "dave").await.expect("publish");
        let location = p.resource_url().to_owned();
        assert!(location.starts_with(&s.url("/whip/hdr/")), "{location}");
        assert!(
            p.etag()
                .is_some_and(|e| e.starts_with('"') && e.ends_with('"'))
        );
        p.close().await.unwrap();
        location
    };
    assert!(!offer.is_empty());
    // A raw WHEP POST shows the response headers and the answer itself.
    let v = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: "hdr".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    v.wait_connected(WAIT).await.unwrap();
    v.close().await.unwrap();

    let client = common::offer::RawPeer::new(Default::default()).await;
    let sdp = client.offer.clone();
    let r = reqwest::Client::new()
        .post(s.url("/whep/hdr"))
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/whep/hdr/")
    );
    assert!(r.headers().contains_key("etag"));
    assert_eq!(
        r.headers()["link"],
        "<stun:stun.example.net:3478>; rel=\"ice-server\""
    );
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let answer = r.text().await.unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains("a=candidate:") && answer.contains("127.0.0.1"),
        "{answer}"
    );
    assert!(
        answer.contains("H264") && answer.contains("opus"),
        "{answer}"
    );
    let r = reqwest::Client::new()
        .delete(s.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_broadcaster_gets_409_but_the_same_user_takes_over() {
    let s = TestServer::start().await;
    let first = publish_as(&s, "one", "erin")
        .await
        .expect("first publisher");
    first.wait_connected(WAIT).await.unwrap();
    match publish_as(&s, "one", "frank").await {
        Err(ClientError::Http { status, body }) => {
            assert_eq!(status, 409);
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"], "room_busy");
            assert!(json["message"].as_str().unwrap().contains("ERIN"), "{body}");
        }
        other => panic!("expected 409, got {:?}", other.map(|_| "a session")),
    }
    // Erin reconnecting (e.g. OBS after a network drop) replaces her stale session.
    let again = publish_as(&s, "one", "erin")
        .await
        .expect("same user takes over");
    again.wait_connected(WAIT).await.unwrap();
    let room = s.wait_room("one", WAIT, |r| r["live"] == true).await;
    assert!(
        again
            .resource_url()
            .ends_with(room["publisher"]["session"].as_str().unwrap())
    );
    let r = reqwest::Client::new()
        .delete(first.resource_url())
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    again.close().await.unwrap();
    first.drop_without_delete().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_ends_the_session_at_once_and_a_second_delete_is_404() {
    let s = TestServer::start().await;
    let p = publish_as(&s, "del", "gina").await.unwrap();
    p.wait_connected(WAIT).await.unwrap();
    s.wait_room("del", WAIT, |r| r["live"] == true).await;
    let url = p.resource_url().to_owned();
    let client = owner_client(&s, "del", "gina"); // RFC 9725 §4.3: the session's own token
    let r = client.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let room: serde_json::Value = client
        .get(s.url("/api/rooms/del"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        room["live"], false,
        "the slot is free right after DELETE: {room}"
    );
    let r = client.delete(&url).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
    // The slot is free for someone else now.
    let other = publish_as(&s, "del", "hank")
        .await
        .expect("room free again");
    other.close().await.unwrap();
    p.drop_without_delete().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patch_trickles_restarts_ice_and_checks_if_match() {
    let s = TestServer::start().await;
    let p = publish_as(&s, "patch", "ivy").await.unwrap();
    p.wait_connected(WAIT).await.unwrap();
    let url = p.resource_url().to_owned();
    let etag = p.etag().unwrap().to_owned();
    let client = owner_client(&s, "patch", "ivy"); // RFC 9725 §4.3: the session's own token
    let frag = |body: &str| body.replace('\n', "\r\n");

    let r = client
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "\"not-the-etag\"")
        .body(frag(
            "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\n",
        ))
        .send()
        .await
        .unwrap();
    assert_error(r, 412, "etag_mismatch").await;

    let r = client
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("this is not an sdp fragment")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "bad_sdpfrag").await;

    // Trickled candidates (no new credentials): 204.
    let r = client
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", &etag)
        .body(frag(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:0\na=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\na=end-of-candidates\n",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // New credentials: an ICE restart, answered with ours and a new ETag.
    let r = client
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body(frag("a=ice-ufrag:rstU\na=ice-pwd:restartpasswordrestartpw\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:0\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/trickle-ice-sdpfrag"
    );
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("a=ice-ufrag:") && body.contains("a=ice-pwd:"),
        "{body}"
    );
    assert!(body.contains("a=candidate:"), "{body}");
    // The old ETag no longer matches.
    let r = client
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", &etag)
        .body(frag("a=end-of-candidates\n"))
        .send()
        .await
        .unwrap();
    assert_error(r, 412, "etag_mismatch").await;
    p.drop_without_delete().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_that_vanishes_frees_the_room() {
    let s = TestServer::start().await;
    let p = publish_as(&s, "gone", "jack").await.unwrap();
    p.wait_connected(WAIT).await.unwrap();
    s.wait_room("gone", WAIT, |r| r["live"] == true).await;
    // Closing the PeerConnection without DELETE (a crashed tab): DTLS close_notify or ICE
    // consent failure ends the session server-side.
    p.drop_without_delete().await;
    s.wait_room("gone", Duration::from_secs(45), |r| r["publishers"] == 0)
        .await;
    let next = publish_as(&s, "gone", "kate")
        .await
        .expect("room free again");
    next.close().await.unwrap();
    s.stop().await;
}
