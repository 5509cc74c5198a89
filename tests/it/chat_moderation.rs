//! Chat moderation integration tests (chat path): every moderator command over real data
//! channels and WebSockets, and bans reaching the banned user's WHIP/WHEP sessions.

use crate::chat_common;
use crate::common;

use chat_common::{Client, Closed, WAIT, welcome};
use common::TestServer;
use onair::auth::Role;
use onair_loadtest::{ClientError, PublishOptions, Publisher, ViewOptions, Viewer};
use serde_json::json;

/// Joins and reads the welcome.
async fn joined(server: &TestServer, room: &str, ws: bool, role: Role, sub: &str) -> Client {
    let mut c = Client::as_user(server, room, ws, role, sub).await;
    welcome(&mut c).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_ends_chat_and_media_sessions_and_refuses_rejoin_until_unbanned() {
    let server = TestServer::start().await;
    let room = "bans";
    let mut m = joined(&server, room, true, Role::Moderator, "mod").await;
    let mut bob_dc = joined(&server, room, false, Role::Viewer, "bob").await;
    let mut bob_ws = joined(&server, room, true, Role::Viewer, "bob").await;
    let mut ann = joined(&server, room, true, Role::Viewer, "ann").await;
    server.wait_room(room, WAIT, |r| r["viewers"] == 1).await;

    bob_dc.say("buy my stuff").await;
    let spam = m.expect_chat("buy my stuff").await["id"].clone();
    m.command("ban", json!({"user": "bob", "seconds": 600}))
        .await;

    for bob in [&mut bob_dc, &mut bob_ws] {
        let e = bob.expect_error("banned").await;
        assert!(e["retry_ms"].as_u64().unwrap() > 590_000, "{e}");
    }
    assert_eq!(bob_ws.expect_closed().await, Closed::Code(1008));
    bob_dc.expect_closed().await;
    let deleted = ann.expect_type("deleted").await;
    assert_eq!(deleted["id"], spam, "the banned user's messages disappear");
    let state = m.expect_type("state").await;
    assert_eq!(state["bans"][0]["user"]["id"], "bob", "{state}");
    server.wait_room(room, WAIT, |r| r["viewers"] == 0).await;

    let refused = Viewer::connect(ViewOptions {
        base_url: server.base.clone(),
        room: room.into(),
        token: Some(server.token(room, Role::Viewer, "bob")),
        ..ViewOptions::default()
    })
    .await
    .expect_err("WHEP refuses a banned user");
    let ClientError::Http { status, body } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "banned", "{body}");

    let mut again = Client::ws(&server, room, Some(server.token(room, Role::Viewer, "bob"))).await;
    again.expect_error("banned").await;
    assert_eq!(again.expect_closed().await, Closed::Code(1008));

    m.command("unban", json!({"user": "bob"})).await;
    m.expect("state without bob's ban", |v| {
        v["type"] == "state" && v["bans"] == json!([])
    })
    .await;
    let mut back =
        Client::viewer(&server, room, Some(server.token(room, Role::Viewer, "bob"))).await;
    welcome(&mut back).await;
    for c in [m, ann, back] {
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banning_a_guest_ends_their_whip_session() {
    let server = TestServer::start().await;
    let room = "stage";
    let mut host = joined(&server, room, true, Role::Broadcaster, "host").await;
    let guest = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: room.into(),
        token: Some(server.token(room, Role::Guest, "gus")),
        video: None,
        ..PublishOptions::default()
    })
    .await
    .expect("the guest publishes");
    server
        .wait_room(room, WAIT, |r| {
            r["publisher"]["user"] == "gus" && r["live"] == true
        })
        .await;
    host.command("ban", json!({"user": "gus"})).await;
    host.expect("state listing the ban", |v| {
        v["type"] == "state" && v["bans"][0]["user"]["id"] == "gus"
    })
    .await;
    server
        .wait_room(room, WAIT, |r| r["publisher"].is_null())
        .await;
    let refused = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: room.into(),
        token: Some(server.token(room, Role::Guest, "gus")),
        video: None,
        ..PublishOptions::default()
    })
    .await
    .expect_err("WHIP refuses a banned guest");
    assert!(
        matches!(refused, ClientError::Http { status: 403, .. }),
        "{refused:?}"
    );
    drop(guest);
    host.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_clear_slow_guests_only_and_the_filter_reach_everyone() {
    let server = TestServer::start().await;
    let room = "mods";
    let mut m = joined(&server, room, true, Role::Moderator, "mod").await;
    let mut ann = joined(&server, room, false, Role::Viewer, "ann").await;
    let mut gus = joined(&server, room, true, Role::Guest, "gus").await;

    ann.say("oops").await;
    let id = m.expect_chat("oops").await["id"].clone();
    m.command("delete", json!({"id": id})).await;
    for c in [&mut m, &mut ann, &mut gus] {
        assert_eq!(c.expect_type("deleted").await["id"], id);
    }

    gus.say("one").await;
    m.expect_chat("one").await;
    m.command("clear", json!({})).await;
    for c in [&mut m, &mut ann, &mut gus] {
        c.expect_type("cleared").await;
    }
    let mut late = joined(&server, room, true, Role::Viewer, "late").await;
    m.command("slow", json!({"seconds": 30})).await;
    for c in [&mut ann, &mut gus, &mut late] {
        let s = c.expect_type("state").await;
        assert_eq!(
            (s["slow"].as_u64(), s.get("filter")),
            (Some(30), None),
            "{s}"
        );
    }
    assert_eq!(m.expect_type("state").await["slow"], 30);
    late.say("first").await;
    late.expect_chat("first").await;
    late.say("second").await;
    let e = late.expect_error("slow_mode").await;
    assert!(e["retry_ms"].as_u64().unwrap() <= 30_000);
    m.say("moderators are exempt").await;
    m.say("from slow mode").await;
    m.expect_chat("from slow mode").await;
    m.command("slow", json!({"seconds": 0})).await;

    m.command("guests_only", json!({})).await;
    ann.expect("guests-only state", |v| {
        v["type"] == "state" && v["guests_only"] == true
    })
    .await;
    ann.say("can I?").await;
    ann.expect_error("forbidden").await;
    gus.say("guests can").await;
    ann.expect_chat("guests can").await;
    m.command("guests_only", json!({"on": false})).await;
    ann.expect("open again", |v| {
        v["type"] == "state" && v["guests_only"] == false
    })
    .await;

    m.command("filter_add", json!({"word": "Darn"})).await;
    let s = m
        .expect("filter state", |v| {
            v["type"] == "state" && v["filter"] == json!(["darn"])
        })
        .await;
    assert_eq!(s["slow"], 0);
    late.say("darn it").await;
    for c in [&mut m, &mut ann, &mut late] {
        c.expect_chat("**** it").await;
    }
    m.command("filter_remove", json!({"word": "darn"})).await;
    m.expect("empty filter", |v| {
        v["type"] == "state" && v["filter"] == json!([])
    })
    .await;
    for c in [m, ann, gus, late] {
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_promotions_and_who_may_act_on_whom() {
    let server = TestServer::start().await;
    let room = "ranks";
    let mut host =
        Client::publisher(&server, room, server.token(room, Role::Broadcaster, "host")).await;
    welcome(&mut host).await;
    let mut m1 = joined(&server, room, true, Role::Moderator, "m1").await;
    joined(&server, room, true, Role::Moderator, "m2").await;
    let mut ann = joined(&server, room, false, Role::Viewer, "ann").await;

    m1.command("timeout", json!({"user": "ann", "seconds": 120}))
        .await;
    ann.expect_error("timed_out").await;
    ann.say("muted?").await;
    let e = ann.expect_error("timed_out").await;
    assert!(e["retry_ms"].as_u64().unwrap() <= 120_000);
    m1.command("timeout", json!({"user": "ann", "seconds": 0}))
        .await;
    m1.expect("timeout lifted", |v| {
        v["type"] == "state" && v["timeouts"] == json!([])
    })
    .await;
    ann.say("free").await;
    ann.expect_chat("free").await;

    for (action, user) in [
        ("ban", "host"),
        ("timeout", "host"),
        ("ban", "m2"),
        ("timeout", "m2"),
    ] {
        m1.command(action, json!({"user": user, "seconds": 60}))
            .await;
        m1.expect_error("forbidden").await;
    }
    ann.command("clear", json!({})).await;
    ann.expect_error("forbidden").await;
    m1.command("promote", json!({"user": "ann"})).await;
    m1.expect_error("forbidden").await;

    host.command("promote", json!({"user": "ann"})).await;
    let w = ann.expect_type("welcome").await;
    assert_eq!(
        w["you"]["role"], "moderator",
        "a new welcome carries the new role: {w}"
    );
    assert!(w["state"]["filter"].is_array());
    let s = m1
        .expect("promoted list", |v| {
            v["type"] == "state" && v["promoted"][0]["id"] == "ann"
        })
        .await;
    assert_eq!(s["promoted"][0]["role"], "moderator");
    ann.say("with a badge").await;
    assert_eq!(
        host.expect_chat("with a badge").await["user"]["role"],
        "moderator"
    );
    m1.command("timeout", json!({"user": "ann", "seconds": 60}))
        .await;
    m1.expect_error("forbidden").await;

    host.command("demote", json!({"user": "ann"})).await;
    assert_eq!(ann.expect_type("welcome").await["you"]["role"], "viewer");
    ann.command("clear", json!({})).await;
    ann.expect_error("forbidden").await;
    host.command("ban", json!({"user": "m2", "seconds": 60}))
        .await;
    host.expect("m2 banned by the broadcaster", |v| {
        v["type"] == "state" && v["bans"][0]["user"]["id"] == "m2"
    })
    .await;
    for c in [host, m1, ann] {
        c.close().await;
    }
    server.stop().await;
}
