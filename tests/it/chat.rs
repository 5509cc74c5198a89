//! Chat integration tests (chat path): the real server on port 0 with real WebRTC data channels
//! (WHIP and WHEP clients from `onair_loadtest`) and real WebSockets in the same room: the
//! welcome, fan-out across transports, history, presence, identities, and the chat log.

use crate::chat_common;
use crate::common;

use chat_common::{Client, WAIT, welcome};
use common::TestServer;
use onair::auth::Role;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_member_across_transports_with_ids_and_timestamps() {
    let server = TestServer::start().await;
    let room = "fanout";
    let mut host =
        Client::publisher(&server, room, server.token(room, Role::Broadcaster, "host")).await;
    let mut ann = Client::as_user(&server, room, false, Role::Viewer, "ann").await;
    let mut anon = Client::ws(&server, room, None).await;

    let w = welcome(&mut host).await;
    assert_eq!(
        w["you"],
        json!({"id": "host", "name": "HOST", "role": "broadcaster"})
    );
    assert_eq!(w["state"]["slow"], 0);
    assert!(
        w["state"]["filter"].is_array(),
        "the broadcaster sees moderator state: {w}"
    );
    let w = welcome(&mut ann).await;
    assert_eq!(w["you"]["role"], "viewer");
    assert!(w["state"].get("filter").is_none(), "viewers do not: {w}");
    let w = welcome(&mut anon).await;
    let anon_id = w["you"]["id"].as_str().expect("id").to_owned();
    assert!(anon_id.starts_with("anon-"), "{w}");
    assert!(w["you"]["name"].as_str().unwrap().starts_with("viewer-"));
    assert!(
        w["viewers"].as_u64().unwrap() >= 2,
        "WHEP viewer + WebSocket: {w}"
    );

    ann.say("  hello from WHEP  ").await;
    let mut seen: Vec<Value> = Vec::new();
    for client in [&mut host, &mut ann, &mut anon] {
        seen.push(client.expect_chat("hello from WHEP").await);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "one message, the same for all: {seen:?}"
    );
    let first = &seen[0];
    assert_eq!(
        first["user"],
        json!({"id": "ann", "name": "ANN", "role": "viewer"})
    );
    assert!(first["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(
        first["ts"].as_u64().unwrap() > 1_600_000_000_000,
        "Unix ms: {first}"
    );

    anon.say("hello from WebSocket").await;
    anon.expect_chat("hello from WebSocket").await;
    host.say("hello from WHIP").await;
    for client in [&mut host, &mut ann] {
        let v = client.expect_chat("hello from WebSocket").await;
        assert_eq!(v["user"]["id"], anon_id.as_str());
    }
    for client in [&mut host, &mut ann, &mut anon] {
        let v = client.expect_chat("hello from WHIP").await;
        assert_eq!(v["user"]["role"], "broadcaster");
    }

    ann.send(json!({"type": "reaction", "emoji": "🎉"})).await;
    for client in [&mut host, &mut anon] {
        let v = client.expect_type("reaction").await;
        assert_eq!(
            (v["emoji"].as_str(), v["user"]["id"].as_str()),
            (Some("🎉"), Some("ann"))
        );
    }

    let mut late = Client::ws(
        &server,
        room,
        Some(server.token(room, Role::Viewer, "late")),
    )
    .await;
    let w = welcome(&mut late).await;
    let texts: Vec<&str> = w["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["hello from WHEP", "hello from WebSocket", "hello from WHIP"]
    );
    assert_eq!(w["history"][0], seen[0], "history carries the same objects");

    for c in [host, ann, anon, late] {
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_reports_joins_leaves_and_the_viewer_count() {
    let server = TestServer::start().await;
    let room = "presence";
    let mut watcher = Client::ws(&server, room, Some(server.token(room, Role::Viewer, "w"))).await;
    welcome(&mut watcher).await;
    let v = watcher
        .expect("presence with one chatter", |v| {
            v["type"] == "presence" && v["chatters"] == 1 && v["viewers"] == 1
        })
        .await;
    assert!(v["joined"].is_array() && v["left"].is_array(), "{v}");

    let mut ann = Client::as_user(&server, room, false, Role::Viewer, "ann").await;
    welcome(&mut ann).await;
    let v = watcher
        .expect("ann joins over WHEP", |v| {
            v["type"] == "presence" && v["chatters"] == 2 && v["viewers"] == 2
        })
        .await;
    let joined = v["joined"].as_array().unwrap();
    assert!(joined.iter().any(|u| u["id"] == "ann"), "{v}");

    ann.close().await;
    let v = watcher
        .expect("ann leaves", |v| {
            v["type"] == "presence" && v["chatters"] == 1 && v["viewers"] == 1
        })
        .await;
    assert!(
        v["left"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == "ann"),
        "{v}"
    );
    watcher.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_chat_log_is_written_next_to_the_recording() {
    let server = TestServer::start().await;
    let room = "logged";
    let mut host =
        Client::publisher(&server, room, server.token(room, Role::Broadcaster, "host")).await;
    welcome(&mut host).await;
    server
        .wait_room(room, WAIT, |r| {
            r["live"] == true && r["chat"]["logging"] == true
        })
        .await;
    host.say("on the record").await;
    host.expect_chat("on the record").await;
    host.send(json!({"type": "reaction", "emoji": "👏"})).await;
    host.expect_type("reaction").await;

    let dir = server.server.app().config.data_dir.join("chat").join(room);
    let deadline = tokio::time::Instant::now() + WAIT;
    let lines = loop {
        let file = std::fs::read_dir(&dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path());
        let lines: Vec<Value> = file
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        if lines.iter().any(|l| l["type"] == "reaction") {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log lines: {lines:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let started: u64 = name
        .to_str()
        .and_then(|n| n.strip_suffix(".jsonl"))
        .and_then(|n| n.parse().ok())
        .expect("<started unix ms>.jsonl");
    assert_eq!(
        lines[0],
        json!({"type": "log", "version": 1, "room": room, "started": started})
    );
    assert_eq!(lines[1]["type"], "state");
    assert!(
        lines[1].get("filter").is_none(),
        "the log is public: no moderator state"
    );
    let chat = lines
        .iter()
        .find(|l| l["type"] == "chat")
        .expect("chat line");
    assert_eq!(chat["text"], "on the record");
    assert!(chat["ts"].as_u64().unwrap() >= started);
    host.close().await;
    server.stop().await;
}
