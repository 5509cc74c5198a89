//! Test/load client CLI: the `bench` subcommand — turns flags into scenario runs, encodes the
//! publisher's loop, runs the scenarios, prints the summary table and writes the JSON report.
//! Does network and file I/O.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use onair_loadtest::VideoConfig;
use onair_loadtest::bench::chat::ChatParams;
use onair_loadtest::bench::churn::ChurnParams;
use onair_loadtest::bench::fanout::FanoutParams;
use onair_loadtest::bench::hls::HlsParams;
use onair_loadtest::bench::{Noise, PublisherSpec, Scenario, Target, run_all};

/// The scenarios of issue 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// 1: one publisher to N WHEP viewers (one run per `--viewers` value).
    Fanout,
    /// 2: LL-HLS viewers.
    Hls,
    /// 3: one chat room.
    Chat,
    /// 4: viewer join/leave cycles.
    Churn,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ONAIR_URL")]
    url: String,
    /// Room every scenario uses.
    #[arg(long, default_value = "bench")]
    room: String,
    /// Bearer token for publishing (onair: a broadcaster JWT for the room, `onair token`).
    #[arg(long, env = "ONAIR_TOKEN")]
    token: Option<String>,
    /// The server's process id: samples its CPU, RSS and descriptors from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fanout,churn"
    )]
    scenario: Vec<ScenarioName>,
    /// Fan-out: viewer counts, one run each (e.g. 100,250,500,1000).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    viewers: Vec<usize>,
    /// Fan-out: viewers started per second.
    #[arg(long, default_value_t = 50.0)]
    ramp: f64,
    /// Fan-out: joins in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measuring window of fan-out, LL-HLS and chat runs, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Longest a viewer may take to connect, and all of them to get a keyframe, seconds.
    #[arg(long, default_value_t = 10)]
    join_timeout: u64,
    /// Churn: measured join/leave cycles.
    #[arg(long, default_value_t = 1000)]
    churn_cycles: usize,
    /// Churn: warm-up cycles before the "before" figures.
    #[arg(long, default_value_t = 50)]
    churn_warmup: usize,
    /// Churn: parallel workers.
    #[arg(long, default_value_t = 4)]
    churn_parallel: usize,
    /// Churn: wall-clock limit, seconds.
    #[arg(long, default_value_t = 3600)]
    churn_max_secs: u64,
    /// LL-HLS: viewers.
    #[arg(long, default_value_t = 100)]
    hls_viewers: usize,
    /// Chat: members.
    #[arg(long, default_value_t = 100)]
    chat_members: usize,
    /// Chat: messages per second across the room.
    #[arg(long, default_value_t = 10.0)]
    chat_rate: f64,
    /// Publisher: width.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Publisher: height.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Publisher: frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Publisher: target video bitrate, bits per second.
    #[arg(long, default_value_t = 2_500_000)]
    bitrate: u32,
    /// Publisher: an IDR every this many frames (0: only on request).
    #[arg(long, default_value_t = 60)]
    keyframe_interval: u32,
    /// Publisher: frames in the pre-encoded loop.
    #[arg(long, default_value_t = 300)]
    loop_frames: usize,
    /// Publisher: per-frame noise over the bottom of the picture so the encoder spends a
    /// realistic bitrate: `auto` (sized to match --bitrate), `off`, or a percent of the height.
    #[arg(long, default_value = "auto", value_parser = parse_noise)]
    noise: Noise,
    /// Publisher: no Opus audio.
    #[arg(long)]
    no_audio: bool,
    /// Seconds between runs, for the server to drop the previous run's sessions.
    #[arg(long, default_value_t = 3)]
    pause: u64,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-report.json")]
    json: PathBuf,
}

impl BenchArgs {
    fn scenarios(&self) -> Vec<Scenario> {
        let duration = Duration::from_secs(self.duration);
        let join_timeout = Duration::from_secs(self.join_timeout);
        let mut runs = Vec::new();
        for name in &self.scenario {
            match name {
                ScenarioName::Fanout => {
                    runs.extend(self.viewers.iter().map(|&viewers| {
                        Scenario::Fanout(FanoutParams {
                            viewers,
                            ramp_per_sec: self.ramp,
                            connect_concurrency: self.concurrency,
                            duration,
                            join_timeout,
                        })
                    }));
                }
                ScenarioName::Hls => runs.push(Scenario::Hls(HlsParams {
                    viewers: self.hls_viewers,
                    duration,
                })),
                ScenarioName::Chat => runs.push(Scenario::Chat(ChatParams {
                    members: self.chat_members,
                    messages_per_sec: self.chat_rate,
                    duration,
                })),
                ScenarioName::Churn => runs.push(Scenario::Churn(ChurnParams {
                    cycles: self.churn_cycles,
                    warmup: self.churn_warmup,
                    parallel: self.churn_parallel,
                    keyframe_timeout: join_timeout,
                    max_duration: Duration::from_secs(self.churn_max_secs),
                })),
            }
        }
        runs
    }

    fn publisher(&self) -> PublisherSpec {
        PublisherSpec {
            video: VideoConfig {
                width: self.width,
                height: self.height,
                fps: self.fps,
                bitrate_bps: self.bitrate,
                keyframe_interval_frames: self.keyframe_interval,
            },
            loop_frames: self.loop_frames,
            noise: self.noise,
            audio: !self.no_audio,
        }
    }
}

fn parse_noise(value: &str) -> Result<Noise, String> {
    match value {
        "auto" => Ok(Noise::MatchBitrate),
        "off" => Ok(Noise::Off),
        percent => match percent.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Noise::Percent(p)),
            _ => Err(format!(
                "expected auto, off or a percent 0-100, not {percent:?}"
            )),
        },
    }
}

/// The soft limit on open files of this process (`/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs the bench; fails (after writing the report) if any scenario failed.
pub async fn bench(args: BenchArgs) -> Result<()> {
    let scenarios = args.scenarios();
    anyhow::ensure!(!scenarios.is_empty(), "no scenario to run");
    let most_viewers = args.viewers.iter().copied().max().unwrap_or(0);
    if let Some(limit) = open_files_limit()
        && limit < (most_viewers as u64) * 4 + 256
    {
        eprintln!(
            "warning: open files limit {limit} may be too low for {most_viewers} viewers (ulimit -n)"
        );
    }
    let spec = args.publisher();
    eprintln!(
        "pre-encoding {} frames of {}x{} (noise {:?})...",
        spec.loop_frames, spec.video.width, spec.video.height, spec.noise
    );
    let publisher = tokio::task::spawn_blocking(move || spec.prepare())
        .await
        .context("encoder task")??;
    eprintln!(
        "loop: {} kbit/s (target {} kbit/s), noise over {:.1}% of the height",
        publisher.info.loop_bitrate_bps / 1000,
        spec.video.bitrate_bps / 1000,
        publisher.info.noise_percent
    );
    let target = Target {
        base_url: args.url.clone(),
        room: args.room.clone(),
        token: args.token.clone(),
        server_pid: args.server_pid,
    };
    let report = run_all(
        &target,
        &publisher,
        &scenarios,
        Duration::from_secs(args.pause),
    )
    .await;
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.json, json).with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("report written to {}", args.json.display());
    let failed: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| r.label.as_str())
        .collect();
    anyhow::ensure!(failed.is_empty(), "runs failed: {}", failed.join(", "));
    Ok(())
}
