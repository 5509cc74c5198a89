//! Load bench (issue 7): the standard scenarios run against any WHIP/WHEP server over its public
//! protocols only, with one report for all of them. The load generator side of onair's media
//! path: a synthetic [`Publisher`] feeds `ingest`, many [`crate::Viewer`]s drain `egress`.
//! Does network and `/proc` I/O; every scenario is bounded in sessions and time.
//!
//! Scenarios: [`fanout`] (1: one publisher to N WHEP viewers), [`hls`] (2: LL-HLS viewers),
//! [`chat`] (3: a chat room), [`churn`] (4: viewer join/leave cycles). Each is a function from
//! a [`Target`], a [`PreparedPublisher`] and its parameters to a [`ScenarioReport`]; a new one
//! plugs in as one more [`Scenario`] variant.

pub mod chat;
pub mod churn;
pub mod fanout;
pub mod hls;
mod join;
pub mod procfs;
pub mod report;
pub mod server;
mod table;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::error::{ClientError, MediaError};
use crate::media::{AudioConfig, VideoConfig, VideoLoop};
use crate::probe::LatencyProbe;
use crate::whip::{PublishOptions, Publisher};
pub use report::{BenchReport, PublisherInfo, RunOutcome, ScenarioReport};

/// How long the bench's publisher may take to connect.
const PUBLISHER_CONNECT: Duration = Duration::from_secs(20);
/// Longest measuring window or churn run accepted (keeps every scenario bounded).
pub const MAX_SCENARIO_TIME: Duration = Duration::from_secs(3 * 3600);

/// Why a scenario could not produce figures.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The server does not serve what the scenario needs (e.g. no `/hls/...`).
    #[error("{0}")]
    Unsupported(String),
    /// The bench's own publisher could not publish.
    #[error("publisher: {0}")]
    Publisher(#[source] ClientError),
    /// The synthetic media could not be encoded.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Not one session of the scenario could be set up.
    #[error("no session could be set up; first error: {0}")]
    NoSessions(String),
    /// The parameters make no sense (zero viewers, a window longer than the limit...).
    #[error("invalid bench parameters: {0}")]
    Config(String),
}

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8080` (WHIP at `{base}/whip/{room}`, WHEP beside it).
    pub base_url: String,
    /// Room every scenario uses.
    pub room: String,
    /// Bearer token for publishing (onair needs a broadcaster JWT for the room).
    pub token: Option<String>,
    /// The server's process id, to sample its CPU, RSS and descriptors from `/proc`.
    pub server_pid: Option<u32>,
}

/// How much per-frame noise the publisher's loop carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// None: the plain test pattern, which codes to a small fraction of any sane bitrate.
    Off,
    /// A band over the bottom share of the picture height, percent.
    Percent(f64),
    /// A band sized so the loop's bitrate comes close to the video's target: a short
    /// calibration encode, the share scaled by target / measured, and at most one correction
    /// of the final loop the same way.
    MatchBitrate,
}

/// Frames of the calibration encode of [`Noise::MatchBitrate`].
const CALIBRATION_FRAMES: usize = 30;
/// Noise share of the calibration encode, percent.
const CALIBRATION_PERCENT: f64 = 2.0;
/// A loop within this factor of the target bitrate is not re-encoded.
const CALIBRATION_TOLERANCE: f64 = 0.15;

/// The synthetic publisher the scenarios start: a pre-encoded loop, so the encoder costs
/// nothing during the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublisherSpec {
    /// Resolution, rate, target bitrate and keyframe interval of the loop.
    pub video: VideoConfig,
    /// Frames in the loop (replayed from the start at its end).
    pub loop_frames: usize,
    /// Per-frame noise, so the encoder spends a bitrate like camera content's (openh264 does
    /// not hold its target without skipping frames, so the noise sets the bitrate).
    pub noise: Noise,
    /// Send Opus audio too.
    pub audio: bool,
}

impl PublisherSpec {
    /// Issue 7's publisher: 1280x720 at 30 fps, 2.5 Mbit/s, an IDR every 2 s, a 10 s loop,
    /// noise matched to the bitrate, Opus audio.
    pub fn hd720() -> Self {
        Self {
            video: VideoConfig {
                width: 1280,
                height: 720,
                fps: 30,
                bitrate_bps: 2_500_000,
                keyframe_interval_frames: 60,
            },
            loop_frames: 300,
            noise: Noise::MatchBitrate,
            audio: true,
        }
    }

    /// Encodes the loop (CPU heavy for seconds: call it off the async reactor).
    pub fn prepare(&self) -> Result<PreparedPublisher, BenchError> {
        if self.loop_frames == 0 {
            return Err(BenchError::Config("the video loop needs frames".into()));
        }
        let scaled = |percent: f64, measured: u64| {
            (percent * f64::from(self.video.bitrate_bps) / measured.max(1) as f64).clamp(0.0, 100.0)
        };
        let (noise_percent, video) = match self.noise {
            Noise::Off => (0.0, VideoLoop::encode(self.video, self.loop_frames)?),
            Noise::Percent(p) => {
                let p = p.clamp(0.0, 100.0);
                (
                    p,
                    VideoLoop::encode_with_noise(self.video, self.loop_frames, p)?,
                )
            }
            Noise::MatchBitrate => {
                let probe = VideoLoop::encode_with_noise(
                    self.video,
                    CALIBRATION_FRAMES,
                    CALIBRATION_PERCENT,
                )?;
                let p = scaled(CALIBRATION_PERCENT, probe.bitrate_bps());
                let video = VideoLoop::encode_with_noise(self.video, self.loop_frames, p)?;
                let error = video.bitrate_bps() as f64 / f64::from(self.video.bitrate_bps) - 1.0;
                if error.abs() > CALIBRATION_TOLERANCE {
                    let p = scaled(p, video.bitrate_bps());
                    (
                        p,
                        VideoLoop::encode_with_noise(self.video, self.loop_frames, p)?,
                    )
                } else {
                    (p, video)
                }
            }
        };
        let info = PublisherInfo {
            width: self.video.width,
            height: self.video.height,
            fps: self.video.fps,
            target_bitrate_bps: self.video.bitrate_bps,
            loop_frames: video.len(),
            noise_percent: (noise_percent * 100.0).round() / 100.0,
            loop_bitrate_bps: video.bitrate_bps(),
            audio: self.audio,
        };
        Ok(PreparedPublisher {
            spec: *self,
            video,
            info,
        })
    }
}

/// A publisher ready to start: the spec with its encoded loop.
#[derive(Debug, Clone)]
pub struct PreparedPublisher {
    spec: PublisherSpec,
    video: Arc<VideoLoop>,
    /// What it sends, for the report.
    pub info: PublisherInfo,
}

impl PreparedPublisher {
    /// Publishes into `target`'s room and waits until ICE and DTLS are up.
    pub async fn start(
        &self,
        target: &Target,
        probe: Option<Arc<LatencyProbe>>,
    ) -> Result<Publisher, BenchError> {
        let publisher = Publisher::connect(PublishOptions {
            base_url: target.base_url.clone(),
            room: target.room.clone(),
            token: target.token.clone(),
            video: Some(self.spec.video),
            video_loop: Some(Arc::clone(&self.video)),
            audio: self.spec.audio.then(AudioConfig::default),
            chat: false,
            latency_probe: probe,
            ..Default::default()
        })
        .await
        .map_err(BenchError::Publisher)?;
        publisher
            .wait_connected(PUBLISHER_CONNECT)
            .await
            .map_err(BenchError::Publisher)?;
        Ok(publisher)
    }
}

/// One scenario run with its parameters.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// 1: one publisher to N WHEP viewers.
    Fanout(fanout::FanoutParams),
    /// 2: LL-HLS viewers.
    Hls(hls::HlsParams),
    /// 3: one chat room.
    Chat(chat::ChatParams),
    /// 4: viewer join/leave cycles.
    Churn(churn::ChurnParams),
}

impl Scenario {
    /// `fanout`, `hls`, `chat` or `churn`.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout(_) => "fanout",
            Scenario::Hls(_) => "hls",
            Scenario::Chat(_) => "chat",
            Scenario::Churn(_) => "churn",
        }
    }

    /// The run's label in the report, e.g. `fanout 100`.
    pub fn label(&self) -> String {
        let size = match self {
            Scenario::Fanout(p) => p.viewers,
            Scenario::Hls(p) => p.viewers,
            Scenario::Chat(p) => p.members,
            Scenario::Churn(p) => p.cycles,
        };
        format!("{} {size}", self.name())
    }

    /// Runs it.
    pub async fn run(
        &self,
        target: &Target,
        publisher: &PreparedPublisher,
    ) -> Result<ScenarioReport, BenchError> {
        match self {
            Scenario::Fanout(p) => fanout::run(target, publisher, p).await,
            Scenario::Hls(p) => hls::run(target, publisher, p).await,
            Scenario::Chat(p) => chat::run(target, publisher, p).await,
            Scenario::Churn(p) => churn::run(target, publisher, p).await,
        }
    }
}

/// Runs `scenarios` one after the other (a failed one does not stop the others) and collects
/// the report. `pause` separates runs so the server can drop the previous run's sessions.
pub async fn run_all(
    target: &Target,
    publisher: &PreparedPublisher,
    scenarios: &[Scenario],
    pause: Duration,
) -> BenchReport {
    let started_unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut runs = Vec::with_capacity(scenarios.len());
    for (i, scenario) in scenarios.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        tracing::info!(run = %scenario.label(), "scenario starts");
        let outcome = scenario.run(target, publisher).await;
        let (status, error, report) = match outcome {
            Ok(report) => ("ok", None, Some(report)),
            Err(BenchError::Unsupported(why)) => ("unsupported", Some(why), None),
            Err(error) => ("failed", Some(error.to_string()), None),
        };
        tracing::info!(run = %scenario.label(), status, "scenario ends");
        runs.push(RunOutcome {
            scenario: scenario.name(),
            label: scenario.label(),
            status,
            error,
            report,
        });
    }
    BenchReport {
        tool: "onair-loadtest",
        version: env!("CARGO_PKG_VERSION"),
        started_unix_secs,
        url: target.base_url.clone(),
        room: target.room.clone(),
        machine: procfs::Machine::read(),
        generator_worker_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        server_pid: target.server_pid,
        publisher: publisher.info.clone(),
        runs,
    }
}

/// Checks a measuring window or a run time against [`MAX_SCENARIO_TIME`].
fn check_time(what: &str, time: Duration) -> Result<(), BenchError> {
    if time.is_zero() || time > MAX_SCENARIO_TIME {
        return Err(BenchError::Config(format!(
            "{what} must be between 1 s and {} s, not {time:?}",
            MAX_SCENARIO_TIME.as_secs()
        )));
    }
    Ok(())
}
