//! Operational behaviour against real peers: NACKs answered from the track cache, candidates
//! shaped by configuration, sessions that never connect, room reaping and shutdown.

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::offer::{RawOptions, RawPeer};
use onair::auth::Role;
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whip::{PublishOptions, Publisher};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

const WAIT: Duration = Duration::from_secs(20);

async fn publisher(s: &TestServer, room: &str) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, "pub")),
        video: Some(VideoConfig {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_bps: 300_000,
            keyframe_interval_frames: 60,
        }),
        ..Default::default()
    })
    .await
    .expect("publisher");
    p.wait_connected(WAIT).await.unwrap();
    p
}

/// POSTs the peer's offer to WHEP and returns (status, Location, answer).
async fn whep(s: &TestServer, room: &str, offer: &str) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(s.url(&format!("/whep/{room}")))
        .header("content-type", "application/sdp")
        .body(offer.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

async fn video_track(peer: &mut RawPeer) -> std::sync::Arc<dyn TrackRemote> {
    loop {
        let track = tokio::time::timeout(WAIT, peer.tracks.recv())
            .await
            .expect("tracks arrive")
            .expect("track channel open");
        let ssrc = track.ssrcs().await[0];
        if track
            .codec(ssrc)
            .await
            .unwrap()
            .mime_type
            .eq_ignore_ascii_case("video/H264")
        {
            return track;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nacks_are_answered_from_the_track_cache() {
    let s = TestServer::start().await;
    let publisher = publisher(&s, "nack").await;
    let mut viewer = RawPeer::new(RawOptions::default()).await;
    let (status, _, answer) = whep(&s, "nack", &viewer.offer).await;
    assert_eq!(status, 201);
    viewer.answer(answer).await;
    viewer.connected(WAIT).await;
    let track = video_track(&mut viewer).await;
    let ssrc = track.ssrcs().await[0];

    let mut order = Vec::new();
    while order.len() < 40 {
        match tokio::time::timeout(WAIT, track.poll())
            .await
            .expect("video flows")
        {
            Some(TrackRemoteEvent::OnRtpPacket(p)) => order.push(p.header.sequence_number),
            Some(_) => {}
            None => panic!("track ended"),
        }
    }
    // NACK packet 20 and, through the bitmask, 21 and 23 (RFC 4585 §6.2.1); plus one for a
    // sequence number that was never sent, which cannot be answered.
    let pid = order[20];
    let never_sent = order[39].wrapping_add(5000);
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        nacks: vec![
            NackPair {
                packet_id: pid,
                lost_packets: 0b101,
            },
            NackPair {
                packet_id: never_sent,
                lost_packets: 0,
            },
        ],
    };
    track
        .write_rtcp(vec![Box::new(nack)])
        .await
        .expect("NACK sent");
    // The client stack drops a re-sent packet it already has (SRTP replay protection), so the
    // server's own counters tell what was answered.
    let room = s
        .wait_room("nack", Duration::from_secs(10), |r| {
            r["video"]["nacks"] == 1
        })
        .await;
    assert_eq!(
        room["video"]["retransmitted"], 3,
        "three cached packets re-sent: {room}"
    );
    viewer.pc.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewer_keyframe_requests_reach_the_publisher_rate_limited() {
    let s = TestServer::start_with(|c| c.pli_interval_ms = 1000).await;
    let publisher = publisher(&s, "pli").await;
    let mut viewer = RawPeer::new(RawOptions::default()).await;
    let (status, _, answer) = whep(&s, "pli", &viewer.offer).await;
    assert_eq!(status, 201);
    viewer.answer(answer).await;
    viewer.connected(WAIT).await;
    let track = video_track(&mut viewer).await;
    let ssrc = track.ssrcs().await[0];
    // 350 PLIs over 3.5 s. Every keyframe request of the track (this viewer's, the join-time
    // ones, the HLS tap's) shares one throttle: at most one per interval reaches the publisher,
    // plus one deferred request at the end of an interval.
    let before = publisher.stats().plis_received;
    let started = tokio::time::Instant::now();
    for _ in 0..35 {
        for _ in 0..10 {
            let pli = PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: ssrc,
            };
            track
                .write_rtcp(vec![Box::new(pli)])
                .await
                .expect("PLI sent");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = publisher.stats().plis_received - before;
    let bound = elapsed.ceil() as u64 + 2;
    assert!(got >= 1, "keyframe requests reach the publisher");
    assert!(
        got <= bound,
        "{got} PLIs in {elapsed:.1} s: more than one per 1 s interval"
    );
    viewer.pc.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}

fn candidates(answer: &str) -> Vec<(String, u16)> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            (f[4].to_owned(), f[5].parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_shapes_the_candidates_and_ice_mode() {
    let s = TestServer::start_with(|c| {
        c.udp_ports = "45100-45119".parse().unwrap();
        c.public_ip = Some("203.0.113.7".parse().unwrap());
    })
    .await;
    let peer = RawPeer::new(Default::default()).await;
    let (status, _, answer) = whep(&s, "cfg", &peer.offer).await;
    assert_eq!(status, 201);
    assert!(
        answer.contains("a=ice-lite"),
        "ICE-lite by default: {answer}"
    );
    let cands = candidates(&answer);
    assert!(!cands.is_empty(), "{answer}");
    for (ip, port) in &cands {
        assert_eq!(ip, "203.0.113.7", "NAT 1:1 address advertised: {answer}");
        assert!(
            (45100..=45119).contains(port),
            "port from the configured range: {port}"
        );
    }
    s.stop().await;

    let s = TestServer::start_with(|c| c.ice_lite = false).await;
    let mut peer = RawPeer::new(Default::default()).await;
    let (status, _, answer) = whep(&s, "full", &peer.offer).await;
    assert_eq!(status, 201);
    assert!(!answer.contains("a=ice-lite"), "{answer}");
    peer.answer(answer).await;
    peer.connected(WAIT).await;
    peer.pc.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_whose_ice_never_connects_are_closed() {
    let s = TestServer::start_with(|c| c.connect_timeout_secs = 1).await;
    let peer = RawPeer::new(Default::default()).await;
    // The answer is never applied, so ICE never starts.
    let (status, location, _) = whep(&s, "silent", &peer.offer).await;
    assert_eq!(status, 201);
    s.wait_room("silent", Duration::from_secs(10), |r| r["viewers"] == 0)
        .await;
    let r = reqwest::Client::new()
        .delete(s.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the session is gone");
    peer.pc.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_rooms_are_dropped_after_their_grace_period() {
    let s = TestServer::start_with(|c| c.room_grace_secs = 0).await;
    let mut peer = RawPeer::new(Default::default()).await;
    let (status, location, answer) = whep(&s, "brief", &peer.offer).await;
    assert_eq!(status, 201);
    peer.answer(answer).await;
    peer.connected(WAIT).await;
    let listed: serde_json::Value = reqwest::get(s.url("/api/rooms"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["rooms"][0]["room"], "brief");
    reqwest::Client::new()
        .delete(s.url(&location))
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = reqwest::get(s.url("/api/rooms/brief")).await.unwrap();
        if r.status() == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "room never dropped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peer.pc.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_closes_every_session() {
    let s = TestServer::start().await;
    let publisher = publisher(&s, "bye").await;
    let mut viewer = RawPeer::new(Default::default()).await;
    let (status, _, answer) = whep(&s, "bye", &viewer.offer).await;
    assert_eq!(status, 201);
    viewer.answer(answer).await;
    viewer.connected(WAIT).await;
    let app = s.server.app().clone();
    assert_eq!(app.rooms.get("bye").unwrap().viewer_count(), 1);
    s.stop().await;
    assert_eq!(
        app.sessions.count(onair::peer::session::SessionKind::Whip),
        0
    );
    assert_eq!(
        app.sessions.count(onair::peer::session::SessionKind::Whep),
        0
    );
    let room = app.rooms.get("bye").unwrap();
    assert!(room.publisher().is_none());
    assert_eq!(room.viewer_count(), 0);
    publisher.drop_without_delete().await;
    viewer.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_packets_sessions_and_rooms() {
    let s = TestServer::start().await;
    let publisher = publisher(&s, "metered").await;
    let mut viewer = RawPeer::new(RawOptions::default()).await;
    let (status, _, answer) = whep(&s, "metered", &viewer.offer).await;
    assert_eq!(status, 201);
    viewer.answer(answer).await;
    viewer.connected(WAIT).await;
    s.wait_room("metered", WAIT, |r| {
        r["video"]["packets_in"].as_u64() > Some(30)
    })
    .await;
    let r = reqwest::get(s.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("onair_rooms "), 1.0);
    assert_eq!(value("onair_sessions{kind=\"whip\"} "), 1.0);
    assert_eq!(value("onair_sessions{kind=\"whep\"} "), 1.0);
    assert!(value("onair_packets_in_total{kind=\"video\"} ") > 30.0);
    assert!(value("onair_packets_in_total{kind=\"audio\"} ") > 0.0);
    // The viewer's first keyframe was either requested or replayed from the history.
    assert!(
        value("onair_keyframe_requests_total{kind=\"video\"} ")
            + value("onair_fast_starts_total{kind=\"video\"} ")
            >= 1.0
    );
    assert_eq!(value("onair_room_viewers{room=\"metered\"} "), 1.0);
    assert_eq!(value("onair_room_live{room=\"metered\"} "), 1.0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.rsplit_once(' ')
                .is_some_and(|(_, v)| v.parse::<f64>().is_ok()),
            "{line}"
        );
    }
    viewer.pc.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}
