//! Benchmark of the room composite (egress path: 4 participants' hubs -> `egress::composite` ->
//! encoded H.264 + Opus): 4 synthetic participants at 640x360 composed to 1280x720 at 30 fps,
//! printing the codec thread's CPU time per output second. Figures are printed, not asserted.
//! Does I/O (reads /proc for thread CPU times).
//!
//! `cargo run --release --example composite_bench [-- SECONDS [PARTICIPANTS]]`

#[path = "../tests/composite_feed/mod.rs"]
mod composite_feed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use composite_feed::{PATTERN_A, PATTERN_B, SyntheticParticipant, run_feeder};
use onair::egress::composite::{Composite, CompositeConfig, StageSource};

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let count: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let config = CompositeConfig::default();
    let participants: Vec<SyntheticParticipant> = (1..=count)
        .map(|id| {
            let pattern = if id % 2 == 1 { PATTERN_A } else { PATTERN_B };
            SyntheticParticipant::new(id, 640, 360, pattern, Some(220.0 * id as f64))
        })
        .collect();
    let sources = participants
        .iter()
        .zip(1..)
        .map(|(p, id)| StageSource {
            id,
            video: Some(p.video.clone()),
            audio: Some(p.audio.clone()),
        })
        .collect();
    let (composite, mut rx) = Composite::start(&config, sources).expect("composite starts");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = run_feeder(participants, stop.clone());
    let drain = tokio::spawn(async move {
        let (mut video, mut bytes) = (0u64, 0u64);
        while let Some(out) = rx.recv().await {
            if let onair::egress::composite::CompositeOutput::Video { picture, .. } = out {
                video += 1;
                bytes += picture.avcc.len() as u64;
            }
        }
        (video, bytes)
    });
    // Warm up (decoders start on the first IDR), then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    feeder.join().expect("feeder");
    drop(composite);
    let (video, bytes) = drain.await.expect("drain");

    let frames = stats.frames - stats0.frames;
    let busy = (stats.busy_ns - stats0.busy_ns) as f64 / 1e9;
    println!(
        "composite: {count} x 640x360 -> {}x{} @ {} fps, {:.1} s measured",
        config.width, config.height, config.fps, wall
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
        bytes as f64 * 8.0 / 1000.0 / (wall + 2.0)
    );
}
