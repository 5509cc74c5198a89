//! Chat replay of recordings through the real server: a broadcast of real H.264 + Opus with
//! chat over a real WebSocket becomes a recording listed with a `chat` URL, and that URL gives
//! the broadcast's messages (and the moderation that followed) with their offsets into the
//! recording; recordings without a chat log answer `404` JSON.

use crate::chat_common;
use crate::common;
use crate::hls_common;

use std::time::Duration;

use chat_common::{Client, welcome};
use common::{TestServer, assert_error};
use hls_common::{WAIT, get, publish};
use onair::auth::Role;
use serde_json::Value;

async fn list(s: &TestServer) -> Vec<Value> {
    let body: Value = get(&s.url("/api/recordings")).await.json().await.unwrap();
    body["recordings"].as_array().unwrap().clone()
}

async fn wait_recording(s: &TestServer, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = list(s).await;
        if let Some(r) = all.iter().find(|r| pred(r)) {
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such recording: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recording_replays_its_broadcasts_chat_with_offsets() {
    let s = TestServer::start().await;
    let room = "chatrec";
    let publisher = publish(&s, room, "host", true).await;
    let mut chat = Client::ws(&s, room, Some(s.token(room, Role::Moderator, "mo"))).await;
    welcome(&mut chat).await;
    s.wait_room(room, WAIT, |r| {
        r["live"] == true && r["chat"]["logging"] == true
    })
    .await;
    // The recording runs before the first message is sent.
    wait_recording(&s, |r| r["room"] == room && r["state"] == "recording").await;

    chat.say("first words").await;
    let first = chat.expect_chat("first words").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    chat.say("<b>not bold</b>").await;
    let second = chat.expect_chat("<b>not bold</b>").await;
    chat.command("delete", serde_json::json!({"id": first["id"]}))
        .await;
    chat.expect_type("deleted").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publisher.close().await.unwrap();

    let rec = wait_recording(&s, |r| r["room"] == room && r["state"] == "complete").await;
    let url = rec["chat"].as_str().expect("the recording has a chat URL");
    let stem = rec["file"].as_str().unwrap().strip_suffix(".mp4").unwrap();
    assert_eq!(url, format!("/recordings/{stem}/chat"));
    let response = get(&s.url(url)).await;
    assert_eq!(response.status(), 200);
    let replay: Value = response.json().await.unwrap();
    let events = replay["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["chat", "chat", "deleted"], "{replay}");
    assert_eq!(events[0]["id"], first["id"]);
    assert_eq!(events[1]["text"], "<b>not bold</b>");
    assert_eq!(events[2]["id"], first["id"]);
    assert_eq!(replay["truncated"], false);
    let duration = rec["duration"].as_f64().unwrap();
    let offsets: Vec<f64> = events
        .iter()
        .map(|e| e["offset"].as_f64().unwrap())
        .collect();
    println!("recording {duration:.3} s; chat offsets {offsets:?}");
    // Sent while the recording ran: inside it, in order, as far apart as sent.
    assert!(
        offsets.iter().all(|&o| (0.0..=duration).contains(&o)),
        "{offsets:?} in {duration}"
    );
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    let sent_apart =
        (second["ts"].as_u64().unwrap() - first["ts"].as_u64().unwrap()) as f64 / 1000.0;
    assert!(
        ((offsets[1] - offsets[0]) - sent_apart).abs() < 0.05,
        "{offsets:?}, {sent_apart}"
    );

    // A recording that does not exist has no chat either.
    assert_error(
        get(&s.url("/recordings/nothing-20230101-000000/chat")).await,
        404,
        "not_found",
    )
    .await;
    chat.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_nobody_chatted_in_has_no_chat_url() {
    let s = TestServer::start().await;
    let publisher = publish(&s, "quiet", "host", true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    publisher.close().await.unwrap();
    let rec = wait_recording(&s, |r| r["room"] == "quiet" && r["state"] == "complete").await;
    assert_eq!(rec["chat"], Value::Null, "{rec}");
    let stem = rec["file"].as_str().unwrap().strip_suffix(".mp4").unwrap();
    assert_error(
        get(&s.url(&format!("/recordings/{stem}/chat"))).await,
        404,
        "not_found",
    )
    .await;
    s.stop().await;
}
