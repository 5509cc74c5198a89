//! Test/load client tests: a publisher and viewers against the in-process forwarder in
//! `support`, over real loopback ICE, DTLS and SRTP.

mod support;

use std::time::Duration;

use onair_loadtest::{
    AudioConfig, ClientError, PublishOptions, Publisher, TestPattern, VideoConfig, ViewOptions,
    Viewer,
};

const WAIT: Duration = Duration::from_secs(20);

fn video() -> VideoConfig {
    VideoConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 300_000,
        keyframe_interval_frames: 0,
    }
}

fn publish_options(base: &str) -> PublishOptions {
    PublishOptions {
        base_url: base.to_owned(),
        room: "loop".to_owned(),
        token: Some(support::TOKEN.to_owned()),
        video: Some(video()),
        video_loop: None,
        audio: Some(AudioConfig::default()),
        chat: false,
        latency_probe: None,
        ..Default::default()
    }
}

fn view_options(base: &str, decode: bool) -> ViewOptions {
    ViewOptions {
        base_url: base.to_owned(),
        room: "loop".to_owned(),
        decode,
        ..ViewOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_view_decode_stall_and_close() {
    let base = support::start().await;
    let publisher = Publisher::connect(publish_options(&base))
        .await
        .expect("publish");
    assert!(publisher.resource_url().starts_with(&base));
    assert!(publisher.etag().is_some());
    publisher.wait_connected(WAIT).await.expect("connected");

    let viewer = Viewer::connect(view_options(&base, true))
        .await
        .expect("view");
    viewer.wait_connected(WAIT).await.expect("viewer connected");
    let stats = viewer
        .wait_for(
            |s| s.video.frames_decoded >= 30 && s.audio.packets >= 50,
            WAIT,
        )
        .await
        .expect("media flows and decodes");
    assert_eq!((stats.video.width, stats.video.height), (320, 180));
    assert_eq!(stats.video.first_packet_keyframe, Some(true));
    assert_eq!(stats.video.distinct_ssrcs, 1);
    assert_eq!(stats.audio.distinct_ssrcs, 1);
    assert_eq!(stats.video.seq_backwards + stats.video.ts_backwards, 0);
    assert_eq!(stats.video.decode_errors, 0);
    let fps = stats.video.decoded_fps(Duration::from_millis(900));
    assert!(fps > 15.0, "decoded fps {fps}");

    // The joining viewer made the forwarder ask for a keyframe, and the publisher sent one.
    let sent = publisher.stats();
    assert!(sent.plis_received >= 1, "{sent:?}");
    assert!(sent.keyframes_sent >= 2, "{sent:?}");
    assert!(sent.video_active && sent.audio_active && sent.connected);

    // The decoded picture is the pattern: its counter reads a frame index the publisher sent.
    let picture = viewer.last_picture().expect("a decoded picture");
    let pattern = TestPattern::new(320, 180, 30);
    let counter = pattern.read_counter(|x, y| picture.at(x, y).unwrap_or(0));
    assert!(
        u64::from(counter) <= sent.frames_sent,
        "{counter} vs {sent:?}"
    );

    // A stalled viewer consumes nothing while another keeps receiving.
    let stalled = Viewer::connect(view_options(&base, false))
        .await
        .expect("second viewer");
    stalled
        .wait_for(|s| s.video.packets > 20, WAIT)
        .await
        .expect("second viewer receives");
    stalled.stall();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = stalled.stats().video.packets;
    let before = viewer.stats().video.frames_decoded;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(stalled.stats().stalled);
    assert!(stalled.stats().video.packets <= frozen + 1);
    assert!(viewer.stats().video.frames_decoded >= before + 10);
    stalled.resume();
    stalled
        .wait_for(|s| s.video.packets > frozen + 20, WAIT)
        .await
        .expect("resumed viewer receives again");
    stalled.drop_without_delete().await;

    viewer.close().await.expect("WHEP DELETE");
    publisher.close().await.expect("WHIP DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_carry_status_and_body() {
    let base = support::start().await;
    let options = PublishOptions {
        token: None,
        ..publish_options(&base)
    };
    match Publisher::connect(options).await {
        Err(ClientError::Http { status, body }) => {
            assert_eq!(status, 401);
            assert!(body.contains("unauthorized"), "{body}");
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    // Nothing listens on port 9 of loopback: a transport error, not an HTTP one.
    let options = PublishOptions {
        base_url: "http://127.0.0.1:9".to_owned(),
        ..publish_options(&base)
    };
    assert!(matches!(
        Publisher::connect(options).await,
        Err(ClientError::Request(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looped_video_publishes_and_decodes_across_the_loop_point() {
    let base = support::start().await;
    let frames = onair_loadtest::VideoLoop::encode(
        VideoConfig {
            keyframe_interval_frames: 30,
            ..video()
        },
        60,
    )
    .expect("loop");
    let publisher = Publisher::connect(PublishOptions {
        video_loop: Some(frames),
        audio: None,
        ..publish_options(&base)
    })
    .await
    .expect("publish");
    let viewer = Viewer::connect(view_options(&base, true))
        .await
        .expect("view");
    let stats = viewer
        .wait_for(|s| s.video.frames_decoded >= 40, WAIT)
        .await
        .expect("looped video decodes across the loop point");
    assert_eq!(stats.video.decode_errors, 0);
    assert!(!stats.audio.present || stats.audio.packets == 0);
    publisher.close().await.expect("WHIP DELETE");
    viewer.close().await.expect("WHEP DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_channel_opens_and_carries_text_both_ways() {
    let base = support::start().await;
    let publisher = Publisher::connect(PublishOptions {
        video: None,
        chat: true,
        ..publish_options(&base)
    })
    .await
    .expect("publish");
    let chat = publisher.chat().expect("chat requested");
    chat.wait_open(WAIT).await.expect("chat open");
    assert_eq!(chat.state(), onair_loadtest::ChatState::Open);
    chat.send_json(&serde_json::json!({"type": "chat", "text": "hi"}))
        .await
        .expect("send");
    let echoed = chat.recv(WAIT).await.expect("reply").expect("open");
    let json = echoed.strip_prefix("echo:").expect("echo prefix");
    let value: serde_json::Value = serde_json::from_str(json).expect("json");
    assert_eq!(value, serde_json::json!({"type": "chat", "text": "hi"}));
    assert!(matches!(
        chat.recv(Duration::from_millis(100)).await,
        Err(ClientError::Timeout(_))
    ));
    publisher.close().await.expect("WHIP DELETE");
}
