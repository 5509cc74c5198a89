//! Load bench, scenario 1: one publisher to N non-decoding WHEP viewers. Viewers join at a set
//! rate (bounded connects in flight), then a measuring window records loss (sequence gaps),
//! per-packet forwarding latency (through the shared [`LatencyProbe`]), throughput and the
//! server's CPU; join time is POST to the first keyframe packet. Does network I/O; bounded by
//! the viewer count, the ramp, the join timeout and the window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::join::{self, JoinTimes};
use super::procfs::{Sampler, cpu_between, wait_fds_settled};
use super::report::{
    Before, HealthTimeline, KeyframeLoad, LatencyReport, Loss, ScenarioReport, Sessions, Throughput,
};
use super::{BenchError, PreparedPublisher, Target, check_time, server};
use crate::histogram::HistogramSnapshot;
use crate::probe::LatencyProbe;
use crate::whep::{Viewer, ViewerStats};

/// Most viewers one run may ask for.
pub const MAX_VIEWERS: usize = 20_000;

/// Parameters of a fan-out run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanoutParams {
    /// WHEP viewers.
    pub viewers: usize,
    /// Viewers started per second during the ramp.
    pub ramp_per_sec: f64,
    /// Most joins (POST to `Connected`) in flight at once.
    pub connect_concurrency: usize,
    /// The measuring window, after the ramp.
    pub duration: Duration,
    /// How long one viewer may take to connect, and all of them to receive a keyframe.
    pub join_timeout: Duration,
}

impl Default for FanoutParams {
    /// 100 viewers at 50/s, 16 joins in flight, a 10 s window, 10 s join timeout.
    fn default() -> Self {
        Self {
            viewers: 100,
            ramp_per_sec: 50.0,
            connect_concurrency: 16,
            duration: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
        }
    }
}

/// Runs scenario 1.
pub async fn run(
    target: &Target,
    publisher: &PreparedPublisher,
    p: &FanoutParams,
) -> Result<ScenarioReport, BenchError> {
    if !(1..=MAX_VIEWERS).contains(&p.viewers) || p.ramp_per_sec.is_nan() || p.ramp_per_sec <= 0.0 {
        return Err(BenchError::Config(format!(
            "fan-out needs 1..={MAX_VIEWERS} viewers and a positive ramp rate"
        )));
    }
    check_time("the fan-out window", p.duration)?;
    check_time("the join timeout", p.join_timeout)?;
    let sampler = Sampler::start(target.server_pid);
    let health_before = server::healthz(&target.base_url).await;
    let first = sampler.now();
    let probe = Arc::new(LatencyProbe::new());
    let publisher_session = publisher.start(target, Some(Arc::clone(&probe))).await?;

    let mut sessions = Sessions {
        target: p.viewers,
        ..Sessions::default()
    };
    let viewers = ramp(target, p, &probe, &mut sessions).await;
    sessions.connected = viewers.len();
    if viewers.is_empty() {
        let _ = publisher_session.close().await;
        let why = sessions
            .failures
            .first()
            .map_or_else(|| "none attempted".to_owned(), |(m, _)| m.clone());
        return Err(BenchError::NoSessions(why));
    }
    join::wait_keyframes(&viewers, p.join_timeout).await;

    tracing::info!(viewers = viewers.len(), window = ?p.duration, "measuring");
    let start = Window::take(&viewers);
    let publisher_start = publisher_session.stats();
    let cpu_start = sampler.now();
    tokio::time::sleep(p.duration).await;
    let cpu_end = sampler.now();
    let publisher_end = publisher_session.stats();
    let end = Window::take(&viewers);
    let keyframes = KeyframeLoad::from_stats(&publisher_end, sessions.target);
    let health_during = server::healthz(&target.base_url).await;

    let mut notes = Vec::new();
    let failed_closes = join::close_all(viewers).await;
    if failed_closes > 0 {
        notes.push(format!("{failed_closes} viewer DELETEs failed"));
    }
    if let Err(error) = publisher_session.close().await {
        notes.push(format!("publisher DELETE failed: {error}"));
    }
    let baseline = health_before.map_or(0, |h| h.viewers);
    let health_after =
        server::wait_viewers_at_most(&target.base_url, baseline, Duration::from_secs(10)).await;
    let fds_before = first.server.and_then(|s| s.fds);
    wait_fds_settled(target.server_pid, fds_before, Duration::from_secs(10)).await;
    let last = sampler.now();

    let mut joins = JoinTimes::default();
    for stats in &end.stats {
        joins.add(stats);
    }
    sessions.ready = joins.with_keyframe();
    let secs = cpu_end.at.saturating_sub(cpu_start.at).as_secs_f64();
    let latency = end.latency.since(&start.latency);
    let unmatched = end.unmatched.saturating_sub(start.unmatched);
    if latency.count() == 0 && unmatched > 0 {
        notes.push("no packet matched: the server re-packetizes, latency unknown".into());
    }
    Ok(ScenarioReport {
        sessions,
        window_secs: secs,
        join_ms: joins.summary(),
        join_steps_p50_ms: joins.steps(0.5),
        join_steps_p95_ms: joins.steps(0.95),
        loss: Some(loss(&start.stats, &end.stats)),
        latency_ms: Some(LatencyReport::from_us(&latency, unmatched)),
        throughput: Some(throughput(&start.stats, &end.stats, secs, {
            let bytes = publisher_end
                .video_bytes_sent
                .saturating_sub(publisher_start.video_bytes_sent);
            bytes as f64 * 8.0 / 1000.0 / secs.max(1e-3)
        })),
        cpu: Some(cpu_between(&cpu_start, &cpu_end)),
        server_cpu_peak_cores: sampler.peak_cores(first.at, last.at),
        server: first
            .server
            .zip(last.server)
            .map(|(before, after)| Before { before, after }),
        generator: Some(Before {
            before: first.generator,
            after: last.generator,
        }),
        health: HealthTimeline {
            before: health_before,
            during: health_during,
            after: health_after,
        },
        churn: None,
        chat: None,
        hls: None,
        keyframes: Some(keyframes),
        notes,
    })
}

/// Starts `p.viewers` joins at `p.ramp_per_sec`, at most `p.connect_concurrency` in flight,
/// and returns the viewers that connected; failures are counted in `sessions`.
async fn ramp(
    target: &Target,
    p: &FanoutParams,
    probe: &Arc<LatencyProbe>,
    sessions: &mut Sessions,
) -> Vec<Viewer> {
    let permits = Arc::new(Semaphore::new(p.connect_concurrency.max(1)));
    let mut joins = JoinSet::new();
    let start = tokio::time::Instant::now();
    let ramp_time = Duration::from_secs_f64(p.viewers as f64 / p.ramp_per_sec);
    // Every join ends by itself (join timeout plus the client's request timeouts); this only
    // bounds the ramp if the runtime were starved.
    let deadline = start + ramp_time + p.join_timeout * 3 + Duration::from_secs(60);
    for i in 0..p.viewers {
        let due = start + Duration::from_secs_f64(i as f64 / p.ramp_per_sec);
        tokio::time::sleep_until(due).await;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let opts = join::view_options(target, Some(Arc::clone(probe)));
        let timeout = p.join_timeout;
        joins.spawn(async move {
            let joined = join::join(opts, timeout).await;
            drop(permit);
            joined
        });
        if (i + 1) % 100 == 0 {
            tracing::info!(started = i + 1, of = p.viewers, "ramp");
        }
    }
    let mut viewers = Vec::with_capacity(p.viewers);
    loop {
        match tokio::time::timeout_at(deadline, joins.join_next()).await {
            Ok(Some(Ok(Ok(viewer)))) => viewers.push(viewer),
            Ok(Some(Ok(Err(error)))) => sessions.fail(error),
            Ok(Some(Err(error))) => sessions.fail(format!("join task: {error}")),
            Ok(None) => break,
            Err(_) => {
                for _ in 0..joins.len() {
                    sessions.fail("join did not finish before the ramp deadline".into());
                }
                joins.abort_all();
                break;
            }
        }
    }
    viewers
}

/// Every viewer's counters at one instant, and the merged latency histogram.
struct Window {
    stats: Vec<ViewerStats>,
    latency: HistogramSnapshot,
    unmatched: u64,
}

impl Window {
    fn take(viewers: &[Viewer]) -> Self {
        let mut latency = HistogramSnapshot::default();
        let mut stats = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            if let Some(h) = viewer.latency_histogram() {
                h.add_to(&mut latency);
            }
            stats.push(viewer.stats());
        }
        let unmatched = stats.iter().map(|s| s.latency.unmatched).sum();
        Self {
            stats,
            latency,
            unmatched,
        }
    }
}

fn pct(lost: u64, received: u64) -> f64 {
    let expected = lost + received;
    if expected == 0 {
        0.0
    } else {
        100.0 * lost as f64 / expected as f64
    }
}

/// Gaps over the window, per viewer then summed.
fn loss(start: &[ViewerStats], end: &[ViewerStats]) -> Loss {
    let mut l = Loss::default();
    for (a, b) in start.iter().zip(end) {
        let video = b.video.packets.saturating_sub(a.video.packets);
        let video_gaps = b.video.seq_gaps.saturating_sub(a.video.seq_gaps);
        let audio = b.audio.packets.saturating_sub(a.audio.packets);
        let audio_gaps = b.audio.seq_gaps.saturating_sub(a.audio.seq_gaps);
        l.video_packets += video;
        l.video_gaps += video_gaps;
        l.audio_packets += audio;
        l.audio_gaps += audio_gaps;
        l.viewers_with_loss += usize::from(video_gaps + audio_gaps > 0);
        l.viewers_starved += usize::from(video == 0);
    }
    l.video_pct = pct(l.video_gaps, l.video_packets);
    l.audio_pct = pct(l.audio_gaps, l.audio_packets);
    l.total_pct = pct(
        l.video_gaps + l.audio_gaps,
        l.video_packets + l.audio_packets,
    );
    l
}

/// Rates over the window.
fn throughput(
    start: &[ViewerStats],
    end: &[ViewerStats],
    secs: f64,
    publisher_video_kbps: f64,
) -> Throughput {
    let (mut bytes, mut packets) = (0u64, 0u64);
    for (a, b) in start.iter().zip(end) {
        bytes += b.video.bytes.saturating_sub(a.video.bytes);
        bytes += b.audio.bytes.saturating_sub(a.audio.bytes);
        packets += b.video.packets.saturating_sub(a.video.packets);
        packets += b.audio.packets.saturating_sub(a.audio.packets);
    }
    let secs = secs.max(1e-3);
    let viewers = end.len().max(1) as f64;
    Throughput {
        publisher_video_kbps,
        received_mbps: bytes as f64 * 8.0 / 1e6 / secs,
        received_packets_per_sec: packets as f64 / secs,
        per_viewer_kbps: bytes as f64 * 8.0 / 1e3 / secs / viewers,
    }
}
