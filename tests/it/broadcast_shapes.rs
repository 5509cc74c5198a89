//! LL-HLS and recordings of broadcasts that are not one steady A/V stream, through the real
//! server with real openh264 H.264 + Opus: a publisher raising its resolution mid-broadcast
//! (one recording that decodes at both sizes; LL-HLS with a discontinuity and a new init), an
//! audio-only broadcast (an Opus-only stream and recording), and audio reaching the server
//! late against its timestamps, put back in place by the RTCP sender reports.

use crate::common;
use crate::hls_common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use hls_common::*;
use onair::auth::Role;
use onair_loadtest::media::{AudioConfig, VideoConfig};
use onair_loadtest::whip::{PublishOptions, Publisher};

fn url(s: &TestServer, room: &str, rest: &str) -> String {
    s.url(&format!("/hls/{room}/{rest}"))
}

async fn connect(s: &TestServer, room: &str, options: PublishOptions) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, "shaper")),
        ..options
    })
    .await
    .expect("publisher connects");
    p.wait_connected(WAIT).await.expect("publisher connects");
    p
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// End of the last packet (pts + duration, seconds) of each stream, by codec name.
fn stream_ends(path: &Path) -> Vec<(String, f64)> {
    let json = ffprobe_json(
        path,
        &[
            "-show_packets",
            "-show_entries",
            "stream=codec_name:packet=stream_index,pts_time,duration_time",
        ],
    );
    let streams = json["streams"].as_array().unwrap();
    let mut ends = vec![f64::NEG_INFINITY; streams.len()];
    for p in json["packets"].as_array().unwrap() {
        let i = p["stream_index"].as_u64().unwrap() as usize;
        let num = |k: &str| p[k].as_str().and_then(|v| v.parse::<f64>().ok());
        if let (Some(pts), Some(d)) = (num("pts_time"), num("duration_time")) {
            ends[i] = ends[i].max(pts + d);
        }
    }
    streams
        .iter()
        .zip(ends)
        .map(|(s, e)| (s["codec_name"].as_str().unwrap().to_owned(), e))
        .collect()
}

fn small_video(width: u32, height: u32) -> VideoConfig {
    VideoConfig {
        width,
        height,
        ..video()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resolution_change_keeps_one_recording_and_hls_plays_on() {
    let s = TestServer::start().await;
    let room = "grow";
    let publisher = connect(
        &s,
        room,
        PublishOptions {
            video: Some(small_video(320, 240)),
            video_change: Some((75, small_video(640, 480))),
            audio: Some(AudioConfig::default()),
            ..Default::default()
        },
    )
    .await;
    // LL-HLS: a discontinuity with a new EXT-X-MAP, and a complete segment after it.
    let video = wait_playlist(&url(&s, room, "video.m3u8"), |pl| {
        pl.complete().any(|seg| seg.discontinuity)
    })
    .await;
    let changed = video.complete().find(|seg| seg.discontinuity).unwrap();
    let before = video
        .segments
        .iter()
        .take_while(|seg| seg.msn < changed.msn)
        .last()
        .expect("a segment before the change");
    assert_ne!(before.map, changed.map, "new init after the discontinuity");
    let dir = scratch_dir("grow");
    let init = bytes(&url(&s, room, &changed.map)).await;
    let old_init = bytes(&url(&s, room, &before.map)).await;
    let segment = bytes(&url(&s, room, changed.uri.as_ref().unwrap())).await;
    let path = write_file(&dir, "after.mp4", &[&init, &segment]);
    let probe = ffprobe(&path);
    probe.assert_keyframe_first(0, "segment after the change");
    probe.assert_monotonic("segment after the change");
    assert_eq!(decoded_sizes(&path), [(640, 480)]);
    assert_decodes(&path);
    for (i, part) in changed.parts.iter().enumerate() {
        let body = bytes(&url(&s, room, &part.uri)).await;
        let path = write_file(&dir, &format!("part{i}.mp4"), &[&init, &body]);
        ffprobe(&path).assert_monotonic("part after the change");
        assert_decodes(&path);
    }
    let old = bytes(&url(&s, room, before.uri.as_ref().unwrap())).await;
    assert_eq!(
        decoded_sizes(&write_file(&dir, "before.mp4", &[&old_init, &old])),
        [(320, 240)]
    );
    wait_until("5 s of video after the change", || {
        publisher.stats().frames_sent >= 75 + 150
    })
    .await;
    let frames = publisher.stats().frames_sent;
    publisher.close().await.unwrap();

    // One broadcast, one recording, at both sizes, with the broadcast's duration.
    let (path, probe) = the_one_recording(&s, room, &dir).await;
    let expected = frames as f64 / 30.0;
    let duration = probe.duration.unwrap();
    println!("resolution change: recording {duration:.3} s, sent {expected:.3} s");
    assert!(
        (duration - expected).abs() <= 0.5,
        "ffprobe {duration} s, sent {expected} s"
    );
    probe.assert_monotonic("recording");
    probe.assert_keyframe_first(0, "recording");
    assert_eq!(decoded_sizes(&path), [(320, 240), (640, 480)]);
    assert_decodes(&path);
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audio_only_broadcast_has_opus_hls_and_an_opus_recording() {
    let s = TestServer::start().await;
    let room = "radio";
    let publisher = connect(
        &s,
        room,
        PublishOptions {
            video: None,
            audio: Some(AudioConfig::default()),
            ..Default::default()
        },
    )
    .await;
    let audio = wait_playlist(&url(&s, room, "audio.m3u8"), |pl| {
        pl.complete().count() >= 2
    })
    .await;
    let index = text(&url(&s, room, "index.m3u8")).await;
    assert!(index.contains("CODECS=\"opus\""), "{index}");
    assert!(
        !index.contains("avc1") && !index.contains("RESOLUTION"),
        "{index}"
    );
    assert!(index.contains("audio.m3u8"), "{index}");
    common::assert_error(get(&url(&s, room, "video.m3u8")).await, 404, "not_found").await;
    // Parts cut on time, ~200 ms, within [0.85, 1] x PART-TARGET but for a segment's last.
    assert_eq!(audio.target_duration, 2);
    assert!(audio.part_target > 0.15 && audio.part_target <= 0.25);
    let dir = scratch_dir("radio");
    for seg in audio.complete() {
        assert!(seg.duration <= audio.target_duration as f64 + 0.5);
        assert!(
            seg.duration >= 1.0,
            "segments cut on time: {}",
            seg.duration
        );
        let last = seg.parts.len() - 1;
        for (i, part) in seg.parts.iter().enumerate() {
            assert!(part.duration <= audio.part_target + 1e-6, "{part:?}");
            if i < last {
                assert!(part.duration >= 0.85 * audio.part_target - 1e-6, "{part:?}");
            }
        }
        let init = bytes(&url(&s, room, &seg.map)).await;
        let media = bytes(&url(&s, room, seg.uri.as_ref().unwrap())).await;
        let probe = ffprobe(&write_file(&dir, "seg.mp4", &[&init, &media]));
        assert_eq!(probe.codecs, ["opus"]);
        probe.assert_monotonic("audio segment");
        let part = bytes(&url(&s, room, &seg.parts[0].uri)).await;
        let probe = ffprobe(&write_file(&dir, "part.mp4", &[&init, &part]));
        assert_eq!(probe.codecs, ["opus"]);
        probe.assert_monotonic("audio part");
    }
    wait_until("5 s of audio", || {
        publisher.stats().audio_packets_sent >= 250
    })
    .await;
    let packets = publisher.stats().audio_packets_sent;
    publisher.close().await.unwrap();

    let recordings = finished_recordings(&s, room).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let body = bytes(&s.url(recordings[0]["url"].as_str().unwrap())).await;
    assert!(
        body.windows(4).any(|w| w == b"elst"),
        "edit list for pre-skip"
    );
    let path = write_file(&dir, "radio.mp4", &[&body]);
    let probe = ffprobe(&path);
    assert_eq!(probe.codecs, ["opus"], "{}", probe.stderr);
    let expected = packets as f64 * 0.020;
    let duration = probe.duration.unwrap();
    println!("audio only: recording {duration:.3} s, sent {expected:.3} s");
    assert!(
        (duration - expected).abs() <= 0.5,
        "ffprobe {duration} s, sent {expected} s"
    );
    probe.assert_monotonic("audio-only recording");
    assert_decodes(&path);
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sender_reports_put_late_audio_back_in_sync() {
    let s = TestServer::start().await;
    let room = "lipsync";
    // The first 700 ms of audio reach the server in one late burst: by arrival time, audio
    // would sit 700 ms after the video captured with it for the whole broadcast.
    let hold = 0.7;
    let publisher = connect(
        &s,
        room,
        PublishOptions {
            video: Some(video()),
            audio: Some(AudioConfig::default()),
            audio_hold: Some(Duration::from_secs_f64(hold)),
            ..Default::default()
        },
    )
    .await;
    wait_until("6 s of media", || publisher.stats().frames_sent >= 180).await;
    publisher.close().await.unwrap();
    let recordings = finished_recordings(&s, room).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let body = bytes(&s.url(recordings[0]["url"].as_str().unwrap())).await;
    let dir = scratch_dir("lipsync");
    let path = write_file(&dir, "lipsync.mp4", &[&body]);
    // Both tracks stopped at the same instant of capture: in sync, they end together.
    let ends = stream_ends(&path);
    assert_eq!(ends[0].0, "h264");
    assert_eq!(ends[1].0, "opus");
    let offset = ends[1].1 - ends[0].1;
    println!(
        "A/V offset at the end of the recording: {:.1} ms",
        offset * 1000.0
    );
    assert!(
        offset.abs() < 0.08,
        "audio ends {offset:.3} s after video (arrival-time alignment would give ~{hold} s)"
    );
    assert_decodes(&path);
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}
