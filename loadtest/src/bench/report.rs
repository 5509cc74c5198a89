//! Load bench: the report — what every scenario measured, serialized to JSON and rendered as a
//! summary table. Pure data and formatting, no I/O.

use serde::Serialize;

use super::procfs::{CpuUse, Machine, ProcStat};
use super::server::Health;
use crate::histogram::HistogramSnapshot;

/// A whole bench run: the setup and one outcome per scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `onair-loadtest`.
    pub tool: &'static str,
    /// The tool's version.
    pub version: &'static str,
    /// When the bench started, Unix seconds.
    pub started_unix_secs: u64,
    /// The server's base URL.
    pub url: String,
    /// The room used.
    pub room: String,
    /// The machine the bench (and, on loopback, the server) ran on.
    pub machine: Machine,
    /// Tokio worker threads of the load generator.
    pub generator_worker_threads: usize,
    /// The server's pid, when given (CPU, RSS and descriptors are sampled only then).
    pub server_pid: Option<u32>,
    /// The synthetic publisher every scenario starts.
    pub publisher: PublisherInfo,
    /// One entry per scenario run, in order.
    pub runs: Vec<RunOutcome>,
}

/// The synthetic publisher.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherInfo {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// The encoder's target bitrate.
    pub target_bitrate_bps: u32,
    /// Frames in the pre-encoded loop.
    pub loop_frames: usize,
    /// Share of the picture height covered with per-frame noise, percent.
    pub noise_percent: f64,
    /// The loop's actual mean video bitrate (what goes on the wire, before RTP headers).
    pub loop_bitrate_bps: u64,
    /// Whether Opus audio is sent too.
    pub audio: bool,
}

/// How one scenario run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// `fanout`, `churn`, `hls` or `chat`.
    pub scenario: &'static str,
    /// The run's label, e.g. `fanout 100`.
    pub label: String,
    /// `ok`, `failed` or `unsupported` (the server lacks what the scenario needs).
    pub status: &'static str,
    /// Why it did not run, unless `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The figures, when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ScenarioReport>,
}

/// Figures of one scenario run. Sections a scenario does not measure stay `None`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    /// Sessions asked for, connected and failed.
    pub sessions: Sessions,
    /// Length of the measuring window, seconds (after the ramp).
    pub window_secs: f64,
    /// Join time, ms: WHEP POST to the first packet that begins a keyframe; chat: WebSocket
    /// connect to the welcome.
    pub join_ms: Option<MsSummary>,
    /// Medians of the join's steps, ms.
    pub join_steps_p50_ms: Option<JoinSteps>,
    /// 95th percentiles of the join's steps, ms.
    pub join_steps_p95_ms: Option<JoinSteps>,
    /// Sequence gaps over the window.
    pub loss: Option<Loss>,
    /// Per-packet forwarding latency over the window (video), ms; chat: send to delivery.
    pub latency_ms: Option<LatencyReport>,
    /// Media rates over the window.
    pub throughput: Option<Throughput>,
    /// Mean CPU use over the window.
    pub cpu: Option<CpuUse>,
    /// Highest one-second server CPU use during the run, cores.
    pub server_cpu_peak_cores: Option<f64>,
    /// The server process before and after (given `--server-pid`).
    pub server: Option<Before<ProcStat>>,
    /// The load generator process before and after.
    pub generator: Option<Before<ProcStat>>,
    /// The server's own session counts (`/healthz`), when it has them.
    pub health: HealthTimeline,
    /// Churn-specific figures.
    pub churn: Option<ChurnFigures>,
    /// Chat-specific figures.
    pub chat: Option<ChatFigures>,
    /// LL-HLS-specific figures.
    pub hls: Option<HlsFigures>,
    /// What the server asked of the publisher while viewers joined (WHEP scenarios).
    pub keyframes: Option<KeyframeLoad>,
    /// Anything the reader should know about these figures.
    pub notes: Vec<String>,
}

/// Sessions of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sessions {
    /// Sessions the scenario set out to open.
    pub target: usize,
    /// Sessions that connected (WebRTC up; WebSocket open).
    pub connected: usize,
    /// Of which were ready: received a keyframe (WHEP), or a welcome (chat).
    pub ready: usize,
    /// Sessions that could not be set up.
    pub failed: usize,
    /// The distinct failure messages (at most 5) with their counts.
    pub failures: Vec<(String, usize)>,
}

impl Sessions {
    /// Counts one failure under its message.
    pub fn fail(&mut self, message: String) {
        self.failed += 1;
        if let Some(entry) = self.failures.iter_mut().find(|(m, _)| *m == message) {
            entry.1 += 1;
        } else if self.failures.len() < 5 {
            self.failures.push((message, 1));
        }
    }
}

/// A distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MsSummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Milliseconds with microsecond precision.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl MsSummary {
    /// From a histogram of microseconds; `None` when it is empty.
    pub fn from_us(h: &HistogramSnapshot) -> Option<Self> {
        (h.count() > 0).then(|| Self {
            count: h.count(),
            p50: ms(h.quantile(0.50)),
            p95: ms(h.quantile(0.95)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// The steps of a join at one quantile, ms (each step's own quantile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JoinSteps {
    /// POST to the `201` answer (the server's signaling).
    pub signaling: f64,
    /// Answer to ICE `Connected` (connectivity checks and nomination).
    pub ice: f64,
    /// ICE `Connected` to `Connected` (the DTLS handshake, including its first flight's wait).
    pub dtls: f64,
    /// Answer to `Connected` (ICE and DTLS).
    pub ice_dtls: f64,
    /// `Connected` to the first RTP packet of any track.
    pub first_packet: f64,
    /// `Connected` to the first keyframe packet (keyframe request and the gate).
    pub keyframe_wait: f64,
}

/// Loss over the measuring window, from the viewers' sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Loss {
    /// Video: gaps / (received + gaps), percent.
    pub video_pct: f64,
    /// Audio: the same.
    pub audio_pct: f64,
    /// Both together.
    pub total_pct: f64,
    /// Video packets received by all viewers.
    pub video_packets: u64,
    /// Video sequence numbers never received.
    pub video_gaps: u64,
    /// Audio packets received.
    pub audio_packets: u64,
    /// Audio sequence numbers never received.
    pub audio_gaps: u64,
    /// Viewers that lost anything.
    pub viewers_with_loss: usize,
    /// Viewers that received no video at all in the window.
    pub viewers_starved: usize,
}

/// Forwarding latency: publisher send to viewer arrival, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyReport {
    /// Packets matched (samples).
    pub samples: u64,
    /// Packets the probe could not match (re-packetized by the server, or table reuse).
    pub unmatched: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest (bucket precision, ~3%).
    pub max: f64,
}

impl LatencyReport {
    /// From a histogram of microseconds and the unmatched count.
    pub fn from_us(h: &HistogramSnapshot, unmatched: u64) -> Self {
        Self {
            samples: h.count(),
            unmatched,
            mean: ms(h.mean().round() as u64),
            p50: ms(h.quantile(0.50)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Media rates over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Throughput {
    /// The publisher's video payload rate, kbit/s.
    pub publisher_video_kbps: f64,
    /// Payload received by all viewers together, Mbit/s.
    pub received_mbps: f64,
    /// RTP packets received by all viewers together, per second.
    pub received_packets_per_sec: f64,
    /// Mean payload rate per viewer, kbit/s.
    pub per_viewer_kbps: f64,
}

/// A value before and after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Before<T> {
    /// At the start (for churn: after the warm-up cycles).
    pub before: T,
    /// At the end, after the sessions were closed and the server settled.
    pub after: T,
}

/// `/healthz` session counts through a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HealthTimeline {
    /// Before the scenario started anything.
    pub before: Option<Health>,
    /// At the end of the measuring window (fan-out) or after the warm-up (churn).
    pub during: Option<Health>,
    /// After everything was closed.
    pub after: Option<Health>,
}

/// Keyframe requests the publisher received over a whole run (ramp or warm-up included) and
/// the keyframes it sent: how a server's keyframe policy for joining viewers loads the
/// publisher (each keyframe costs several times a normal frame, to every viewer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct KeyframeLoad {
    /// PLIs and FIRs received for the video track.
    pub requests: u64,
    /// IDR frames sent (the loop's own, one every `--keyframe-interval` frames, included).
    pub keyframes_sent: u64,
    /// Video frames sent.
    pub frames_sent: u64,
    /// Viewer joins the run made.
    pub joins: usize,
}

impl KeyframeLoad {
    /// From the publisher's counters at the end of the run and the joins it made.
    pub fn from_stats(stats: &crate::whip::PublisherStats, joins: usize) -> Self {
        Self {
            requests: stats.plis_received + stats.firs_received,
            keyframes_sent: stats.keyframes_sent,
            frames_sent: stats.frames_sent,
            joins,
        }
    }
}

/// Churn: join/leave cycles and growth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ChurnFigures {
    /// Cycles asked for.
    pub cycles: usize,
    /// Warm-up cycles run before the "before" figures were taken.
    pub warmup_cycles: usize,
    /// Cycles that joined, got a keyframe and left cleanly.
    pub completed: usize,
    /// Server RSS growth from before to after, percent.
    pub rss_growth_pct: Option<f64>,
    /// Server descriptors after minus before.
    pub fd_growth: Option<i64>,
    /// `/healthz` viewers after minus before.
    pub session_growth: Option<i64>,
    /// Cycles per second achieved.
    pub cycles_per_sec: f64,
}

/// Chat: messages and deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ChatFigures {
    /// Messages sent by the members.
    pub sent: u64,
    /// Messages not sent because the member's outbox was full or closed.
    pub not_queued: u64,
    /// Messages the server refused with `rate_limited`.
    pub rate_limited: u64,
    /// Error frames of any code received.
    pub errors: u64,
    /// Accepted messages times members (every member, the sender too, gets every message).
    pub expected_deliveries: u64,
    /// Bench messages the members received.
    pub deliveries: u64,
    /// Deliveries missing after the drain period, percent.
    pub loss_pct: f64,
    /// Deliveries per second over the sending window.
    pub deliveries_per_sec: f64,
}

/// LL-HLS: requests and parts over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HlsFigures {
    /// Parts received by all viewers.
    pub parts: u64,
    /// Parts per second, all viewers together.
    pub parts_per_sec: f64,
    /// Playlists received (blocking reloads included).
    pub playlists: u64,
    /// Requests that failed or got an error status.
    pub errors: u64,
    /// Times a viewer fell behind the listed parts and jumped to the live edge.
    pub resyncs: u64,
    /// Viewers that received no part in the window.
    pub viewers_starved: usize,
}
