//! Test/load client CLI: publish synthetic media into an onair room over WHIP, watch a room
//! with N WHEP viewers (printing statistics every second), or run the load bench's scenarios
//! and write a report (`bench`, in `bench_cmd`). Does network I/O.

mod bench_cmd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use onair_loadtest::{
    AudioConfig, PublishOptions, Publisher, TrackStats, VideoConfig, VideoLoop, ViewOptions,
    Viewer, ViewerStats,
};
use serde::Serialize;
use tokio::task::JoinSet;

/// jemalloc: the generator must cost as little of the shared machine as it can (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "onair-loadtest",
    version,
    about = "WHIP publisher and WHEP viewers for onair"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a synthetic H.264 + Opus stream until Ctrl-C (or --duration).
    Publish(PublishArgs),
    /// Watch a room with N viewers until Ctrl-C (or --duration).
    View(ViewArgs),
    /// Run load scenarios (fan-out, churn; LL-HLS and chat where served) and write a report.
    Bench(Box<bench_cmd::BenchArgs>),
}

#[derive(Args)]
struct Common {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ONAIR_URL")]
    url: String,
    /// Room name.
    #[arg(long)]
    room: String,
    /// Bearer token (a JWT from `onair token`).
    #[arg(long, env = "ONAIR_TOKEN")]
    token: Option<String>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Print one JSON object per second instead of a text line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PublishArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate ceiling in bits per second (the synthetic pattern often needs less).
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u32,
    /// An IDR every this many frames (0: only on request).
    #[arg(long, default_value_t = 120)]
    keyframe_interval: u32,
    /// Pre-encode this many frames and replay them instead of encoding live (cheap).
    #[arg(long)]
    loop_frames: Option<usize>,
    #[arg(long)]
    no_video: bool,
    #[arg(long)]
    no_audio: bool,
}

#[derive(Args)]
struct ViewArgs {
    #[command(flatten)]
    common: Common,
    /// Number of viewers.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Viewers connecting at the same time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Reassemble and decode video (CPU heavy; for a few viewers).
    #[arg(long)]
    decode: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,onair_loadtest=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Publish(args) => publish(args).await,
        Command::View(args) => view(args).await,
        Command::Bench(args) => bench_cmd::bench(*args).await,
    }
}

/// Resolves when it is time to stop: Ctrl-C or the optional duration.
async fn stop_signal(duration: Option<u64>) {
    let timer = async {
        match duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = timer => {}
    }
}

async fn publish(args: PublishArgs) -> Result<()> {
    let video = (!args.no_video).then_some(VideoConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        bitrate_bps: args.bitrate,
        keyframe_interval_frames: args.keyframe_interval,
    });
    let video_loop = match (video, args.loop_frames) {
        (Some(config), Some(frames)) => {
            eprintln!("pre-encoding {frames} frames...");
            Some(VideoLoop::encode(config, frames)?)
        }
        _ => None,
    };
    let options = PublishOptions {
        base_url: args.common.url.clone(),
        room: args.common.room.clone(),
        token: args.common.token.clone(),
        video,
        video_loop,
        audio: (!args.no_audio).then(AudioConfig::default),
        chat: false,
        latency_probe: None,
        ..Default::default()
    };
    let publisher = Publisher::connect(options)
        .await
        .context("WHIP publish failed")?;
    eprintln!("publishing: {}", publisher.resource_url());
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let stop = stop_signal(args.common.duration);
    tokio::pin!(stop);
    let mut last = publisher.stats();
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let now = publisher.stats();
        let elapsed = started.elapsed().as_secs();
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({ "t": elapsed, "state": publisher.connection_state().to_string(), "publisher": now })
            );
        } else {
            println!(
                "t={elapsed}s {} frames={} (+{}) keyframes={} video={} kbit/s audio_pkts={} plis={} firs={} errors={}",
                publisher.connection_state(),
                now.frames_sent,
                now.frames_sent.saturating_sub(last.frames_sent),
                now.keyframes_sent,
                now.video_bytes_sent.saturating_sub(last.video_bytes_sent) * 8 / 1000,
                now.audio_packets_sent,
                now.plis_received,
                now.firs_received,
                now.send_errors,
            );
        }
        last = now;
    }
    publisher.close().await.context("WHIP DELETE failed")?;
    Ok(())
}

/// Sum over all viewers, for the per-second report.
#[derive(Debug, Default, Serialize)]
struct Aggregate {
    viewers: usize,
    connected: usize,
    video_packets: u64,
    video_bytes: u64,
    audio_packets: u64,
    seq_gaps: u64,
    seq_backwards: u64,
    ts_backwards: u64,
    viewers_with_ssrc_change: usize,
    frames_decoded: u64,
    decode_errors: u64,
}

impl Aggregate {
    fn add(&mut self, stats: &ViewerStats) {
        let tracks: [&TrackStats; 2] = [&stats.video, &stats.audio];
        self.viewers += 1;
        self.connected += usize::from(stats.connected);
        self.video_packets += stats.video.packets;
        self.video_bytes += stats.video.bytes;
        self.audio_packets += stats.audio.packets;
        for track in tracks {
            self.seq_gaps += track.seq_gaps;
            self.seq_backwards += track.seq_backwards;
            self.ts_backwards += track.ts_backwards;
        }
        self.viewers_with_ssrc_change += usize::from(tracks.iter().any(|t| t.ssrc_changes > 0));
        self.frames_decoded += stats.video.frames_decoded;
        self.decode_errors += stats.video.decode_errors;
    }
}

async fn view(args: ViewArgs) -> Result<()> {
    let options = ViewOptions {
        base_url: args.common.url.clone(),
        room: args.common.room.clone(),
        token: args.common.token.clone(),
        decode: args.decode,
        chat: false,
        request_keyframes: args.decode,
        latency_probe: None,
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut joins = JoinSet::new();
    for _ in 0..args.count {
        let options = options.clone();
        let permits = Arc::clone(&permits);
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await;
            Viewer::connect(options).await
        });
    }
    let mut viewers = Vec::with_capacity(args.count);
    let mut failures = 0usize;
    while let Some(joined) = joins.join_next().await {
        match joined {
            Ok(Ok(viewer)) => viewers.push(viewer),
            Ok(Err(error)) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("viewer failed: {error}");
                }
            }
            Err(error) => {
                failures += 1;
                eprintln!("viewer task failed: {error}");
            }
        }
    }
    eprintln!("{} viewers connected, {failures} failed", viewers.len());
    anyhow::ensure!(!viewers.is_empty(), "no viewer could connect");

    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let stop = stop_signal(args.common.duration);
    tokio::pin!(stop);
    let mut last = Aggregate::default();
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let mut now = Aggregate::default();
        for viewer in &viewers {
            now.add(&viewer.stats());
        }
        let elapsed = started.elapsed().as_secs();
        if args.common.json {
            println!(
                "{}",
                serde_json::json!({ "t": elapsed, "failed": failures, "aggregate": now })
            );
        } else {
            println!(
                "t={elapsed}s connected={}/{} video={} kbit/s ({} pkt/s) audio={} pkt/s gaps={} backwards={} ts_backwards={} ssrc_changed={} decoded={} (+{}) decode_errors={}",
                now.connected,
                now.viewers,
                now.video_bytes.saturating_sub(last.video_bytes) * 8 / 1000,
                now.video_packets.saturating_sub(last.video_packets),
                now.audio_packets.saturating_sub(last.audio_packets),
                now.seq_gaps,
                now.seq_backwards,
                now.ts_backwards,
                now.viewers_with_ssrc_change,
                now.frames_decoded,
                now.frames_decoded.saturating_sub(last.frames_decoded),
                now.decode_errors,
            );
        }
        last = now;
    }
    let mut closes = JoinSet::new();
    for viewer in viewers {
        closes.spawn(viewer.close());
    }
    let mut close_errors = 0usize;
    while let Some(result) = closes.join_next().await {
        close_errors += usize::from(!matches!(result, Ok(Ok(()))));
    }
    if close_errors > 0 {
        eprintln!("{close_errors} viewers failed to DELETE cleanly");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
