//! Recordings through the real server: a broadcast of real H.264 + Opus becomes a progressive
//! faststart MP4 that ffprobe reads with the expected duration; the fragmented file as written
//! before finalisation (what a `kill -9` leaves) is readable too, even cut mid-fragment;
//! recording can be switched off; a write error stops the recording, not the live stream.

use crate::common;
use crate::hls_common;

use std::time::Duration;

use common::TestServer;
use hls_common::*;

async fn recordings(s: &TestServer) -> serde_json::Value {
    get(&s.url("/api/recordings")).await.json().await.unwrap()
}

/// Polls the list until one recording satisfies `pred`.
async fn wait_recording(
    s: &TestServer,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = serde_json::Value::Null;
    while tokio::time::Instant::now() < deadline {
        last = recordings(s).await;
        if let Some(r) = last["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| pred(r))
        {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no such recording; last list: {last}");
}

async fn wait_frames(publisher: &onair_loadtest::whip::Publisher, frames: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while publisher.stats().frames_sent < frames {
        assert!(tokio::time::Instant::now() < deadline, "publisher stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_becomes_a_faststart_mp4_with_the_right_duration() {
    let s = TestServer::start().await;
    let publisher = publish(&s, "rec", "alice", true).await;
    wait_frames(&publisher, 5 * 30).await;
    let frames = publisher.stats().frames_sent;
    publisher.close().await.unwrap();
    let expected = frames as f64 / 30.0;

    let rec = wait_recording(&s, |r| r["state"] == "complete").await;
    assert_eq!(rec["room"], "rec");
    let file = rec["file"].as_str().unwrap();
    assert!(file.starts_with("rec-") && file.ends_with(".mp4") && !file.ends_with(".live.mp4"));
    let listed = rec["duration"].as_f64().unwrap();
    assert!(
        (listed - expected).abs() <= 0.5,
        "listed {listed} s, sent {expected} s"
    );
    assert!(rec["start"].as_str().unwrap().ends_with('Z'));

    let body = bytes(&s.url(rec["url"].as_str().unwrap())).await;
    assert_eq!(body.len() as u64, rec["size"].as_u64().unwrap());
    // Faststart: moov before mdat.
    let find = |tag: &[u8]| body.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") < find(b"mdat"));
    assert!(
        !body.windows(4).any(|w| w == b"moof"),
        "progressive, not fragmented"
    );
    let dir = scratch_dir("rec");
    let path = write_file(&dir, "rec.mp4", &[&body]);
    let probe = ffprobe(&path);
    assert_eq!(probe.codecs, ["h264", "opus"], "{}", probe.stderr);
    let duration = probe.duration.unwrap();
    assert!(
        (duration - expected).abs() <= 0.5,
        "ffprobe {duration} s, sent {expected} s"
    );
    probe.assert_monotonic("recording");
    probe.assert_keyframe_first(0, "recording");
    // Decodes from end to end.
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg decodes the recording");

    // Range requests (players seek with them).
    let client = reqwest::Client::new();
    let r = client
        .get(s.url(rec["url"].as_str().unwrap()))
        .header("range", "bytes=4-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(&r.bytes().await.unwrap()[..], b"ftyp");
    // Only recordings are served.
    common::assert_error(
        get(&s.url("/recordings/..%2Fsecret.mp4")).await,
        404,
        "not_found",
    )
    .await;
    // The same recording as a VOD HLS playlist: init + every segment pass ffprobe, and ffprobe
    // reads the whole playlist with the same duration.
    let playlist_url = s.url(rec["playlist"].as_str().unwrap());
    let playlist = text(&playlist_url).await;
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.ends_with("#EXT-X-ENDLIST\n")
    );
    let base = playlist_url.trim_end_matches("index.m3u8").to_owned();
    let init = bytes(&format!("{base}init.mp4")).await;
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert!(segments.len() >= 2, "{playlist}");
    for seg in &segments {
        let media = bytes(&format!("{base}{seg}")).await;
        let probe = ffprobe(&write_file(&dir, "vod.mp4", &[&init, &media]));
        assert_eq!(probe.codecs, ["h264", "opus"], "{seg}");
        probe.assert_keyframe_first(0, seg);
        probe.assert_monotonic(seg);
    }
    let vod = ffprobe(std::path::Path::new(&playlist_url));
    assert_eq!(vod.codecs.len(), 2, "{}", vod.stderr);
    let vod_duration = vod.duration.unwrap();
    assert!(
        (vod_duration - expected).abs() <= 0.5,
        "VOD {vod_duration} s, sent {expected} s"
    );
    let list = recordings(&s).await;
    assert_eq!(
        list["recordings"].as_array().unwrap().len(),
        1,
        "the fragmented file is gone: {list}"
    );
    assert_eq!(list["write_errors"], 0);
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_file_a_crash_leaves_is_readable() {
    let s = TestServer::start().await;
    let publisher = publish(&s, "crash", "bob", true).await;
    let rec = wait_recording(&s, |r| {
        r["state"] == "recording" && r["duration"].as_f64().unwrap_or(0.0) >= 3.0
    })
    .await;
    // The bytes on disk now are what a kill -9 leaves behind.
    let live = bytes(&s.url(rec["url"].as_str().unwrap())).await;
    let dir = scratch_dir("crash");
    for (name, cut) in [("whole.mp4", 0), ("cut.mp4", 777)] {
        let path = write_file(&dir, name, &[&live[..live.len() - cut]]);
        let probe = ffprobe(&path);
        assert_eq!(probe.codecs, ["h264", "opus"], "{name}: {}", probe.stderr);
        assert!(
            probe.duration.unwrap() >= 2.5,
            "{name}: {:?}",
            probe.duration
        );
        probe.assert_monotonic(name);
        probe.assert_keyframe_first(0, name);
    }
    // What the server does with such a file at its next start: finalise it.
    let stem = "crash-20250101-000000";
    write_file(
        &dir,
        &format!("{stem}.live.mp4"),
        &[&live[..live.len() - 777]],
    );
    assert_eq!(onair::egress::recorder::recover(&dir), 1);
    let probe = ffprobe(&dir.join(format!("{stem}.mp4")));
    assert_eq!(probe.codecs, ["h264", "opus"]);
    assert!(probe.duration.unwrap() >= 2.5);
    assert!(!dir.join(format!("{stem}.live.mp4")).exists());
    publisher.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recording_can_be_switched_off() {
    let s = TestServer::start_with(|c| c.recordings = false).await;
    let publisher = publish(&s, "off", "carol", true).await;
    // The live stream runs all the same.
    wait_playlist(&s.url("/hls/off/video.m3u8"), |pl| {
        pl.complete().count() >= 1
    })
    .await;
    publisher.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = recordings(&s).await;
    assert_eq!(list["enabled"], false);
    assert!(list["recordings"].as_array().unwrap().is_empty(), "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_error_stops_the_recording_but_not_the_live_stream() {
    let dir = scratch_dir("unwritable");
    // The recordings directory cannot be created: a file is in its way.
    std::fs::write(dir.join("recordings"), b"not a directory").unwrap();
    let data = dir.clone();
    let s = TestServer::start_with(move |c| c.data_dir = data).await;
    let publisher = publish(&s, "full", "dave", true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while recordings(&s).await["write_errors"] == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write error is reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The LL-HLS stream keeps growing.
    let first = wait_playlist(&s.url("/hls/full/video.m3u8"), |pl| {
        pl.complete().count() >= 1
    })
    .await;
    let last = first.complete().last().unwrap().msn;
    wait_playlist(&s.url("/hls/full/video.m3u8"), |pl| {
        pl.complete().last().is_some_and(|seg| seg.msn >= last + 2)
    })
    .await;
    assert!(publisher.stats().connected);
    publisher.close().await.unwrap();
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
