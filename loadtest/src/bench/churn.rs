//! Load bench, scenario 4: viewer churn. M cycles of WHEP POST, connect, receive a keyframe,
//! DELETE, run by a few parallel workers while one publisher stays live; the server's sessions
//! (`/healthz`), file descriptors and RSS are read before (after a warm-up) and after, so a
//! leak shows as growth. Does network and `/proc` I/O; bounded by the cycle count and a
//! wall-clock limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use super::join::{self, JoinTimes};
use super::procfs::{Sampler, cpu_between, wait_fds_settled};
use super::report::{Before, ChurnFigures, HealthTimeline, KeyframeLoad, ScenarioReport, Sessions};
use super::{BenchError, PreparedPublisher, Target, check_time, server};
use crate::whep::ViewerStats;

/// Most cycles one run may ask for.
pub const MAX_CYCLES: usize = 1_000_000;
/// How long the server may take to drop closed sessions before "after" is read.
const SETTLE: Duration = Duration::from_secs(10);

/// Parameters of a churn run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnParams {
    /// Join/leave cycles measured.
    pub cycles: usize,
    /// Cycles run before the "before" figures are taken (allocator and pool warm-up).
    pub warmup: usize,
    /// Workers cycling at the same time.
    pub parallel: usize,
    /// How long one cycle may wait to connect, and then for its keyframe.
    pub keyframe_timeout: Duration,
    /// Wall-clock limit of the measured cycles; cycles not started by then are not run.
    pub max_duration: Duration,
}

impl Default for ChurnParams {
    /// 1,000 cycles after 50 warm-up cycles, 4 workers, 10 s per step, at most one hour.
    fn default() -> Self {
        Self {
            cycles: 1_000,
            warmup: 50,
            parallel: 4,
            keyframe_timeout: Duration::from_secs(10),
            max_duration: Duration::from_secs(3600),
        }
    }
}

/// Runs scenario 4.
pub async fn run(
    target: &Target,
    publisher: &PreparedPublisher,
    p: &ChurnParams,
) -> Result<ScenarioReport, BenchError> {
    if !(1..=MAX_CYCLES).contains(&p.cycles) || p.warmup > MAX_CYCLES || p.parallel == 0 {
        return Err(BenchError::Config(format!(
            "churn needs 1..={MAX_CYCLES} cycles, at most as many warm-up cycles, 1+ workers"
        )));
    }
    check_time("the churn time limit", p.max_duration)?;
    check_time("the keyframe timeout", p.keyframe_timeout)?;
    let sampler = Sampler::start(target.server_pid);
    let health_start = server::healthz(&target.base_url).await;
    let publisher_session = publisher.start(target, None).await?;

    if p.warmup > 0 {
        tracing::info!(cycles = p.warmup, "churn warm-up");
        run_cycles(target, p.warmup, p, p.max_duration).await;
    }
    let baseline = server::wait_viewers_at_most(
        &target.base_url,
        health_start.map_or(0, |h| h.viewers),
        SETTLE,
    )
    .await;
    wait_fds_settled(target.server_pid, None, SETTLE).await;
    let before = sampler.now();

    tracing::info!(cycles = p.cycles, parallel = p.parallel, "churn");
    let outcome = run_cycles(target, p.cycles, p, p.max_duration).await;
    let cycles_end = sampler.now();

    let health_after =
        server::wait_viewers_at_most(&target.base_url, baseline.map_or(0, |h| h.viewers), SETTLE)
            .await;
    let after = sampler.now();
    let keyframes = KeyframeLoad::from_stats(&publisher_session.stats(), p.warmup + p.cycles);
    let mut notes = Vec::new();
    if let Err(error) = publisher_session.close().await {
        notes.push(format!("publisher DELETE failed: {error}"));
    }
    if outcome.sessions.connected == 0 {
        let why = outcome
            .sessions
            .failures
            .first()
            .map_or_else(|| "none attempted".to_owned(), |(m, _)| m.clone());
        return Err(BenchError::NoSessions(why));
    }

    let secs = cycles_end.at.saturating_sub(before.at).as_secs_f64();
    let server = before
        .server
        .zip(after.server)
        .map(|(before, after)| Before { before, after });
    let growth = |a: Option<u64>, b: Option<u64>| Some(b? as i64 - a? as i64);
    let churn = ChurnFigures {
        cycles: p.cycles,
        warmup_cycles: p.warmup,
        completed: outcome.completed,
        rss_growth_pct: server
            .filter(|s| s.before.rss_kib > 0)
            .map(|s| 100.0 * (s.after.rss_kib as f64 / s.before.rss_kib as f64 - 1.0)),
        fd_growth: server.and_then(|s| growth(s.before.fds, s.after.fds)),
        session_growth: growth(baseline.map(|h| h.viewers), health_after.map(|h| h.viewers)),
        cycles_per_sec: outcome.completed as f64 / secs.max(1e-3),
    };
    Ok(ScenarioReport {
        sessions: Sessions {
            ready: outcome.joins.with_keyframe(),
            ..outcome.sessions
        },
        window_secs: secs,
        join_ms: outcome.joins.summary(),
        join_steps_p50_ms: outcome.joins.steps(0.5),
        join_steps_p95_ms: outcome.joins.steps(0.95),
        loss: None,
        latency_ms: None,
        throughput: None,
        cpu: Some(cpu_between(&before, &cycles_end)),
        server_cpu_peak_cores: sampler.peak_cores(before.at, cycles_end.at),
        server,
        generator: Some(Before {
            before: before.generator,
            after: after.generator,
        }),
        health: HealthTimeline {
            before: health_start,
            during: baseline,
            after: health_after,
        },
        churn: Some(churn),
        chat: None,
        hls: None,
        keyframes: Some(keyframes),
        notes,
    })
}

/// What a batch of cycles did.
#[derive(Debug, Default)]
struct Outcome {
    sessions: Sessions,
    joins: JoinTimes,
    completed: usize,
}

/// Runs `cycles` cycles on `p.parallel` workers; cycles not started within `limit` are skipped
/// (and counted as failed).
async fn run_cycles(target: &Target, cycles: usize, p: &ChurnParams, limit: Duration) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + limit;
    let mut workers = JoinSet::new();
    for _ in 0..p.parallel.min(cycles) {
        let next = Arc::clone(&next);
        let target = target.clone();
        let timeout = p.keyframe_timeout;
        workers.spawn(async move {
            let mut done: Vec<Result<ViewerStats, String>> = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < cycles
                && tokio::time::Instant::now() < deadline
            {
                done.push(cycle(&target, timeout).await);
            }
            done
        });
    }
    let mut outcome = Outcome {
        sessions: Sessions {
            target: cycles,
            ..Sessions::default()
        },
        ..Outcome::default()
    };
    let mut finished = 0;
    while let Some(worker) = workers.join_next().await {
        let Ok(results) = worker else {
            outcome.sessions.fail("churn worker panicked".into());
            continue;
        };
        for result in results {
            finished += 1;
            match result {
                Ok(stats) => {
                    outcome.sessions.connected += 1;
                    outcome.completed += 1;
                    outcome.joins.add(&stats);
                }
                Err(error) => outcome.sessions.fail(error),
            }
        }
    }
    for _ in finished..cycles {
        outcome
            .sessions
            .fail("not started before the time limit".into());
    }
    outcome
}

/// One join/leave cycle: POST, connect, first keyframe, DELETE.
async fn cycle(target: &Target, timeout: Duration) -> Result<ViewerStats, String> {
    let viewer = join::join(join::view_options(target, None), timeout).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    while viewer.first_keyframe_at().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = viewer.stats();
    let closed = viewer.close().await;
    if stats.video.first_keyframe_at.is_none() {
        return Err(format!("no keyframe within {timeout:?}"));
    }
    closed.map_err(|e| format!("DELETE: {e}"))?;
    Ok(stats)
}
