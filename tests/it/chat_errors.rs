//! Chat error-code integration tests (chat path): each code of DESIGN.md §4 over both
//! transports, and a connection that stays usable after bad input. Rate-limit refills are set
//! to minutes so the limits trip deterministically, without timing.

use crate::chat_common;
use crate::common;

use chat_common::{Client, welcome};
use common::TestServer;
use onair::auth::Role;
use onair::core::chat::ChatLimits;
use serde_json::json;

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.chat = ChatLimits {
            max_length: 20,
            user_burst: 3,
            user_refill_ms: 600_000,
            conn_burst: 12,
            conn_refill_ms: 600_000,
            ..ChatLimits::default()
        };
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_bad_request_or_too_long_and_the_connection_stays_usable() {
    let server = server().await;
    let room = "errors";
    for ws in [true, false] {
        let mut c =
            Client::as_user(&server, room, ws, Role::Viewer, if ws { "w" } else { "d" }).await;
        welcome(&mut c).await;
        for bad in [
            "{not json",
            "[1,2]",
            r#"{"type":"dance"}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","text":"   "}"#,
            r#"{"type":"mod","action":"nuke"}"#,
        ] {
            c.send_raw(bad).await;
            let e = c.next_non_presence().await;
            assert_eq!(
                (e["type"].as_str(), e["code"].as_str()),
                (Some("error"), Some("bad_request")),
                "{bad}: {e}"
            );
        }
        c.say(&"x".repeat(21)).await;
        c.expect_error("too_long").await;
        c.send_raw(&format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "y".repeat(20_000)
        ))
        .await;
        c.expect_error("too_long").await;
        c.say("still fine").await;
        c.expect_chat("still fine").await;
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_and_per_connection_rate_limits() {
    let server = server().await;
    let room = "limits";
    let mut a_ws = Client::as_user(&server, room, true, Role::Viewer, "ann").await;
    let mut a_dc = Client::as_user(&server, room, false, Role::Viewer, "ann").await;
    welcome(&mut a_ws).await;
    welcome(&mut a_dc).await;
    // Three messages per user, whatever the connection.
    for (i, text) in ["1", "2", "3"].into_iter().enumerate() {
        let sender = if i % 2 == 0 { &mut a_ws } else { &mut a_dc };
        sender.say(text).await;
        a_ws.expect_chat(text).await;
        a_dc.expect_chat(text).await;
    }
    a_dc.say("4").await;
    let e = a_dc.expect_error("rate_limited").await;
    assert!(e["retry_ms"].as_u64().unwrap() > 0);

    // Twelve frames per connection of any kind; the thirteenth is refused, valid or not.
    let mut b = Client::as_user(&server, room, true, Role::Viewer, "bob").await;
    welcome(&mut b).await;
    for _ in 0..12 {
        b.send(json!({"type": "dance"})).await;
    }
    b.say("valid, but one frame too many").await;
    for _ in 0..12 {
        let e = b.next_non_presence().await;
        assert_eq!(e["code"], "bad_request", "{e}");
    }
    let e = b.next_non_presence().await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    for c in [a_ws, a_dc, b] {
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_code() {
    let server = server().await;
    let room = "codes";
    let mut host = Client::as_user(&server, room, true, Role::Broadcaster, "host").await;
    let mut ann = Client::as_user(&server, room, false, Role::Viewer, "ann").await;
    welcome(&mut host).await;
    welcome(&mut ann).await;
    ann.command("slow", json!({"seconds": 5})).await;
    ann.expect_error("forbidden").await;
    host.command("slow", json!({"seconds": 60})).await;
    // The host's command and ann's messages travel on different connections: wait until ann
    // sees slow mode on before writing, or "a" may be judged before it.
    let state = ann.expect_type("state").await;
    assert_eq!(state["slow"], 60, "{state}");
    ann.say("a").await;
    ann.expect_chat("a").await;
    ann.say("b").await;
    ann.expect_error("slow_mode").await;
    host.command("timeout", json!({"user": "ann", "seconds": 60}))
        .await;
    ann.expect_error("timed_out").await;
    ann.send(json!({"type": "reaction", "emoji": "😢"})).await;
    ann.expect_error("timed_out").await;
    host.command("ban", json!({"user": "ann", "seconds": 60}))
        .await;
    ann.expect_error("banned").await;
    ann.expect_closed().await;
    host.command("ban", json!({"user": "ann", "seconds": 99_999_999}))
        .await;
    host.expect_error("bad_request").await;
    host.close().await;
    server.stop().await;
}
