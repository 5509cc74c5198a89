//! End-to-end media through the real server: a Rust WHIP publisher sends real H.264 (openh264,
//! moving test pattern) and Opus; Rust WHEP viewers decode what they receive.

use crate::common;

use std::time::Duration;

use common::TestServer;
use onair::auth::Role;
use onair_loadtest::media::{AudioConfig, VideoConfig};
use onair_loadtest::whep::{ViewOptions, Viewer, ViewerStats};
use onair_loadtest::whip::{PublishOptions, Publisher};

const WAIT: Duration = Duration::from_secs(20);

/// 320x240 at 30 fps; keyframes only at the start and on request, so a viewer that joins
/// later decodes only if onair asked the publisher for a keyframe (PLI).
fn video() -> VideoConfig {
    VideoConfig {
        width: 320,
        height: 240,
        fps: 30,
        bitrate_bps: 400_000,
        keyframe_interval_frames: 0,
    }
}

async fn publish(s: &TestServer, room: &str, sub: &str) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, sub)),
        video: Some(video()),
        audio: Some(AudioConfig::default()),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    p.wait_connected(WAIT)
        .await
        .expect("publisher ICE/DTLS connects");
    p
}

async fn view(s: &TestServer, room: &str) -> Viewer {
    let v = Viewer::connect(ViewOptions {
        base_url: s.base.clone(),
        room: room.into(),
        decode: true,
        ..Default::default()
    })
    .await
    .expect("viewer connects");
    v.wait_connected(WAIT)
        .await
        .expect("viewer ICE/DTLS connects");
    v
}

/// Waits until `viewer` has decoded 1.5 s of video and received 1 s of audio, then checks
/// that the stream it got is clean (see [`assert_clean`]).
async fn decodes_cleanly(viewer: &Viewer) -> ViewerStats {
    let stats = viewer
        .wait_for(
            |st| st.video.frames_decoded >= 45 && st.audio.packets >= 50,
            WAIT,
        )
        .await
        .expect("viewer decodes video and receives audio");
    assert_clean(&stats);
    stats
}

fn assert_clean(stats: &ViewerStats) {
    let v = &stats.video;
    assert_eq!(
        v.first_packet_keyframe,
        Some(true),
        "first forwarded video packet starts a keyframe: {v:?}"
    );
    assert_eq!(v.distinct_ssrcs, 1, "one SSRC per viewer track: {v:?}");
    assert_eq!(v.seq_backwards, 0, "{v:?}");
    assert_eq!(v.ts_backwards, 0, "{v:?}");
    assert_eq!(v.decode_errors, 0, "{v:?}");
    assert_eq!((v.width, v.height), (320, 240));
    let a = &stats.audio;
    assert_eq!(a.distinct_ssrcs, 1, "{a:?}");
    assert_eq!(a.seq_backwards, 0, "{a:?}");
    assert_eq!(a.ts_backwards, 0, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_decode_the_publishers_h264_and_receive_opus() {
    // Every joining viewer waits for a requested keyframe (no fast start from the history).
    let s = TestServer::start_with(|c| c.keyframe_replay_ms = 0).await;
    let publisher = publish(&s, "live", "alice").await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(view(&s, "live").await);
    }
    for v in &viewers {
        decodes_cleanly(v).await;
    }
    let room = s
        .wait_room("live", WAIT, |r| r["live"] == true && r["viewers"] == 3)
        .await;
    assert_eq!(room["publishers"], 1);
    assert_eq!(room["publisher"]["user"], "alice");
    let sent = publisher.stats();
    assert!(
        sent.plis_received >= 1,
        "joining viewers asked for a keyframe: {sent:?}"
    );
    assert!(sent.keyframes_sent >= 2, "{sent:?}");
    for v in viewers {
        v.close().await.expect("viewer DELETE");
    }
    publisher.close().await.expect("publisher DELETE");
    s.wait_room("live", WAIT, |r| r["viewers"] == 0 && r["publishers"] == 0)
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_viewer_starts_from_the_newest_keyframe_without_asking_for_one() {
    // Only viewers ask for keyframes here (no LL-HLS tap), and the publisher sends one every
    // half second by itself: whenever the viewer arrives, the newest keyframe began within
    // the 1 s replay window, and the viewer starts from it instead of requesting a new one.
    let s = TestServer::start_with(|c| {
        c.keyframe_replay_ms = 1000;
        c.hls = false;
        c.recordings = false;
    })
    .await;
    let room = "fast";
    let publisher = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, "dana")),
        video: Some(VideoConfig {
            keyframe_interval_frames: 15,
            ..video()
        }),
        audio: Some(AudioConfig::default()),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    publisher.wait_connected(WAIT).await.expect("publisher up");
    s.wait_room(room, WAIT, |r| r["video"]["packets_in"].as_u64() > Some(40))
        .await;
    let viewer = view(&s, room).await;
    decodes_cleanly(&viewer).await;
    let detail = s.wait_room(room, WAIT, |r| r["viewers"] == 1).await;
    assert_eq!(detail["video"]["fast_starts"], 1, "{detail}");
    assert_eq!(
        publisher.stats().plis_received,
        0,
        "the viewer started without a keyframe request: {:?}",
        publisher.stats()
    );
    viewer.close().await.expect("viewer DELETE");
    publisher.close().await.expect("publisher DELETE");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn viewers_keep_one_continuous_stream_when_the_broadcaster_leaves_and_returns() {
    let s = TestServer::start().await;
    // The viewer arrives first and waits for the broadcaster.
    let viewer = view(&s, "stage").await;
    let first = publish(&s, "stage", "bob").await;
    let before = viewer
        .wait_for(
            |st| st.video.frames_decoded >= 30 && st.audio.packets >= 30,
            WAIT,
        )
        .await
        .expect("media from the first session");
    first.close().await.expect("DELETE");
    s.wait_room("stage", WAIT, |r| r["publishers"] == 0 && r["viewers"] == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A new WHIP session: new SSRCs, new random sequence numbers and timestamps upstream.
    let second = publish(&s, "stage", "bob").await;
    let after = viewer
        .wait_for(
            |st| {
                st.video.frames_decoded >= before.video.frames_decoded + 30
                    && st.audio.packets >= before.audio.packets + 30
            },
            WAIT,
        )
        .await
        .expect("the same viewer session resumes with the new publisher");
    assert_clean(&after);
    assert_eq!(
        after.video.ssrc, before.video.ssrc,
        "SSRC unchanged across publishers"
    );
    assert_eq!(after.audio.ssrc, before.audio.ssrc);
    assert!(
        after.video.keyframes >= 2,
        "resumed at a keyframe: {:?}",
        after.video
    );
    second.close().await.unwrap();
    viewer.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_viewer_does_not_lower_the_frame_rate_of_others() {
    let s = TestServer::start().await;
    let publisher = publish(&s, "busy", "carol").await;
    let healthy = view(&s, "busy").await;
    let stalled = view(&s, "busy").await;
    healthy
        .wait_for(|st| st.video.frames_decoded >= 15, WAIT)
        .await
        .expect("healthy viewer decodes");
    stalled.stall();

    // Over the same window, the healthy viewer decodes (nearly) every frame that was sent.
    let sent_before = publisher.stats().frames_sent;
    let decoded_before = healthy.stats().video.frames_decoded;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = publisher.stats().frames_sent - sent_before;
    let decoded = healthy.stats().video.frames_decoded - decoded_before;
    assert!(sent >= 30, "publisher kept sending: {sent}");
    assert!(
        decoded * 10 >= sent * 9,
        "healthy viewer decoded {decoded} of {sent} frames while another viewer stalled"
    );
    let stalled_stats = stalled.stats();
    assert!(stalled_stats.stalled);
    stalled.resume();
    healthy.close().await.unwrap();
    stalled.close().await.unwrap();
    publisher.close().await.unwrap();
    s.stop().await;
}
