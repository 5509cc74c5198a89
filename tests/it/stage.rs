//! Guests on stage end to end: a broadcaster and two guests (real openh264 H.264 + Opus from
//! the loadtest clients) publish over WHIP and watch each other over multi-slot WHEP; each
//! receives the other two and never themselves (told apart by picture size, decoded), a guest
//! leaving disappears for everyone, muting stops a guest's audio, a removed guest's sessions
//! end, a plain WHEP client gets the broadcaster; the same controls work over the chat channel
//! (`{"type":"stage",...}`) for the broadcaster only.

use crate::chat_common;
use crate::common;

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use chat_common::{Client, welcome};
use common::{TestServer, assert_error};
use onair::auth::Role;
use onair_loadtest::stage::{StageViewOptions, StageViewer};
use onair_loadtest::{
    AudioConfig, PublishOptions, Publisher, RTCPeerConnectionState, VideoConfig, ViewOptions,
    Viewer,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const ROOM: &str = "stage";

/// Each publisher's picture size: the fingerprint a viewer decodes.
const SIZES: [(&str, Role, (usize, usize)); 3] = [
    ("host", Role::Broadcaster, (320, 240)),
    ("g1", Role::Guest, (256, 192)),
    ("g2", Role::Guest, (192, 144)),
];

async fn publish(server: &TestServer, user: &str, role: Role, size: (usize, usize)) -> Publisher {
    let publisher = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: ROOM.into(),
        token: Some(server.token(ROOM, role, user)),
        video: Some(VideoConfig {
            width: size.0 as u32,
            height: size.1 as u32,
            fps: 15,
            bitrate_bps: 250_000,
            keyframe_interval_frames: 30,
        }),
        audio: Some(AudioConfig::default()),
        ..PublishOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{user} publishes: {e}"));
    publisher
        .wait_connected(WAIT)
        .await
        .expect("publisher connects");
    publisher
}

async fn watch(server: &TestServer, user: &str, role: Role) -> StageViewer {
    let viewer = StageViewer::connect(StageViewOptions {
        base_url: server.base.clone(),
        room: ROOM.into(),
        token: Some(server.token(ROOM, role, user)),
        slots: 3,
        chat: true,
    })
    .await
    .unwrap_or_else(|e| panic!("{user} watches: {e}"));
    viewer.wait_connected(WAIT).await.expect("viewer connects");
    viewer
        .chat()
        .unwrap()
        .wait_open(WAIT)
        .await
        .expect("chat opens");
    viewer
}

/// Reads the viewer's chat until a message satisfies `pred`; the last `stage` message seen is
/// kept in `stage`.
async fn until(
    viewer: &StageViewer,
    stage: &mut Value,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let chat = viewer.chat().expect("chat");
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(text)) = chat.recv(Duration::from_millis(500)).await else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).expect("server JSON");
        if v["type"] == "stage" {
            *stage = v.clone();
        }
        if pred(&v) {
            return v;
        }
    }
    panic!("never got {what}; last stage: {stage}");
}

fn entry<'a>(stage: &'a Value, user: &str) -> Option<&'a Value> {
    stage["participants"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == user)
}

/// Waits until, for every participant other than `me`, the video track at its mid decodes
/// to that participant's size; then checks `me`'s size was never received on any track.
async fn sees_the_others(viewer: &StageViewer, stage: &Value, me: &str, others: &[&str]) {
    let sizes: HashMap<&str, (usize, usize)> = SIZES.iter().map(|(u, _, s)| (*u, *s)).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ok = others.iter().all(|o| {
            let mid = entry(stage, o).and_then(|e| e["video_mid"].as_str());
            mid.and_then(|m| viewer.track(m))
                .is_some_and(|t| t.picture == Some(sizes[o]) && t.pictures >= 3)
        });
        if ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{me} does not see {others:?}; stage {stage}; tracks {:?}",
            viewer.tracks()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let own = sizes[me];
    for (mid, t) in viewer.tracks() {
        assert!(
            !t.sizes.contains(&own),
            "{me} received its own picture on mid {mid}"
        );
    }
    let me_entry = entry(stage, me).expect("the stage lists me");
    assert!(me_entry["slot"].is_null(), "no slot shows {me} to {me}");
}

async fn audio_packets(viewer: &StageViewer, stage: &Value, user: &str) -> u64 {
    let mid = entry(stage, user)
        .and_then(|e| e["audio_mid"].as_str())
        .expect("audio mid");
    viewer.track(mid).map_or(0, |t| t.packets)
}

/// Waits until at least `n` audio packets of `user` reached `viewer`.
async fn audio_reaches(viewer: &StageViewer, stage: &Value, user: &str, n: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while audio_packets(viewer, stage, user).await < n {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After half a second to drain, no audio of `user` reaches `viewer` for a second; returns
/// the packet count.
async fn audio_stays_still(viewer: &StageViewer, stage: &Value, user: &str) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = audio_packets(viewer, stage, user).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = audio_packets(viewer, stage, user).await;
    assert_eq!(before, after, "no audio of a muted guest is forwarded");
    after
}

/// Waits until both of `user`'s sessions (WHIP and WHEP) are no longer connected.
async fn sessions_end(publisher: &Publisher, viewer: &StageViewer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while publisher.connection_state() == RTCPeerConnectionState::Connected
        || viewer.connection_state() == RTCPeerConnectionState::Connected
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed guest's sessions never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcaster_and_two_guests_see_each_other_never_themselves() {
    let server = TestServer::start().await;
    let mut publishers = Vec::new();
    for (user, role, size) in SIZES {
        publishers.push(publish(&server, user, role, size).await);
    }
    server
        .wait_room(ROOM, WAIT, |r| {
            r["stage"].as_array().is_some_and(|s| s.len() == 3)
        })
        .await;
    let mut viewers = Vec::new();
    for (user, role, _) in SIZES {
        viewers.push(watch(&server, user, role).await);
    }
    let mut stages = vec![Value::Null; 3];
    for (i, (me, _, _)) in SIZES.iter().enumerate() {
        let others: Vec<&str> = SIZES.iter().map(|s| s.0).filter(|u| u != me).collect();
        until(&viewers[i], &mut stages[i], "a stage of three", |v| {
            v["type"] == "stage" && v["participants"].as_array().is_some_and(|p| p.len() == 3)
        })
        .await;
        assert_eq!(stages[i]["you"], *me);
        assert_eq!(entry(&stages[i], "host").unwrap()["role"], "broadcaster");
        sees_the_others(&viewers[i], &stages[i], me, &others).await;
    }
    // The host's own session shows the guests; a viewer's slot 0 is the broadcaster.
    assert_eq!(entry(&stages[1], "host").unwrap()["slot"], 0);

    // A plain WHEP client (one audio + one video) gets the broadcaster.
    let plain = Viewer::connect(ViewOptions {
        base_url: server.base.clone(),
        room: ROOM.into(),
        decode: true,
        ..ViewOptions::default()
    })
    .await
    .expect("plain viewer");
    let deadline = tokio::time::Instant::now() + WAIT;
    while plain.last_picture().is_none_or(|p| p.width() != 320) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "plain viewer never decoded the host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(plain.last_picture().unwrap().height(), 240);

    // g1 leaves: everyone's stage drops them and the chat says so.
    let g1 = publishers.remove(1);
    g1.close().await.expect("g1 leaves");
    for i in [0, 2] {
        let (left, gone) = (Cell::new(false), Cell::new(false));
        until(
            &viewers[i],
            &mut stages[i],
            "guest_left and a stage without g1",
            |v| {
                if v["type"] == "system" && v["event"] == "guest_left" && v["user"]["id"] == "g1" {
                    left.set(true);
                }
                if v["type"] == "stage" && entry(v, "g1").is_none() && entry(v, "g2").is_some() {
                    gone.set(true);
                }
                left.get() && gone.get()
            },
        )
        .await;
    }
    plain.close().await.ok();
    for v in viewers {
        v.close().await.ok();
    }
    for p in publishers {
        p.close().await.ok();
    }
    server.stop().await;
}

/// The broadcaster and guest `g2`, each publishing and watching the stage, once the host sees
/// g2 on stage and hears its audio.
struct HostAndGuest {
    host: Publisher,
    g2: Publisher,
    host_view: StageViewer,
    g2_view: StageViewer,
    host_stage: Value,
    g2_stage: Value,
}

async fn host_and_guest_on_stage(server: &TestServer) -> HostAndGuest {
    let host = publish(server, "host", Role::Broadcaster, SIZES[0].2).await;
    let g2 = publish(server, "g2", Role::Guest, SIZES[2].2).await;
    let host_view = watch(server, "host", Role::Broadcaster).await;
    let g2_view = watch(server, "g2", Role::Guest).await;
    let (mut host_stage, g2_stage) = (Value::Null, Value::Null);
    until(&host_view, &mut host_stage, "g2 on stage", |v| {
        v["type"] == "stage" && entry(v, "g2").is_some()
    })
    .await;
    audio_reaches(
        &host_view,
        &host_stage,
        "g2",
        20,
        "g2's audio never arrived",
    )
    .await;
    HostAndGuest {
        host,
        g2,
        host_view,
        g2_view,
        host_stage,
        g2_stage,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcaster_mutes_and_removes_a_guest() {
    let server = TestServer::start().await;
    let HostAndGuest {
        host,
        g2,
        host_view,
        g2_view,
        mut host_stage,
        mut g2_stage,
    } = host_and_guest_on_stage(&server).await;

    let control = |user: &str, bearer: String, body: Value| {
        let url = server.url(&format!("/api/rooms/{ROOM}/stage/{user}"));
        async move {
            reqwest::Client::new()
                .post(url)
                .header("authorization", bearer)
                .json(&body)
                .send()
                .await
                .expect("control request")
        }
    };
    // Only the broadcaster controls the stage; bad input is a JSON error.
    let guest = server.bearer(ROOM, Role::Guest, "g2");
    assert_error(
        control("g2", guest, serde_json::json!({"action": "mute"})).await,
        403,
        "forbidden",
    )
    .await;
    let host_bearer = || server.bearer(ROOM, Role::Broadcaster, "host");
    assert_error(
        control("g2", host_bearer(), serde_json::json!({"action": "jump"})).await,
        400,
        "bad_action",
    )
    .await;
    assert_error(
        control(
            "nobody",
            host_bearer(),
            serde_json::json!({"action": "mute"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Mute: the guest is told, and its audio stops for everyone.
    let muted = control("g2", host_bearer(), serde_json::json!({"action": "mute"})).await;
    assert_eq!(muted.status(), 200);
    until(&g2_view, &mut g2_stage, "g2 told it is muted", |v| {
        v["type"] == "stage" && entry(v, "g2").is_some_and(|e| e["muted"] == true)
    })
    .await;
    until(&host_view, &mut host_stage, "guest_muted", |v| {
        v["type"] == "system" && v["event"] == "guest_muted"
    })
    .await;
    let after = audio_stays_still(&host_view, &host_stage, "g2").await;
    let unmuted = control("g2", host_bearer(), serde_json::json!({"action": "unmute"})).await;
    assert_eq!(unmuted.status(), 200);
    let resumed = "audio never resumed after unmute";
    audio_reaches(&host_view, &host_stage, "g2", after + 10, resumed).await;

    // Remove: the guest's WHIP and WHEP sessions end, everyone is told, no way back.
    let removed = control("g2", host_bearer(), serde_json::json!({"action": "remove"})).await;
    assert_eq!(removed.status(), 200);
    until(&host_view, &mut host_stage, "guest_removed", |v| {
        v["type"] == "system" && v["event"] == "guest_removed" && v["user"]["id"] == "g2"
    })
    .await;
    sessions_end(&g2, &g2_view).await;
    let again = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: ROOM.into(),
        token: Some(server.token(ROOM, Role::Guest, "g2")),
        ..PublishOptions::default()
    })
    .await
    .expect_err("a removed guest cannot come back");
    assert!(again.to_string().contains("removed"), "{again}");
    host_view.close().await.ok();
    host.close().await.ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcasters_chat_mutes_and_removes_a_guest_and_nobody_elses_does() {
    let server = TestServer::start().await;
    let HostAndGuest {
        host,
        g2,
        host_view,
        g2_view,
        mut host_stage,
        mut g2_stage,
    } = host_and_guest_on_stage(&server).await;
    let stage = |action: &str, user: &str| json!({"type": "stage", "action": action, "user": user});
    let is_error = |code: &'static str| move |v: &Value| v["type"] == "error" && v["code"] == code;

    // A guest's data channel and a viewer's WebSocket are refused; nothing changes.
    let g2_chat = g2_view.chat().expect("g2's chat");
    g2_chat.send_json(&stage("mute", "g2")).await.unwrap();
    until(&g2_view, &mut g2_stage, "forbidden", is_error("forbidden")).await;
    let mut viewer = Client::as_user(&server, ROOM, true, Role::Viewer, "v").await;
    welcome(&mut viewer).await;
    viewer.send(stage("remove", "g2")).await;
    viewer.expect_error("forbidden").await;
    let g2_entry = api_entry(&server, "g2").await.expect("g2 still on stage");
    assert_eq!(g2_entry["muted"], false, "a refused mute does nothing");

    // The broadcaster's data channel: bad input is a bad_request, a non-guest too.
    let host_chat = host_view.chat().expect("host's chat");
    host_chat.send_json(&stage("jump", "g2")).await.unwrap();
    until(
        &host_view,
        &mut host_stage,
        "bad action",
        is_error("bad_request"),
    )
    .await;
    host_chat.send_json(&stage("mute", "nobody")).await.unwrap();
    let e = until(
        &host_view,
        &mut host_stage,
        "not a guest",
        is_error("bad_request"),
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("not a guest"),
        "{e}"
    );

    // Mute by display name ("G2"): everyone is told (the viewer's WebSocket too), audio stops.
    host_chat.send_json(&stage("mute", "G2")).await.unwrap();
    until(&g2_view, &mut g2_stage, "g2 told it is muted", |v| {
        v["type"] == "stage" && entry(v, "g2").is_some_and(|e| e["muted"] == true)
    })
    .await;
    let system = |event: &'static str| {
        move |v: &Value| v["type"] == "system" && v["event"] == event && v["user"]["id"] == "g2"
    };
    until(
        &host_view,
        &mut host_stage,
        "guest_muted",
        system("guest_muted"),
    )
    .await;
    viewer.expect("guest_muted", system("guest_muted")).await;
    let after = audio_stays_still(&host_view, &host_stage, "g2").await;
    host_chat.send_json(&stage("unmute", "g2")).await.unwrap();
    until(
        &host_view,
        &mut host_stage,
        "guest_unmuted",
        system("guest_unmuted"),
    )
    .await;
    let resumed = "audio never resumed after unmute";
    audio_reaches(&host_view, &host_stage, "g2", after + 10, resumed).await;

    // Remove over the broadcaster's WebSocket: the guest's sessions end, everyone is told.
    let mut host_ws = Client::as_user(&server, ROOM, true, Role::Broadcaster, "host").await;
    welcome(&mut host_ws).await;
    host_ws.send(stage("remove", "g2")).await;
    host_ws
        .expect("guest_removed", system("guest_removed"))
        .await;
    viewer
        .expect("guest_removed", system("guest_removed"))
        .await;
    sessions_end(&g2, &g2_view).await;
    assert!(api_entry(&server, "g2").await.is_none(), "g2 is off stage");
    for c in [viewer, host_ws] {
        c.close().await;
    }
    host_view.close().await.ok();
    host.close().await.ok();
    server.stop().await;
}

/// `user`'s entry in the stage of `GET /api/rooms/{room}`, if on stage.
async fn api_entry(server: &TestServer, user: &str) -> Option<Value> {
    let room = server.wait_room(ROOM, WAIT, |_| true).await;
    room["stage"]
        .as_array()?
        .iter()
        .find(|p| p["user"] == user)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stage_refuses_another_guest() {
    let server = TestServer::start_with(|c| c.stage.max_guests = 1).await;
    let g1 = publish(&server, "g1", Role::Guest, SIZES[1].2).await;
    let refused = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: ROOM.into(),
        token: Some(server.token(ROOM, Role::Guest, "g2")),
        video: None,
        ..PublishOptions::default()
    })
    .await
    .expect_err("a second guest does not fit");
    let text = refused.to_string();
    assert!(
        text.contains("409") && text.contains("stage_full"),
        "{text}"
    );
    g1.close().await.ok();
    server.stop().await;
}

/// RFC 6464 levels in -dBov: a guest talking and one keeping quiet.
const LOUD: u8 = 10;
const SILENT: u8 = 127;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loud_guest_is_the_active_speaker_and_it_follows_a_swap() {
    let server = TestServer::start().await;
    let mut publishers = Vec::new();
    for (user, role, size) in SIZES {
        let publisher = publish(&server, user, role, size).await;
        assert!(
            publisher.audio_level_negotiated(),
            "the WHIP answer accepts {user}'s ssrc-audio-level extension"
        );
        publishers.push(publisher);
    }
    server
        .wait_room(ROOM, WAIT, |r| {
            r["stage"].as_array().is_some_and(|s| s.len() == 3)
        })
        .await;
    let viewer = watch(&server, "v", Role::Viewer).await;
    let mut stage = Value::Null;
    until(&viewer, &mut stage, "a stage of three", |v| {
        v["type"] == "stage" && v["participants"].as_array().is_some_and(|p| p.len() == 3)
    })
    .await;
    let [host, g1, g2] = &publishers[..] else {
        unreachable!("three publishers");
    };
    let speaker_is =
        |user: &'static str| move |v: &Value| v["type"] == "speaker" && v["user"] == user;

    // g1 talks, the others are silent: g1 becomes the speaker.
    host.set_audio_level(Some(SILENT));
    g2.set_audio_level(Some(SILENT));
    g1.set_audio_level(Some(LOUD));
    until(&viewer, &mut stage, "speaker g1", speaker_is("g1")).await;

    // They swap: the highlight follows g2 (after the selector's hold, never back to g1).
    g1.set_audio_level(Some(SILENT));
    g2.set_audio_level(Some(LOUD));
    let swapped = until(&viewer, &mut stage, "speaker g2", |v| {
        v["type"] == "speaker" && v["user"] != "g1"
    })
    .await;
    assert_eq!(swapped["user"], "g2", "the next speaker is the loud guest");

    // Everyone silent: nobody stays highlighted for ever.
    g2.set_audio_level(Some(SILENT));
    let quiet = until(&viewer, &mut stage, "no speaker", |v| {
        v["type"] == "speaker"
    })
    .await;
    assert!(
        quiet["user"].is_null(),
        "silence clears the speaker: {quiet}"
    );

    viewer.close().await.ok();
    for p in publishers {
        p.close().await.ok();
    }
    server.stop().await;
}
