//! What the WHIP answer negotiates for a browser-shaped offer: the publisher's first usable
//! H.264 profile (offer order respected), Opus, and the feedback a browser needs (TWCC to ramp
//! its bitrate, NACK/PLI/FIR for loss and keyframes).

use crate::common;

use common::{TestServer, fixture};
use onair::auth::Role;

/// The media section of `kind` in an SDP.
fn section<'a>(sdp: &'a str, kind: &str) -> &'a str {
    let start = sdp
        .find(&format!("m={kind} "))
        .unwrap_or_else(|| panic!("no m={kind} in {sdp}"));
    let rest = &sdp[start..];
    let end = rest[2..].find("\nm=").map(|i| i + 3).unwrap_or(rest.len());
    &rest[..end]
}

/// Payload types of an `m=` line, in order.
fn payload_types(section: &str) -> Vec<String> {
    section
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(3)
        .map(str::to_owned)
        .collect()
}

async fn answer_to(s: &TestServer, room: &str, offer: String) -> String {
    let r = reqwest::Client::new()
        .post(s.url(&format!("/whip/{room}")))
        .header("content-type", "application/sdp")
        .header("authorization", s.bearer(room, Role::Broadcaster, "pub"))
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let answer = r.text().await.unwrap();
    let r = reqwest::Client::new()
        .delete(s.url(&location))
        .header("authorization", s.bearer(room, Role::Broadcaster, "pub"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answer_takes_the_first_h264_mode1_profile_of_the_offer_and_negotiates_feedback() {
    let s = TestServer::start().await;
    let answer = answer_to(&s, "order", fixture("offer-browser.sdp")).await;
    let video = section(&answer, "video");
    let pts = payload_types(video);
    assert_eq!(
        pts.first().map(String::as_str),
        Some("102"),
        "first mode-1 H.264 of the offer: {video}"
    );
    assert!(
        !pts.contains(&"96".to_owned()),
        "VP8 is not forwarded: {video}"
    );
    assert!(
        !pts.contains(&"104".to_owned()),
        "packetization-mode=0 is not answered: {video}"
    );
    assert!(video.contains("a=recvonly"), "{video}");
    for fb in ["transport-cc", "nack", "nack pli", "ccm fir"] {
        assert!(
            video.contains(&format!("a=rtcp-fb:102 {fb}\r\n")),
            "{fb} missing: {video}"
        );
    }
    assert!(
        video.contains("transport-wide-cc"),
        "TWCC header extension negotiated: {video}"
    );
    let audio = section(&answer, "audio");
    assert_eq!(
        payload_types(audio).first().map(String::as_str),
        Some("111"),
        "{audio}"
    );
    assert!(audio.contains("a=rtpmap:111 opus/48000/2"), "{audio}");

    // Another publisher prefers High profile: the answer follows its order.
    let answer = answer_to(&s, "order", fixture("offer-browser-high-first.sdp")).await;
    let video = section(&answer, "video");
    assert_eq!(
        payload_types(video).first().map(String::as_str),
        Some("112"),
        "{video}"
    );
    s.stop().await;
}
