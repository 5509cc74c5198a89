//! Helpers of the LL-HLS and recording integration tests: a small playlist reader, ffprobe,
//! and a publisher of real openh264 H.264 + Opus.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use onair::auth::Role;
use onair_loadtest::media::{AudioConfig, VideoConfig};
use onair_loadtest::whip::{PublishOptions, Publisher};

use crate::common::TestServer;

mod recordings;
pub use recordings::*;

pub const WAIT: Duration = Duration::from_secs(30);

/// 320x240 at 30 fps; IDRs only at the start and when onair asks (so segments prove that the
/// tap asks for keyframes).
pub fn video() -> VideoConfig {
    VideoConfig {
        width: 320,
        height: 240,
        fps: 30,
        bitrate_bps: 300_000,
        keyframe_interval_frames: 0,
    }
}

pub async fn publish(s: &TestServer, room: &str, sub: &str, audio: bool) -> Publisher {
    let p = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, sub)),
        video: Some(video()),
        audio: audio.then(AudioConfig::default),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    p.wait_connected(WAIT)
        .await
        .expect("publisher ICE/DTLS connects");
    p
}

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

/// One segment (complete when `uri` is set).
#[derive(Debug, Clone, Default)]
pub struct Segment {
    pub msn: u64,
    pub uri: Option<String>,
    pub duration: f64,
    pub parts: Vec<Part>,
    pub discontinuity: bool,
    pub program_date_time: Option<String>,
    pub map: String,
}

/// A media playlist as a player reads it.
#[derive(Debug, Clone, Default)]
pub struct MediaPlaylist {
    pub text: String,
    pub version: Option<u32>,
    pub target_duration: u64,
    pub part_target: f64,
    pub server_control: String,
    pub media_sequence: u64,
    pub skipped: u64,
    pub segments: Vec<Segment>,
    pub preload_hints: Vec<String>,
    pub rendition_reports: Vec<String>,
    pub ended: bool,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    rest.split(',').next()
}

impl MediaPlaylist {
    pub fn parse(text: &str) -> Self {
        let mut pl = MediaPlaylist {
            text: text.to_owned(),
            ..Default::default()
        };
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        let mut current = Segment::default();
        let mut map = String::new();
        let mut extinf = None;
        let mut msn = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
                pl.version = v.parse().ok();
            } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                pl.target_duration = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                pl.part_target = attr(v, "PART-TARGET").unwrap().parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                pl.server_control = v.to_owned();
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                pl.media_sequence = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
                pl.skipped = attr(v, "SKIPPED-SEGMENTS").unwrap().parse().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                map = attr(v, "URI").unwrap().to_owned();
            } else if line == "#EXT-X-DISCONTINUITY" {
                current.discontinuity = true;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                current.program_date_time = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                current.parts.push(Part {
                    uri: attr(v, "URI").unwrap().to_owned(),
                    duration: attr(v, "DURATION").unwrap().parse().unwrap(),
                    independent: attr(v, "INDEPENDENT") == Some("YES"),
                });
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                extinf = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                pl.preload_hints.push(attr(v, "URI").unwrap().to_owned());
            } else if let Some(v) = line.strip_prefix("#EXT-X-RENDITION-REPORT:") {
                pl.rendition_reports.push(v.to_owned());
            } else if line == "#EXT-X-ENDLIST" {
                pl.ended = true;
            } else if !line.starts_with('#') && !line.is_empty() {
                let n = *msn.get_or_insert(pl.media_sequence + pl.skipped);
                current.msn = n;
                current.uri = Some(line.to_owned());
                current.duration = extinf.take().expect("EXTINF before URI");
                current.map = map.clone();
                pl.segments.push(std::mem::take(&mut current));
                msn = Some(n + 1);
            }
        }
        if !current.parts.is_empty() {
            current.msn = msn.unwrap_or(pl.media_sequence + pl.skipped);
            current.map = map;
            pl.segments.push(current);
        }
        pl
    }

    pub fn complete(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.uri.is_some())
    }

    /// `(msn, index)` of the last part listed.
    pub fn last_part(&self) -> Option<(u64, usize)> {
        self.segments
            .iter()
            .rev()
            .find(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() - 1))
    }
}

pub async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub async fn text(url: &str) -> String {
    let r = get(url).await;
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().await.unwrap()
}

pub async fn bytes(url: &str) -> Vec<u8> {
    let r = get(url).await;
    assert_eq!(r.status(), 200, "GET {url}");
    r.bytes().await.unwrap().to_vec()
}

/// Polls `url` until the playlist satisfies `pred`.
pub async fn wait_playlist(url: &str, pred: impl Fn(&MediaPlaylist) -> bool) -> MediaPlaylist {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == 200
        {
            last = r.text().await.unwrap_or_default();
            let pl = MediaPlaylist::parse(&last);
            if pred(&pl) {
                return pl;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never reached the expected state; last:\n{last}");
}

/// What ffprobe says of a file: its streams and, per stream, its packets.
#[derive(Debug)]
pub struct Probe {
    pub codecs: Vec<String>,
    pub duration: Option<f64>,
    /// Per stream index: (dts seconds, keyframe) of each packet.
    pub packets: Vec<Vec<(f64, bool)>>,
    pub stderr: String,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration:packet=stream_index,dts_time,flags",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs ffmpeg)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffprobe {}: {stderr}", path.display());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let codecs: Vec<String> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("?").to_owned())
        .collect();
    let mut packets = vec![Vec::new(); codecs.len()];
    for p in json["packets"].as_array().into_iter().flatten() {
        let index = p["stream_index"].as_u64().unwrap() as usize;
        let dts: f64 = p["dts_time"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(f64::NAN);
        let key = p["flags"].as_str().unwrap_or("").contains('K');
        packets[index].push((dts, key));
    }
    Probe {
        codecs,
        duration: json["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok()),
        packets,
        stderr,
    }
}

impl Probe {
    /// DTS increases strictly within every stream.
    pub fn assert_monotonic(&self, what: &str) {
        for (i, packets) in self.packets.iter().enumerate() {
            assert!(!packets.is_empty(), "{what}: stream {i} has packets");
            for w in packets.windows(2) {
                assert!(
                    w[1].0 > w[0].0,
                    "{what}: stream {i} DTS {} then {}",
                    w[0].0,
                    w[1].0
                );
            }
        }
    }

    /// The first packet of stream `i` is a keyframe.
    pub fn assert_keyframe_first(&self, i: usize, what: &str) {
        assert!(
            self.packets[i][0].1,
            "{what}: first packet of stream {i} is a keyframe"
        );
    }
}

/// Writes `parts` one after the other into `dir/name`.
pub fn write_file(dir: &Path, name: &str, parts: &[&[u8]]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    std::fs::write(&path, all).unwrap();
    path
}

pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("onair-{tag}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
