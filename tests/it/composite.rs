//! Room composite tests (egress path: participants' hubs -> `egress::composite` -> encoded
//! H.264 + Opus). Real media: openh264-encoded colour blocks and libopus tones go in over RTP,
//! the output is decoded with openh264 and libopus and checked pixel by pixel and sample by
//! sample.

use crate::common;
use crate::composite_feed;
use crate::hls_common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use composite_feed::{
    Blocks, PATTERN_A, PATTERN_B, SyntheticParticipant, run_feeder, stage_sources,
};
use onair::core::composite::{I420Frame, PlanesRef, Rect, avcc_to_annexb, fit, grid};
use onair::egress::composite::{Composite, CompositeConfig, CompositeOutput};
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use tokio::sync::mpsc;

/// Largest difference allowed between a decoded pixel and the colour drawn (lossy coding twice).
const TOLERANCE: i32 = 14;

/// Decodes what a composite produces and remembers what matters for the assertions.
struct Collector {
    decoder: Decoder,
    annexb: Vec<u8>,
    picture: I420Frame,
    pictures: usize,
    keyframes: usize,
    last_video_pts: Option<u64>,
    opus: opus::Decoder,
    audio_pts: Vec<u64>,
    /// RMS of each decoded 20 ms audio packet.
    audio_rms: Vec<f64>,
}

impl Collector {
    fn new() -> Self {
        Self {
            decoder: Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
                .unwrap(),
            annexb: Vec::new(),
            picture: I420Frame::default(),
            pictures: 0,
            keyframes: 0,
            last_video_pts: None,
            opus: opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap(),
            audio_pts: Vec::new(),
            audio_rms: Vec::new(),
        }
    }

    /// Takes outputs for `span`.
    async fn run(&mut self, rx: &mut mpsc::Receiver<CompositeOutput>, span: Duration) {
        let deadline = Instant::now() + span;
        while let Ok(Some(output)) = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            rx.recv(),
        )
        .await
        {
            self.take(output);
        }
    }

    fn take(&mut self, output: CompositeOutput) {
        match output {
            CompositeOutput::Video { pts, picture } => {
                if let Some(last) = self.last_video_pts {
                    assert!(pts > last, "video pts increase: {last} then {pts}");
                }
                self.last_video_pts = Some(pts);
                if picture.keyframe {
                    self.keyframes += 1;
                    assert!(
                        picture.sps.is_some() && picture.pps.is_some(),
                        "IDR with SPS/PPS"
                    );
                }
                assert!(avcc_to_annexb(&picture.avcc, &mut self.annexb));
                if let Some(yuv) = self.decoder.decode(&self.annexb).expect("output decodes") {
                    let (width, height) = yuv.dimensions();
                    let (y_stride, uv_stride, _) = yuv.strides();
                    self.picture.copy_from(&PlanesRef {
                        width,
                        height,
                        y: yuv.y(),
                        u: yuv.u(),
                        v: yuv.v(),
                        y_stride,
                        uv_stride,
                    });
                    self.pictures += 1;
                }
            }
            CompositeOutput::Audio { pts, packet } => {
                self.audio_pts.push(pts);
                let mut pcm = [0i16; 5760 * 2];
                let n = self
                    .opus
                    .decode(&packet, &mut pcm, false)
                    .expect("Opus decodes");
                assert_eq!(n, 960, "20 ms packets");
                let energy: f64 = pcm[..n * 2].iter().map(|&s| f64::from(s).powi(2)).sum();
                self.audio_rms.push((energy / (n * 2) as f64).sqrt());
            }
        }
    }

    /// Asserts that the picture shows `blocks` in `tile` (top half, bottom half).
    fn assert_blocks(&self, tile: Rect, blocks: Blocks, who: &str) {
        let quarter = tile.h / 4;
        for (name, (x, y), colour) in [
            ("top", (tile.x + tile.w / 2, tile.y + quarter), blocks.top),
            (
                "bottom",
                (tile.x + tile.w / 2, tile.y + 3 * quarter),
                blocks.bottom,
            ),
        ] {
            let luma = self.picture.luma_at(x, y).expect("inside the picture");
            let (u, v) = self.picture.chroma_at(x, y).unwrap();
            let close = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs() <= TOLERANCE;
            assert!(
                close(luma, colour.0) && close(u, colour.1) && close(v, colour.2),
                "{who} {name} block at ({x},{y}): got yuv ({luma},{u},{v}), drew {colour:?}"
            );
        }
    }

    /// Asserts the audio timeline has no gap or overlap.
    fn assert_audio_continuous(&self) {
        assert!(!self.audio_pts.is_empty(), "mixed audio comes out");
        for pair in self.audio_pts.windows(2) {
            assert_eq!(pair[1] - pair[0], 960, "audio pts are contiguous");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_are_composed_into_their_tiles_and_mixed_until_one_leaves() {
    let config = CompositeConfig {
        width: 640,
        height: 360,
        bitrate: 1_500_000,
        ..CompositeConfig::default()
    };
    // A has a 440 Hz tone, B is silent: the mix is audible from A alone.
    let a = SyntheticParticipant::new(1, 640, 360, PATTERN_A, Some(440.0));
    let b = SyntheticParticipant::new(2, 320, 240, PATTERN_B, None);
    let sources = stage_sources(&[&a, &b]);
    let (composite, mut rx) = Composite::start(&config, sources.clone()).expect("composite");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = run_feeder(vec![a, b], stop.clone());

    let mut out = Collector::new();
    out.run(&mut rx, Duration::from_millis(2500)).await;
    assert!(out.pictures >= 30, "pictures decoded: {}", out.pictures);
    assert!(out.keyframes >= 1);
    assert_eq!((out.picture.width(), out.picture.height()), (640, 360));
    let cells = grid(2, 640, 360);
    let tile_a = fit(640, 360, cells[0]);
    let tile_b = fit(320, 240, cells[1]);
    assert_eq!(tile_a, Rect::new(0, 90, 320, 180));
    assert_eq!(tile_b, Rect::new(320, 60, 320, 240));
    out.assert_blocks(tile_a, PATTERN_A, "A");
    out.assert_blocks(tile_b, PATTERN_B, "B");
    // Letterbox above A's tile is background, not A.
    let bar = out.picture.luma_at(160, 20).unwrap();
    assert!(bar < 40, "letterbox bar is dark: {bar}");
    let loud = out.audio_rms.iter().rev().take(25).all(|&rms| rms > 2000.0);
    assert!(
        loud,
        "A's tone is in the mix: {:?}",
        &out.audio_rms[out.audio_rms.len().saturating_sub(25)..]
    );

    // B leaves the stage: A fills the picture again, audio carries on without a gap.
    composite.request_keyframe();
    composite.set_sources(vec![sources[0].clone()]);
    out.run(&mut rx, Duration::from_millis(1500)).await;
    out.assert_blocks(Rect::new(0, 0, 640, 360), PATTERN_A, "A alone");
    out.assert_audio_continuous();
    assert!(out.audio_rms.iter().rev().take(25).all(|&rms| rms > 2000.0));

    let stats = composite.stats();
    println!("composite stats: {stats:?}");
    assert!(stats.frames >= 100 && stats.audio_frames >= 150);
    assert_eq!(stats.decode_errors, 0);
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
    drop(composite);
    // The codec thread stops and closes the queue.
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "output queue closes after the composite is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_participants_give_silent_continuous_audio_and_bad_config_is_refused() {
    let bad = CompositeConfig {
        height: 0,
        ..CompositeConfig::default()
    };
    assert!(Composite::start(&bad, Vec::new()).is_err());

    let config = CompositeConfig {
        width: 320,
        height: 180,
        bitrate: 300_000,
        ..CompositeConfig::default()
    };
    let a = SyntheticParticipant::new(7, 320, 180, PATTERN_B, None);
    let (composite, mut rx) = Composite::start(&config, stage_sources(&[&a])).expect("composite");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = run_feeder(vec![a], stop.clone());
    let mut out = Collector::new();
    out.run(&mut rx, Duration::from_millis(1500)).await;
    out.assert_audio_continuous();
    assert!(
        out.audio_rms.iter().all(|&rms| rms < 50.0),
        "silence mixes to silence"
    );
    out.assert_blocks(Rect::new(0, 0, 320, 180), PATTERN_B, "single participant");
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
    drop(composite);
}

/// Width, height and the luma of the last frame of the video in `path` (ffprobe + ffmpeg).
fn last_frame_luma(path: &Path) -> (usize, usize, Vec<u8>) {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let dims = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    let (w, h) = dims.split_once(',').expect("width,height");
    let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = out.stdout.len() / (w * h);
    assert!(frames >= 1, "frames decoded from {}", path.display());
    (
        w,
        h,
        out.stdout[(frames - 1) * w * h..frames * w * h].to_vec(),
    )
}

/// Interleaved 48 kHz stereo PCM of the audio in `path`, and its packets' pts in 48 kHz ticks.
fn audio_of(path: &Path) -> (Vec<i16>, Vec<i64>) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg runs");
    let pcm = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["packet=pts", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let packets = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    (pcm, packets)
}

/// The loadtest pattern's background ramp (luma 32 + 144 x / width below the counter band)
/// is found across `tile` of a `width`-wide luma picture: at least 4 of 5 sample columns (the
/// moving bar may cover one) match within a tolerance.
fn assert_ramp(luma: &[u8], width: usize, tile: Rect, who: &str) {
    let y = tile.y + tile.h * 3 / 4;
    let mut seen = Vec::new();
    let matching = [0.1, 0.3, 0.5, 0.7, 0.9]
        .iter()
        .filter(|&&f| {
            let x = tile.x + (tile.w as f64 * f) as usize;
            let expected = 32.0 + 144.0 * f;
            let got = f64::from(luma[y * width + x]);
            seen.push((x, got, expected));
            (got - expected).abs() <= 18.0
        })
        .count();
    assert!(
        matching >= 4,
        "{who}: ramp in {tile:?}: (x, got, expected) {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_on_stage_is_composed_into_ll_hls_and_leaving_returns_to_pass_through() {
    use common::TestServer;
    use hls_common::*;
    use onair::auth::Role;
    use onair_loadtest::media::{AudioConfig, VideoConfig};
    use onair_loadtest::whip::{PublishOptions, Publisher};

    let s = TestServer::start_with(|c| {
        c.composite.width = 640;
        c.composite.height = 360;
        c.composite.bitrate = 1_000_000;
    })
    .await;
    let room = "duo";
    let url = |file: &str| s.url(&format!("/hls/{room}/{file}"));
    // The broadcaster: 320x240 (4:3). The guest: 640x360 (16:9), a different picture.
    let host = publish(&s, room, "host", true).await;
    wait_playlist(&url("video.m3u8"), |pl| pl.complete().count() >= 1).await;
    let guest = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Guest, "guest")),
        video: Some(VideoConfig {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_bps: 600_000,
            keyframe_interval_frames: 0,
        }),
        audio: Some(AudioConfig {
            freq_hz: 660,
            ..AudioConfig::default()
        }),
        ..Default::default()
    })
    .await
    .expect("guest connects");
    guest.wait_connected(WAIT).await.expect("guest ICE/DTLS");

    // The composite follows a discontinuity, with a new init (EXT-X-MAP) for the new size.
    let after = |n: usize| {
        move |pl: &MediaPlaylist| {
            let disc: Vec<usize> = (0..pl.segments.len())
                .filter(|&i| pl.segments[i].discontinuity)
                .collect();
            disc.len() >= n
                && pl.segments[disc[n - 1]..]
                    .iter()
                    .filter(|s| s.uri.is_some())
                    .count()
                    >= 2
        }
    };
    let pl = wait_playlist(&url("video.m3u8"), after(1)).await;
    let at = pl.segments.iter().position(|s| s.discontinuity).unwrap();
    let composed = &pl.segments[at + 1];
    assert_ne!(
        composed.map,
        pl.segments[at - 1].map,
        "new init segment:\n{}",
        pl.text
    );
    let dir = scratch_dir("composite");
    let init = bytes(&url(&composed.map)).await;
    let media = bytes(&url(composed.uri.as_ref().unwrap())).await;
    let (w, h, luma) = last_frame_luma(&write_file(&dir, "composed.mp4", &[&init, &media]));
    assert_eq!((w, h), (640, 360), "the composite's configured size");
    let cells = grid(2, 640, 360);
    let host_tile = fit(320, 240, cells[0]);
    let guest_tile = fit(640, 360, cells[1]);
    assert_ramp(&luma, w, host_tile, "broadcaster");
    assert_ramp(&luma, w, guest_tile, "guest");
    let bar = luma[20 * w + 160];
    assert!(
        bar < 40,
        "letterbox above the broadcaster is background: {bar}"
    );

    // Mixed audio: continuous packets, and both tones make it loud.
    let apl = wait_playlist(&url("audio.m3u8"), after(1)).await;
    let at = apl.segments.iter().position(|s| s.discontinuity).unwrap();
    let seg = &apl.segments[at + 1];
    let ainit = bytes(&url(&seg.map)).await;
    let amedia = bytes(&url(seg.uri.as_ref().unwrap())).await;
    let (pcm, packets) = audio_of(&write_file(&dir, "mixed.mp4", &[&ainit, &amedia]));
    assert!(packets.len() >= 10, "audio packets: {packets:?}");
    for w in packets.windows(2) {
        assert_eq!(w[1] - w[0], 960, "20 ms packets without a gap: {packets:?}");
    }
    let rms = (pcm.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
    assert!(rms > 1500.0, "the mix carries the tones: rms {rms}");

    // The guest leaves: back to the broadcaster's own stream, untouched, after another
    // discontinuity.
    guest.close().await.unwrap();
    let pl = wait_playlist(&url("video.m3u8"), after(2)).await;
    let last = pl.segments.iter().rposition(|s| s.discontinuity).unwrap();
    let back = &pl.segments[last + 1];
    let init = bytes(&url(&back.map)).await;
    let media = bytes(&url(back.uri.as_ref().unwrap())).await;
    let (w, h, luma) = last_frame_luma(&write_file(&dir, "back.mp4", &[&init, &media]));
    assert_eq!(
        (w, h),
        (320, 240),
        "pass-through at the broadcaster's resolution"
    );
    assert_ramp(&luma, w, Rect::new(0, 0, 320, 240), "broadcaster alone");
    let sent = host.stats().frames_sent as f64 / 30.0;
    host.close().await.unwrap();

    // One broadcast, one recording, through both switches: the broadcaster alone, the
    // composite, the broadcaster alone again, decodable from start to end.
    let (path, probe) = the_one_recording(&s, room, &dir).await;
    probe.assert_monotonic("recording");
    probe.assert_keyframe_first(0, "recording");
    let duration = probe.duration.unwrap();
    println!("stage switches: recording {duration:.3} s, broadcaster sent {sent:.3} s");
    assert!(
        (duration - sent).abs() <= 1.0,
        "recording {duration} s, broadcast {sent} s"
    );
    assert_eq!(
        decoded_sizes(&path),
        [(320, 240), (640, 360), (320, 240)],
        "pass-through, composite, pass-through"
    );
    assert_decodes(&path);
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}
