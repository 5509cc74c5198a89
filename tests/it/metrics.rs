//! `GET /metrics` against real traffic: a publisher of real H.264 + Opus, a WHEP viewer,
//! LL-HLS requests (one of them blocked), chat over WebSocket with moderation, a recording.
//! The body is parsed as Prometheus text (HELP/TYPE before samples, `_total` counters, label
//! syntax, one value per series) and the series are checked against what happened; totals
//! stay monotonic after the room is reaped. A room composite fed by synthetic participants
//! shows up in the composite series, and its counts outlive it.

use crate::chat_common;
use crate::common;
use crate::composite_feed;
use crate::hls_common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chat_common::Client;
use common::TestServer;
use hls_common::{MediaPlaylist, get, publish, wait_playlist};
use onair::auth::Role;
use onair_loadtest::whep::{ViewOptions, Viewer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Parses an exposition body strictly; returns `series -> value` (series = name + labels).
fn parse(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut series = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line}");
            }
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (key, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        if let Some(labels) = key.strip_prefix(name)
            && !labels.is_empty()
        {
            check_labels(labels, line);
        }
        assert!(
            series.insert(key.to_owned(), value).is_none(),
            "duplicate {key}"
        );
    }
    series
}

/// `{a="x",b="y\"z"}`: names, quotes and escapes.
fn check_labels(labels: &str, line: &str) {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels in {line}"));
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => {
                    let (_, e) = chars.next().expect("escape");
                    assert!(matches!(e, '\\' | '"' | 'n'), "bad escape in {line}");
                }
                (i, '"') => break i,
                _ => {}
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

async fn scrape(s: &TestServer) -> HashMap<String, f64> {
    let r = reqwest::get(s.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    parse(&r.text().await.unwrap())
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| {
        let mut keys: Vec<_> = m.keys().collect();
        keys.sort();
        panic!("no {series} in {keys:#?}")
    })
}

#[test]
fn the_parser_refuses_bad_exposition() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"x\\\"y\"} 1\n";
    assert_eq!(parse(good)["a_total{k=\"x\\\"y\"}"], 1.0);
    for bad in [
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "a 1\n",
        "# HELP a A.\n# TYPE a gauge\na{k=\"x} 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_counters_reach_metrics_and_outlive_the_composite() {
    use composite_feed::{PATTERN_A, PATTERN_B, SyntheticParticipant, run_feeder, stage_sources};
    use onair::egress::composite::{Composite, CompositeConfig};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let s = TestServer::start().await;
    let m = scrape(&s).await;
    let (active0, frames0) = (
        value(&m, "onair_composites_active"),
        value(&m, "onair_composite_frames_total"),
    );
    let participants = vec![
        SyntheticParticipant::new(1, 320, 180, PATTERN_A, Some(440.0)),
        SyntheticParticipant::new(2, 320, 180, PATTERN_B, None),
    ];
    let sources = stage_sources(&participants.iter().collect::<Vec<_>>());
    let config = CompositeConfig {
        width: 640,
        height: 360,
        ..CompositeConfig::default()
    };
    let (composite, mut rx) = Composite::start(&config, sources).expect("composite starts");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = run_feeder(participants, stop.clone());
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });

    let deadline = tokio::time::Instant::now() + WAIT;
    let running = loop {
        let m = scrape(&s).await;
        if value(&m, "onair_composites_active") == active0 + 1.0
            && value(&m, "onair_composite_frames_total") >= frames0 + 10.0
        {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no composed frames");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for series in [
        "onair_composite_frames_skipped_total",
        "onair_composite_output_dropped_total",
        "onair_composite_decode_errors_total",
    ] {
        value(&running, series);
    }
    let frames = value(&running, "onair_composite_frames_total");
    let own = composite.stats().frames as f64; // read after the scrape: at least as many
    assert!(
        frames <= frames0 + own,
        "the total counts this composite's frames"
    );

    stop.store(true, Ordering::Release);
    feeder.join().expect("feeder");
    drop(composite);
    drain.await.expect("drain");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = scrape(&s).await;
        if value(&m, "onair_composites_active") == active0 {
            let after = value(&m, "onair_composite_frames_total");
            assert!(
                after >= frames,
                "the total kept its frames: {after} < {frames}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "composite never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_a_real_broadcast() {
    let s = TestServer::start_with(|c| c.room_grace_secs = 1).await;
    let room = "gauged";
    let publisher = publish(&s, room, "alice", true).await;
    let viewer = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: room.into(),
        ..Default::default()
    })
    .await
    .expect("viewer");
    viewer
        .wait_for(|v| v.video.packets > 60 && v.audio.packets > 20, WAIT)
        .await
        .expect("media reaches the viewer");

    // LL-HLS: the multivariant playlist, a media playlist, a missing file and a blocked reload.
    let hls = |file: &str| s.url(&format!("/hls/{room}/{file}"));
    let pl: MediaPlaylist = wait_playlist(&hls("video.m3u8"), |p| p.complete().count() >= 1).await;
    assert_eq!(get(&hls("index.m3u8")).await.status(), 200);
    assert_eq!(get(&hls("nope.txt")).await.status(), 404);
    let next = pl.segments.last().unwrap().msn + 1;
    let url = hls(&format!("video.m3u8?_HLS_msn={next}&_HLS_part=0"));
    let blocked = tokio::spawn(async move { get(&url).await });
    let mut saw_blocked = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !blocked.is_finished() && tokio::time::Instant::now() < deadline {
        if value(&scrape(&s).await, "onair_hls_blocked_requests") >= 1.0 {
            saw_blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_blocked, "the blocked reload shows in the gauge");
    assert_eq!(blocked.await.unwrap().status(), 200);

    // Chat: two messages, one moderation action carried out and one refused.
    let mut boss = Client::as_user(&s, room, true, Role::Broadcaster, "boss").await;
    let mut fan = Client::as_user(&s, room, true, Role::Viewer, "fan").await;
    chat_common::welcome(&mut boss).await;
    chat_common::welcome(&mut fan).await;
    boss.say("hello").await;
    fan.expect_chat("hello").await;
    fan.say("hi").await;
    boss.expect_chat("hi").await;
    boss.command("slow", json!({"seconds": 2})).await;
    fan.expect_type("state").await;
    fan.command("clear", json!({})).await;
    fan.expect_error("forbidden").await;

    let m = scrape(&s).await;
    assert_eq!(value(&m, "onair_rooms"), 1.0);
    assert_eq!(value(&m, "onair_rooms_live"), 1.0);
    assert_eq!(value(&m, "onair_sessions{kind=\"whip\"}"), 1.0);
    assert_eq!(value(&m, "onair_sessions{kind=\"whep\"}"), 1.0);
    assert_eq!(
        value(&m, "onair_sessions_started_total{kind=\"whip\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "onair_sessions_started_total{kind=\"whep\"}"),
        1.0
    );
    for kind in ["video", "audio"] {
        for series in ["packets_in", "bytes_in", "packets_out", "bytes_out"] {
            let v = value(&m, &format!("onair_{series}_total{{kind=\"{kind}\"}}"));
            assert!(v > 0.0, "{series} {kind}");
        }
        value(
            &m,
            &format!("onair_dropped_total{{kind=\"{kind}\",reason=\"queue_full\"}}"),
        );
        value(&m, &format!("onair_nacks_total{{kind=\"{kind}\"}}"));
    }
    assert!(value(&m, "onair_packets_out_total{kind=\"video\"}") > 60.0);
    assert!(value(&m, "onair_keyframe_requests_total{kind=\"video\"}") >= 1.0);
    assert_eq!(value(&m, "onair_hls_streams"), 1.0);
    assert!(
        value(
            &m,
            "onair_hls_requests_total{kind=\"playlist\",status=\"200\"}"
        ) >= 2.0
    );
    assert_eq!(
        value(
            &m,
            "onair_hls_requests_total{kind=\"multivariant\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "onair_hls_requests_total{kind=\"other\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(value(&m, "onair_chat_messages_total{type=\"chat\"}"), 2.0);
    assert_eq!(
        value(&m, "onair_chat_moderation_total{action=\"slow\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "onair_chat_moderation_total{action=\"clear\"}"),
        0.0
    );
    assert_eq!(value(&m, "onair_chat_moderation_refused_total"), 1.0);
    assert_eq!(value(&m, "onair_recordings_active"), 1.0);
    assert!(value(&m, "onair_recording_bytes_total") > 0.0);
    // Nobody relays through TURN here; the series exist either way.
    assert_eq!(value(&m, "onair_turn_allocations"), 0.0);
    value(&m, "onair_turn_relayed_bytes_total{direction=\"to_peer\"}");
    assert_eq!(value(&m, "onair_room_viewers{room=\"gauged\"}"), 1.0);
    assert_eq!(value(&m, "onair_room_live{room=\"gauged\"}"), 1.0);

    boss.close().await;
    fan.close().await;
    viewer.close().await.unwrap();
    publisher.close().await.unwrap();
    // The room is reaped; its counters stay in the totals and the recording is finalised.
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let now = scrape(&s).await;
        if value(&now, "onair_rooms") == 0.0 && value(&now, "onair_recordings_ready_total") == 1.0 {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "room never reaped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for series in [
        "onair_packets_in_total{kind=\"video\"}",
        "onair_bytes_out_total{kind=\"audio\"}",
    ] {
        assert!(
            value(&after, series) >= value(&m, series),
            "{series} went down"
        );
    }
    assert_eq!(value(&after, "onair_sessions{kind=\"whip\"}"), 0.0);
    assert_eq!(
        value(&after, "onair_sessions_started_total{kind=\"whip\"}"),
        1.0
    );
    assert_eq!(value(&after, "onair_recordings_active"), 0.0);
    assert!(!after.keys().any(|k| k.contains("room=\"gauged\"")));
    s.stop().await;
}
