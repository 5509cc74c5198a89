//! Recording helpers of the integration tests: the finished recordings of a room, and what
//! ffprobe and ffmpeg make of a file (decoded frame sizes, a clean decode).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{WAIT, get};
use crate::common::TestServer;

/// The recordings of `room` once one is complete and none is being written.
pub async fn finished_recordings(s: &TestServer, room: &str) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list: serde_json::Value = get(&s.url("/api/recordings")).await.json().await.unwrap();
        let mine: Vec<serde_json::Value> = list["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["room"] == room)
            .cloned()
            .collect();
        if !mine.is_empty() && mine.iter().all(|r| r["state"] == "complete") {
            return mine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording of {room} finalised in time: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn ffprobe_json(path: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// Every distinct (width, height) of the decoded video frames, in order of appearance.
pub fn decoded_sizes(path: &Path) -> Vec<(u64, u64)> {
    let json = ffprobe_json(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_frames",
            "-show_entries",
            "frame=width,height",
        ],
    );
    let mut sizes = Vec::new();
    for f in json["frames"].as_array().unwrap() {
        let size = (f["width"].as_u64().unwrap(), f["height"].as_u64().unwrap());
        if sizes.last() != Some(&size) {
            sizes.push(size);
        }
    }
    sizes
}

/// ffmpeg decodes the whole file, stopping on the first error. Decoded frames keep the
/// file's own time base (`-enc_time_base -1`): by default ffmpeg rounds them to ticks of the
/// average frame rate, and at 29.87 fps two frames 1/30 s apart can land on one tick and be
/// reported as non-monotonic although the file's timestamps are not.
pub fn assert_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decodes {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one recording of `room` (asserted), downloaded into `dir` as `recording.mp4`, and
/// what ffprobe makes of it: H.264 video and Opus audio.
pub async fn the_one_recording(
    s: &TestServer,
    room: &str,
    dir: &Path,
) -> (std::path::PathBuf, super::Probe) {
    let recordings = finished_recordings(s, room).await;
    assert_eq!(recordings.len(), 1, "one recording: {recordings:?}");
    let body = super::bytes(&s.url(recordings[0]["url"].as_str().unwrap())).await;
    let path = super::write_file(dir, "recording.mp4", &[&body]);
    let probe = super::ffprobe(&path);
    assert_eq!(probe.codecs, ["h264", "opus"], "{}", probe.stderr);
    (path, probe)
}
