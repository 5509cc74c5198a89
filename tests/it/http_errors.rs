//! Every WHIP/WHEP/API refusal a client can hit before any media flows: the status code and the
//! JSON error shape, against the real server.

use crate::common;

use common::{TestServer, assert_error, fixture};
use onair::auth::{Claims, Role, unix_now};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_sdp(
    url: &str,
    auth: Option<&str>,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    let mut req = client()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn whip_refuses_missing_invalid_and_expired_tokens_with_401() {
    let s = TestServer::start().await;
    let url = s.url("/whip/demo");
    let offer = fixture("offer-vp8-only.sdp");

    let r = post_sdp(&url, None, "application/sdp", offer.clone()).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(r, 401, "missing_token").await;

    let r = post_sdp(
        &url,
        Some("Bearer not-a-jwt"),
        "application/sdp",
        offer.clone(),
    )
    .await;
    assert_error(r, 401, "invalid_token").await;

    let r = post_sdp(
        &url,
        Some("Basic dXNlcjpwYXNz"),
        "application/sdp",
        offer.clone(),
    )
    .await;
    assert_error(r, 401, "invalid_token").await;

    let expired = s.server.app().keys.mint(&Claims {
        sub: "b".into(),
        name: "B".into(),
        room: "demo".into(),
        role: Role::Broadcaster,
        exp: unix_now() - 3600,
    });
    let r = post_sdp(
        &url,
        Some(&format!("Bearer {expired}")),
        "application/sdp",
        offer.clone(),
    )
    .await;
    assert_error(r, 401, "token_expired").await;

    let foreign = onair::auth::TokenKeys::new(b"some-other-server-secret-123456").mint_for(
        "demo",
        Role::Broadcaster,
        "b",
        "B",
        60,
    );
    let r = post_sdp(
        &url,
        Some(&format!("Bearer {foreign}")),
        "application/sdp",
        offer,
    )
    .await;
    assert_error(r, 401, "invalid_token").await;
    s.stop().await;
}

#[tokio::test]
async fn whip_refuses_viewer_moderator_and_other_room_tokens_with_403() {
    let s = TestServer::start().await;
    let url = s.url("/whip/demo");
    let offer = fixture("offer-vp8-only.sdp");
    for role in [Role::Viewer, Role::Moderator] {
        let r = post_sdp(
            &url,
            Some(&s.bearer("demo", role, "u")),
            "application/sdp",
            offer.clone(),
        )
        .await;
        let message = assert_error(r, 403, "forbidden").await;
        assert!(message.contains(role.as_str()), "{message}");
    }
    let r = post_sdp(
        &url,
        Some(&s.bearer("other", Role::Broadcaster, "u")),
        "application/sdp",
        offer,
    )
    .await;
    assert_error(r, 403, "wrong_room").await;
    s.stop().await;
}

#[tokio::test]
async fn whip_and_whep_check_content_type_syntax_and_codecs() {
    let s = TestServer::start().await;
    let auth = s.bearer("demo", Role::Broadcaster, "b");
    for (path, auth) in [("/whip/demo", Some(auth.as_str())), ("/whep/demo", None)] {
        let url = s.url(path);
        let r = post_sdp(&url, auth, "text/plain", fixture("offer-vp8-only.sdp")).await;
        assert_error(r, 415, "unsupported_media_type").await;

        let r = post_sdp(&url, auth, "application/sdp", "hello, I am not SDP".into()).await;
        assert_error(r, 400, "bad_sdp").await;

        let r = post_sdp(&url, auth, "application/sdp", String::new()).await;
        assert_error(r, 400, "bad_sdp").await;

        let r = post_sdp(&url, auth, "application/sdp", fixture("offer-vp8-only.sdp")).await;
        let message = assert_error(r, 406, "unsupported_codec").await;
        assert!(
            message.contains("H.264") && message.contains("Opus"),
            "{message}"
        );

        let r = post_sdp(
            &url,
            auth,
            "application/sdp",
            fixture("offer-h264-mode0-only.sdp"),
        )
        .await;
        assert_error(r, 406, "unsupported_codec").await;

        let r = post_sdp(&url, auth, "application/sdp", "v=0\r\n".repeat(20_000)).await;
        assert_error(r, 413, "too_large").await;
    }
    // A refused offer leaves no session and no publisher behind.
    let health: serde_json::Value = reqwest::get(s.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["publishers"], 0);
    assert_eq!(health["viewers"], 0);
    s.stop().await;
}

#[tokio::test]
async fn bad_room_names_unknown_sessions_and_routes() {
    let s = TestServer::start().await;
    let r = post_sdp(
        &s.url("/whep/bad%20room"),
        None,
        "application/sdp",
        fixture("offer-vp8-only.sdp"),
    )
    .await;
    assert_error(r, 400, "bad_room").await;

    for kind in ["whip", "whep"] {
        let url = s.url(&format!("/{kind}/demo/0123456789abcdef"));
        let r = client().delete(&url).send().await.unwrap();
        assert_error(r, 404, "not_found").await;
        let r = client()
            .patch(&url)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body("a=ice-ufrag:x\r\n")
            .send()
            .await
            .unwrap();
        assert_error(r, 404, "not_found").await;
        let r = client()
            .patch(&url)
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        assert_error(r, 415, "unsupported_media_type").await;
    }
    let r = reqwest::get(s.url("/api/rooms/nobody-here")).await.unwrap();
    assert_error(r, 404, "not_found").await;
    let r = reqwest::get(s.url("/no/such/route")).await.unwrap();
    assert_error(r, 404, "not_found").await;
    s.stop().await;
}

#[tokio::test]
async fn options_and_cors_let_other_origins_publish_and_play() {
    let s = TestServer::start().await;
    for path in ["/whip/demo", "/whep/demo", "/whip/demo/abc"] {
        // A browser preflight from another origin.
        let r = client()
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", "https://studio.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert_eq!(h["accept-post"], "application/sdp");
        // A plain OPTIONS (RFC 9725 §4.2) also says what POST accepts.
        let r = client()
            .request(reqwest::Method::OPTIONS, s.url(path))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        assert_eq!(r.headers()["accept-post"], "application/sdp");
        // The same OPTIONS from a page on another origin (after its preflight): the page may
        // read what it asked for, `Accept-Post` and the ICE servers' `Link`s.
        let r = client()
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", "https://studio.example")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let exposed = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_owned();
        for h in ["link", "accept-post"] {
            assert!(exposed.contains(h), "{path}: {exposed}");
        }
    }
    // Responses expose the WHIP headers to scripts on other origins.
    let r = client()
        .post(s.url("/whep/demo"))
        .header("origin", "https://player.example")
        .header("content-type", "application/sdp")
        .body(fixture("offer-vp8-only.sdp"))
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for h in ["location", "etag", "link"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    s.stop().await;
}

#[tokio::test]
async fn health_and_empty_room_list() {
    let s = TestServer::start().await;
    let r = reqwest::get(s.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let rooms: serde_json::Value = reqwest::get(s.url("/api/rooms"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rooms["rooms"], serde_json::json!([]));
    s.stop().await;
}

#[tokio::test]
async fn whep_checks_a_token_when_one_is_sent() {
    let s = TestServer::start().await;
    let url = s.url("/whep/demo");
    let offer = fixture("offer-vp8-only.sdp");
    let r = post_sdp(
        &url,
        Some("Bearer not-a-jwt"),
        "application/sdp",
        offer.clone(),
    )
    .await;
    assert_error(r, 401, "invalid_token").await;
    let other = s.bearer("elsewhere", Role::Viewer, "v");
    let r = post_sdp(&url, Some(&other), "application/sdp", offer.clone()).await;
    assert_error(r, 403, "wrong_room").await;
    // A valid viewer token for the room passes auth (and then meets the codec check).
    let mine = s.bearer("demo", Role::Viewer, "v");
    let r = post_sdp(&url, Some(&mine), "application/sdp", offer).await;
    assert_error(r, 406, "unsupported_codec").await;
    s.stop().await;
}
