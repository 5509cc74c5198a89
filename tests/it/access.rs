//! Roles and rooms against the real server: every cell of the role × action matrix on a public
//! and a private room (each cell a real request: WHIP/WHEP offers, HLS, WebSocket chat, API,
//! recordings), expired and wrong-room tokens on every route, LL-HLS of a private room with
//! the token carried on every playlist URI, session ownership and the admin API ending real
//! sessions.

use crate::chat_common;
use crate::common;

use std::time::Duration;

use chat_common::{Client, Closed};
use common::offer::{RawOptions, RawPeer};
use common::{TestServer, assert_error};
use onair::auth::{Claims, Role, unix_now};
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn server() -> TestServer {
    TestServer::start_with(|c| c.access.private_rooms = vec!["priv-*".into()]).await
}

fn small_video() -> VideoConfig {
    VideoConfig {
        width: 160,
        height: 120,
        fps: 15,
        bitrate_bps: 150_000,
        keyframe_interval_frames: 15,
    }
}

async fn publish(s: &TestServer, room: &str, sub: &str) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, sub)),
        video: Some(small_video()),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    p.wait_connected(WAIT).await.expect("publisher connects");
    p
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn with_token(r: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => r.header("authorization", format!("Bearer {t}")),
        None => r,
    }
}

/// The subjects of the matrix, in the order of [`EXPECTED`]'s columns.
const SUBJECTS: [&str; 6] = [
    "anonymous",
    "viewer",
    "moderator",
    "guest",
    "broadcaster",
    "admin",
];

/// `Y` allowed, `T` 401 (a token is needed), `R` 403 (the role may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Y,
    T,
    R,
}
use Cell::{R, T, Y};

/// Written out by hand (README's table): `(action, public row, private row)`.
const EXPECTED: [(&str, [Cell; 6], [Cell; 6]); 12] = [
    ("publish", [T, R, R, Y, Y, Y], [T, R, R, Y, Y, Y]),
    ("whep", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("hls", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("chat_read", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("chat_write", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("moderate", [T, R, Y, R, Y, Y], [T, R, Y, R, Y, Y]),
    ("list_rooms", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("room_detail", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("list_recordings", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("download_recording", [Y, Y, Y, Y, Y, Y], [T, Y, Y, Y, Y, Y]),
    ("invite", [T, R, R, R, Y, Y], [T, R, R, R, Y, Y]),
    ("admin", [T, R, R, R, R, Y], [T, R, R, R, R, Y]),
];

/// Maps an HTTP answer to a cell (401 must be `missing_token`, 403 `forbidden`).
async fn http_cell(r: reqwest::Response, what: &str) -> Cell {
    match r.status().as_u16() {
        401 => {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "missing_token", "{what}: {body}");
            T
        }
        403 => {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "forbidden", "{what}: {body}");
            R
        }
        s if (200..300).contains(&s) => Y,
        s => panic!("{what}: unexpected status {s}: {}", r.text().await.unwrap()),
    }
}

/// A WebSocket on `/ws/{room}`: the welcome, or the HTTP status that refused the upgrade.
async fn ws(s: &TestServer, room: &str, token: Option<&str>) -> Result<Client, u16> {
    let base = s.base.replacen("http://", "ws://", 1);
    let url = match token {
        Some(t) => format!("{base}/ws/{room}?token={t}"),
        None => format!("{base}/ws/{room}"),
    };
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => {
            let mut c = Client::Ws(Box::new(ws));
            chat_common::welcome(&mut c).await;
            Ok(c)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("WebSocket: {e}"),
    }
}

fn status_cell(status: u16) -> Cell {
    match status {
        401 => T,
        403 => R,
        other => panic!("unexpected WebSocket refusal {other}"),
    }
}

/// Requests one cell and says what the server did.
async fn request(
    s: &TestServer,
    action: &str,
    room: &str,
    token: Option<&str>,
    recording: &str,
    n: usize,
) -> Cell {
    let what = format!("{action} in {room}");
    match action {
        "publish" => {
            // A fresh room per cell, so an allowed publish really gets the stage.
            let room = format!("{room}-p{n}");
            let peer = RawPeer::new(RawOptions {
                send: true,
                ..Default::default()
            })
            .await;
            let r = with_token(client().post(s.url(&format!("/whip/{room}"))), token)
                .header("content-type", "application/sdp")
                .body(peer.offer.clone())
                .send()
                .await
                .unwrap();
            let location = r.headers().get("location").cloned();
            let cell = http_cell(r, &what).await;
            if let Some(location) = location {
                let url = s.url(location.to_str().unwrap());
                let r = with_token(client().delete(url), token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "the owner ends its session");
            }
            peer.pc.close().await.unwrap();
            cell
        }
        "whep" => {
            let peer = RawPeer::new(RawOptions::default()).await;
            let r = with_token(client().post(s.url(&format!("/whep/{room}"))), token)
                .header("content-type", "application/sdp")
                .body(peer.offer.clone())
                .send()
                .await
                .unwrap();
            let location = r.headers().get("location").cloned();
            let cell = http_cell(r, &what).await;
            if let Some(location) = location {
                let url = s.url(location.to_str().unwrap());
                let r = with_token(client().delete(url), token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "the owner ends its session");
            }
            peer.pc.close().await.unwrap();
            cell
        }
        "hls" => {
            let url = match token {
                Some(t) => s.url(&format!("/hls/{room}/index.m3u8?token={t}")),
                None => s.url(&format!("/hls/{room}/index.m3u8")),
            };
            let r = client().get(url).send().await.unwrap();
            http_cell(r, &what).await
        }
        "chat_read" => match ws(s, room, token).await {
            Ok(c) => {
                c.close().await;
                Y
            }
            Err(status) => status_cell(status),
        },
        "chat_write" => match ws(s, room, token).await {
            Ok(mut c) => {
                let text = format!("hello {n}");
                c.say(&text).await;
                c.expect_chat(&text).await;
                c.close().await;
                Y
            }
            Err(status) => status_cell(status),
        },
        "moderate" => match ws(s, room, token).await {
            Ok(mut c) => {
                c.command("clear", json!({})).await;
                let v = c
                    .expect("cleared or an error", |v| {
                        v["type"] == "cleared" || v["type"] == "error"
                    })
                    .await;
                c.close().await;
                match (v["type"].as_str(), token) {
                    (Some("cleared"), _) => Y,
                    (_, None) => {
                        assert_eq!(v["code"], "forbidden", "{v}");
                        T // anonymous: the chat says forbidden; a token is what is missing
                    }
                    _ => {
                        assert_eq!(v["code"], "forbidden", "{v}");
                        R
                    }
                }
            }
            Err(status) => status_cell(status),
        },
        "list_rooms" | "list_recordings" => {
            let path = match action {
                "list_rooms" => "/api/rooms",
                _ => "/api/recordings",
            };
            let r = with_token(client().get(s.url(path)), token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{what}");
            let body: Value = r.json().await.unwrap();
            let key = if action == "list_rooms" {
                "rooms"
            } else {
                "recordings"
            };
            let listed = body[key]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["room"] == room);
            match (listed, token) {
                (true, _) => Y,
                (false, None) => T,
                (false, Some(_)) => R,
            }
        }
        "room_detail" => {
            let r = with_token(client().get(s.url(&format!("/api/rooms/{room}"))), token)
                .send()
                .await
                .unwrap();
            http_cell(r, &what).await
        }
        "download_recording" => {
            let url = match token {
                Some(t) => s.url(&format!("/recordings/{recording}?token={t}")),
                None => s.url(&format!("/recordings/{recording}")),
            };
            let r = client()
                .get(url)
                .header("range", "bytes=0-63")
                .send()
                .await
                .unwrap();
            http_cell(r, &what).await
        }
        "invite" => {
            let r = with_token(
                client().post(s.url(&format!("/api/rooms/{room}/invites"))),
                token,
            )
            .json(&json!({"name": "Ann"}))
            .send()
            .await
            .unwrap();
            http_cell(r, &what).await
        }
        "admin" => {
            let r = with_token(client().get(s.url("/api/admin/rooms")), token)
                .send()
                .await
                .unwrap();
            http_cell(r, &what).await
        }
        other => panic!("no action {other}"),
    }
}

/// The live recording file of `room`, once the recorder lists it.
async fn live_recording(s: &TestServer, room: &str) -> String {
    let admin = s.server.app().keys.mint_admin("ops", "Ops", 600);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body: Value = with_token(client().get(s.url("/api/recordings")), Some(&admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(r) = body["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["room"] == room)
        {
            return r["file"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recording of {room}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_hls(s: &TestServer, room: &str) {
    let admin = s.server.app().keys.mint_admin("ops", "Ops", 600);
    let url = s.url(&format!("/hls/{room}/index.m3u8?token={admin}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while client().get(&url).send().await.unwrap().status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room} never went live on HLS"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cell_of_the_role_action_matrix() {
    let s = server().await;
    let rooms = [("pub-a", false), ("priv-a", true)];
    let mut publishers = Vec::new();
    let mut recordings = Vec::new();
    for (room, _) in rooms {
        publishers.push(publish(&s, room, &format!("host-{room}")).await);
        wait_hls(&s, room).await;
        recordings.push(live_recording(&s, room).await);
    }
    let mut n = 0;
    let mut cells = 0;
    for (i, (room, private)) in rooms.into_iter().enumerate() {
        for (action, public_row, private_row) in EXPECTED {
            let row = if private { private_row } else { public_row };
            for (who, want) in SUBJECTS.into_iter().zip(row) {
                n += 1;
                let token = match who {
                    "anonymous" => None,
                    "admin" => Some(s.server.app().keys.mint_admin("ops", "Ops", 600)),
                    role => {
                        let role: Role = role.parse().unwrap();
                        // Publishing goes to a fresh room per cell (see `request`).
                        let token_room = match action {
                            "publish" => format!("{room}-p{n}"),
                            _ => room.to_owned(),
                        };
                        Some(s.token(&token_room, role, &format!("{who}-{n}")))
                    }
                };
                let got = request(&s, action, room, token.as_deref(), &recordings[i], n).await;
                assert_eq!(got, want, "{who} / {action} / {room}");
                cells += 1;
            }
        }
    }
    println!("matrix: {cells} cells requested against the real server");
    assert_eq!(cells, 2 * 12 * 6);
    for p in publishers {
        p.close().await.unwrap();
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_and_wrong_room_tokens_are_refused_on_every_route() {
    let s = server().await;
    let p = publish(&s, "priv-x", "host").await;
    wait_hls(&s, "priv-x").await;
    let recording = live_recording(&s, "priv-x").await;
    let expired = s.server.app().keys.mint(&Claims {
        sub: "late".into(),
        name: "Late".into(),
        room: "priv-x".into(),
        role: Role::Broadcaster,
        exp: unix_now() - 3600,
    });
    let foreign = s.token("priv-other", Role::Broadcaster, "stranger");
    let forged = format!("{}x", s.token("priv-x", Role::Broadcaster, "forger"));
    for (token, status, code) in [
        (&expired, 401, "token_expired"),
        (&foreign, 403, "wrong_room"),
        (&forged, 401, "invalid_token"),
    ] {
        let peer = RawPeer::new(RawOptions::default()).await;
        for kind in ["whip", "whep"] {
            let r = with_token(
                client().post(s.url(&format!("/{kind}/priv-x"))),
                Some(token),
            )
            .header("content-type", "application/sdp")
            .body(peer.offer.clone())
            .send()
            .await
            .unwrap();
            assert_error(r, status, code).await;
        }
        peer.pc.close().await.unwrap();
        for path in [
            "/hls/priv-x/index.m3u8".to_owned(),
            "/hls/priv-x/video.m3u8".to_owned(),
            "/api/rooms/priv-x".to_owned(),
            format!("/recordings/{recording}"),
        ] {
            let r = client()
                .get(s.url(&format!("{path}?token={token}")))
                .send()
                .await
                .unwrap();
            assert_error(r, status, code).await;
        }
        let r = with_token(
            client().post(s.url("/api/rooms/priv-x/invites")),
            Some(token),
        )
        .send()
        .await
        .unwrap();
        assert_error(r, status, code).await;
        match ws(&s, "priv-x", Some(token)).await {
            Err(got) => assert_eq!(got, status),
            Ok(_) => panic!("{code}: WebSocket accepted"),
        }
        if code != "wrong_room" {
            // Room-less routes have no room to be wrong about.
            for path in ["/api/rooms", "/api/recordings", "/api/admin/rooms"] {
                let r = with_token(client().get(s.url(path)), Some(token))
                    .send()
                    .await
                    .unwrap();
                assert_error(r, status, code).await;
            }
        }
    }
    p.close().await.unwrap();
    s.stop().await;
}

/// One URI in a playlist line: a URI line or a `URI="..."` attribute.
fn uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_owned());
        }
        let mut rest = line;
        while let Some(at) = rest.find("URI=\"") {
            let tail = &rest[at + 5..];
            let end = tail.find('"').unwrap();
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_rooms_ll_hls_carries_the_token_on_every_uri() {
    let s = server().await;
    let p = publish(&s, "priv-hls", "host").await;
    wait_hls(&s, "priv-hls").await;
    let token = s.token("priv-hls", Role::Viewer, "fan");
    let base = s.url("/hls/priv-hls/");
    let index = client()
        .get(format!("{base}index.m3u8?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let index = index.text().await.unwrap();
    let media = uris(&index);
    assert!(!media.is_empty(), "{index}");
    for uri in &media {
        assert!(
            uri.ends_with(&format!("?token={token}")),
            "{uri} in {index}"
        );
    }
    let r = client()
        .get(format!("{base}index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "missing_token").await;

    // Follow the media playlist, then every kind of URI it lists.
    let playlist_url = format!("{base}{}", media[0]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let r = client().get(&playlist_url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{playlist_url}");
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .starts_with("private")
        );
        let text = r.text().await.unwrap();
        if text.contains("#EXTINF") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no segment yet: {text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let all = uris(&text);
    for uri in &all {
        assert!(uri.ends_with(&format!("?token={token}")), "{uri} in {text}");
    }
    let line_with = |tag: &str| {
        text.lines()
            .find(|l| l.starts_with(tag))
            .map(|l| uris(l)[0].clone())
    };
    let map = line_with("#EXT-X-MAP").expect("EXT-X-MAP");
    let part = line_with("#EXT-X-PART:").expect("EXT-X-PART");
    let hint = line_with("#EXT-X-PRELOAD-HINT").expect("EXT-X-PRELOAD-HINT");
    let segment = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a segment")
        .to_owned();
    for uri in [&map, &part, &segment, &hint] {
        let r = client().get(format!("{base}{uri}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{uri}");
        assert_eq!(
            r.headers()["cache-control"],
            "private, max-age=31536000, immutable",
            "{uri}"
        );
        assert!(!r.bytes().await.unwrap().is_empty());
        let bare = uri.split('?').next().unwrap();
        let r = client().get(format!("{base}{bare}")).send().await.unwrap();
        assert_error(r, 401, "missing_token").await;
    }
    // Blocking reload with the token and the _HLS_ directives together.
    let r = client()
        .get(format!("{playlist_url}&_HLS_msn=0&_HLS_part=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A public room's playlist stays shareable.
    let _public = publish(&s, "pub-hls", "host2").await;
    wait_hls(&s, "pub-hls").await;
    let r = client()
        .get(s.url("/hls/pub-hls/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-cache");
    p.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_are_managed_only_by_their_owner_or_an_admin() {
    let s = server().await;
    let p = publish(&s, "own", "owner").await;
    let url = p.resource_url().to_owned();
    let r = client().delete(&url).send().await.unwrap();
    assert_error(r, 401, "missing_token").await;
    let other = s.bearer("own", Role::Broadcaster, "someone-else");
    let r = client()
        .delete(&url)
        .header("authorization", &other)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    let r = client()
        .patch(&url)
        .header("authorization", &other)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    s.wait_room("own", WAIT, |r| r["live"] == true).await;
    let admin = s.server.app().keys.mint_admin("ops", "Ops", 60);
    let r = with_token(client().delete(&url), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an admin ends anyone's session");
    s.wait_room("own", WAIT, |r| r["live"] == false).await;
    p.drop_without_delete().await;
    // An anonymous viewer's session is managed through its URL alone.
    let v = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: "own".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = client().delete(v.resource_url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    v.drop_without_delete().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_ends_rooms_kicks_users_and_mints_tokens() {
    let s = server().await;
    let secret = std::fs::read_to_string(s.server.app().config.data_dir.join("jwt-secret"))
        .expect("the server created its secret");
    let admin = secret.trim().to_owned(); // the server secret is an admin credential too

    // Mint a broadcaster token over the API and go live with it.
    let r = with_token(client().post(s.url("/api/tokens")), Some(&admin))
        .json(&json!({"room": "show", "role": "broadcaster", "name": "Host", "ttl": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let minted: Value = r.json().await.unwrap();
    let host_token = minted["token"].as_str().unwrap().to_owned();
    assert!(minted["expires"].as_u64().unwrap() > unix_now());
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: "show".into(),
        token: Some(host_token.clone()),
        video: Some(small_video()),
        ..Default::default()
    })
    .await
    .expect("a minted token publishes");
    p.wait_connected(WAIT).await.unwrap();
    for bad in [
        json!({"room": "show"}),
        json!({"room": "a b", "role": "viewer"}),
        json!({"ttl": 0, "admin": true}),
        json!({"nope": 1}),
    ] {
        let r = with_token(client().post(s.url("/api/tokens")), Some(&admin))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }

    // The broadcaster invites a guest: the link carries a guest token for this room.
    let r = with_token(
        client().post(s.url("/api/rooms/show/invites")),
        Some(&host_token),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let invite: Value = r.json().await.unwrap();
    let guest = invite["token"].as_str().unwrap();
    assert_eq!(invite["url"], format!("/guest/show?token={guest}"));
    let claims = s.server.app().keys.verify(guest).unwrap();
    assert_eq!((claims.role, claims.room.as_str()), (Role::Guest, "show"));

    // Two viewers and a WebSocket chatter; kick one viewer.
    let viewer = |sub: &str| {
        let token = s.token("show", Role::Viewer, sub);
        Viewer::connect(ViewOptions {
            base_url: s.base.clone(),
            room: "show".into(),
            token: Some(token),
            ..Default::default()
        })
    };
    let kicked = viewer("kicked").await.unwrap();
    let stays = viewer("stays").await.unwrap();
    kicked.wait_connected(WAIT).await.unwrap();
    stays.wait_connected(WAIT).await.unwrap();
    let mut chatter = Client::ws(&s, "show", Some(s.token("show", Role::Viewer, "kicked"))).await;
    chat_common::welcome(&mut chatter).await;
    s.wait_room("show", WAIT, |r| r["viewers"] == 2).await;
    let r = with_token(
        client().delete(s.url("/api/rooms/show/participants/kicked")),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["ended_sessions"].as_u64(),
            body["ended_chats"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(chatter.expect_closed().await, Closed::Code(1008));
    s.wait_room("show", WAIT, |r| r["viewers"] == 1 && r["live"] == true)
        .await;
    let r = with_token(
        client().delete(s.url("/api/rooms/show/participants/nobody")),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    assert_error(r, 404, "not_found").await;

    // The admin listing sees the room; a viewer token may not.
    let r = with_token(client().get(s.url("/api/admin/rooms")), Some(&admin))
        .send()
        .await
        .unwrap();
    let listing: Value = r.json().await.unwrap();
    assert_eq!(listing["rooms"][0]["room"], "show", "{listing}");
    let r = with_token(client().delete(s.url("/api/rooms/show")), Some(&host_token))
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    // End the room: the publisher, the remaining viewer and the chat all go.
    let mut chat2 = Client::ws(&s, "show", None).await;
    chat_common::welcome(&mut chat2).await;
    let r = with_token(client().delete(s.url("/api/rooms/show")), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ended: Value = r.json().await.unwrap();
    assert_eq!(ended["ended_sessions"], 2, "{ended}");
    assert_eq!(chat2.expect_closed().await, Closed::Code(1008));
    s.wait_room("show", WAIT, |r| r["viewers"] == 0 && r["live"] == false)
        .await;
    let r = with_token(client().delete(s.url("/api/rooms/ghost")), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    kicked.drop_without_delete().await;
    stays.drop_without_delete().await;
    p.drop_without_delete().await;
    s.stop().await;
}
