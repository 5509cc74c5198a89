//! Benchmark of the room composite (egress path: N participants' hubs -> `egress::composite` ->
//! encoded H.264 + Opus): synthetic participants at 640x360 composed to 1280x720 at 30 fps,
//! printing the codec thread's CPU time per output second. Two feeds: `solid` (two flat colour
//! blocks, live-encoded; compresses to a few kbit/s, so decoding is nearly free: optimistic)
//! and `camera` (the loadtest's moving pattern with fresh full-range noise over the bottom
//! NOISE_PERCENT of the picture, pre-encoded once and replayed, so the feeder costs nothing;
//! the default 1.1 % (4 rows) puts a 640x360 source at ~800 kbit/s and the decoders do
//! realistic work). Figures are printed, not asserted. Does I/O (reads /proc for thread CPU
//! times).
//!
//! `cargo run --release --example composite_bench [-- SECONDS [PARTICIPANTS [solid|camera|both
//! [NOISE_PERCENT [SOURCE_KBPS]]]]]`

#[path = "../tests/it/composite_feed/mod.rs"]
mod composite_feed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use composite_feed::{
    PATTERN_A, PATTERN_B, SyntheticParticipant, camera_loop, run_feeder, stage_sources,
};
use onair::egress::composite::{Composite, CompositeConfig, CompositeOutput};

/// Warm-up before measuring: decoders start on the first IDR, rate control settles.
const WARM_UP: Duration = Duration::from_secs(2);

/// CPU seconds (user + system) of the thread named `name`, from /proc (Linux only).
fn thread_cpu(name: &str) -> Option<f64> {
    let ticks = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime + stime) / ticks);
    }
    None
}

/// What the participants show.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Solid,
    Camera { noise_percent: f64, kbps: u32 },
}

/// Builds `count` participants of `feed` (camera ones share one pre-encoded loop).
fn participants(feed: Feed, count: u64) -> Vec<SyntheticParticipant> {
    let tone = |id: u64| Some(220.0 * id as f64);
    match feed {
        Feed::Solid => (1..=count)
            .map(|id| {
                let pattern = if id % 2 == 1 { PATTERN_A } else { PATTERN_B };
                SyntheticParticipant::new(id, 640, 360, pattern, tone(id))
            })
            .collect(),
        Feed::Camera {
            noise_percent,
            kbps,
        } => {
            let frames = camera_loop(640, 360, kbps * 1000, noise_percent);
            println!(
                "  camera loop: {} frames, {:.0} kbit/s per source (noise over {noise_percent} % of the picture)",
                frames.len(),
                frames.bitrate_bps() as f64 / 1000.0
            );
            (1..=count)
                .map(|id| SyntheticParticipant::replaying(id, frames.clone(), tone(id)))
                .collect()
        }
    }
}

async fn run(feed: Feed, seconds: u64, count: u64) {
    let config = CompositeConfig::default();
    let name = match feed {
        Feed::Solid => "solid",
        Feed::Camera { .. } => "camera",
    };
    println!(
        "composite [{name}]: {count} x 640x360 -> {}x{} @ {} fps, {} kbit/s out",
        config.width,
        config.height,
        config.fps,
        config.bitrate / 1000
    );
    let participants = participants(feed, count);
    let sources = stage_sources(&participants.iter().collect::<Vec<_>>());
    let (composite, mut rx) = Composite::start(&config, sources).expect("composite starts");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = run_feeder(participants, stop.clone());
    let fed = Instant::now();
    let drain = tokio::spawn(async move {
        let (mut video, mut bytes) = (0u64, 0u64);
        while let Some(out) = rx.recv().await {
            if let CompositeOutput::Video { picture, .. } = out {
                video += 1;
                bytes += picture.avcc.len() as u64;
            }
        }
        (video, bytes)
    });
    tokio::time::sleep(WARM_UP).await;
    let (cpu0, stats0, t0) = (
        thread_cpu("onair-composite").unwrap_or(0.0),
        composite.stats(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu("onair-composite").unwrap_or(0.0) - cpu0;
    let stats = composite.stats();
    stop.store(true, Ordering::Release);
    let participants = feeder.join().expect("feeder");
    let fed_secs = fed.elapsed().as_secs_f64();
    drop(composite);
    let (video, bytes) = drain.await.expect("drain");

    let input_kbps: Vec<String> = participants
        .iter()
        .map(|p| format!("{:.0}", p.video_bytes() as f64 * 8.0 / 1000.0 / fed_secs))
        .collect();
    let frames = stats.frames - stats0.frames;
    let busy = (stats.busy_ns - stats0.busy_ns) as f64 / 1e9;
    println!(
        "  input video kbit/s per source: {}; {:.1} s measured",
        input_kbps.join(", "),
        wall
    );
    println!(
        "  output frames {frames} ({:.1} fps), skipped {}, output dropped {}, decoded {}, decode errors {}",
        frames as f64 / wall,
        stats.frames_skipped - stats0.frames_skipped,
        stats.output_dropped,
        stats.decoded,
        stats.decode_errors
    );
    println!(
        "  codec thread CPU: {:.3} s per output second ({:.0} % of one core); busy wall {:.3} s/s",
        cpu / wall,
        100.0 * cpu / wall,
        busy / wall
    );
    println!(
        "  encoded video {:.0} kbit/s over {video} frames",
        bytes as f64 * 8.0 / 1000.0 / fed_secs
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let count: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let which = args.next().unwrap_or_else(|| "both".into());
    let noise_percent: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.1);
    let kbps: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(800);
    let camera = Feed::Camera {
        noise_percent,
        kbps,
    };
    let feeds = match which.as_str() {
        "solid" => vec![Feed::Solid],
        "camera" => vec![camera],
        "both" => vec![Feed::Solid, camera],
        other => {
            eprintln!("unknown feed `{other}`: solid, camera or both");
            std::process::exit(2);
        }
    };
    for feed in feeds {
        run(feed, seconds, count).await;
    }
}
