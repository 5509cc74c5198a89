//! Load bench, scenario 2: LL-HLS viewers ([`crate::hls`], loading like hls.js) of the
//! bench's publisher at `{base}/hls/{room}/index.m3u8` (DESIGN §4). Viewers join at a set rate,
//! then a window counts parts, playlists, errors and each part's latency after its end (on
//! the program date-time clock, which onair anchors at arrival). A server without LL-HLS gets a
//! clear [`BenchError::Unsupported`]. Does network I/O; bounded by the viewer count and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::procfs::{Sampler, cpu_between, wait_fds_settled};
use super::report::{
    Before, HealthTimeline, HlsFigures, LatencyReport, MsSummary, ScenarioReport, Sessions,
    Throughput,
};
use super::{BenchError, PreparedPublisher, Target, check_time, server};
use crate::histogram::HistogramSnapshot;
use crate::hls::playlist::{MediaPlaylist, Multivariant};
use crate::hls::{HlsViewerStats, Until, run_viewer};

/// Most viewers one run may ask for.
pub const MAX_VIEWERS: usize = 20_000;
/// How long a playlist may take to appear after the publisher went live.
const PLAYLIST_WAIT: Duration = Duration::from_secs(10);
/// Viewers started per second, and their first requests in flight.
const JOIN_RATE: f64 = 200.0;
const JOIN_CONCURRENCY: usize = 64;
/// Time after the ramp for every viewer to reach the live edge.
const SETTLE: Duration = Duration::from_secs(3);
/// Extra time a viewer may live past the planned end (an overloaded machine ramps slowly).
const RAMP_SLACK: Duration = Duration::from_secs(60);

/// Parameters of an LL-HLS run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HlsParams {
    /// LL-HLS viewers.
    pub viewers: usize,
    /// The measuring window.
    pub duration: Duration,
}

impl Default for HlsParams {
    /// 100 viewers, a 10 s window.
    fn default() -> Self {
        Self {
            viewers: 100,
            duration: Duration::from_secs(10),
        }
    }
}

/// The multivariant playlist URL of the target's room.
pub fn playlist_url(target: &Target) -> String {
    format!(
        "{}/hls/{}/index.m3u8",
        target.base_url.trim_end_matches('/'),
        target.room
    )
}

/// Publishes, then polls (every 250 ms, at most 10 s) until the multivariant playlist is
/// served and reflects this publisher: its video playlist lists a part that ends after the
/// publisher went live (a stream from an earlier session of the room may still be served), and,
/// when the publisher sends audio, an audio rendition is listed (else every viewer would not
/// follow the same renditions). Returns the publisher and whether an audio rendition is
/// listed; [`BenchError::Unsupported`] naming the last answer if the playlist is never served.
pub async fn require_playlist(
    target: &Target,
    publisher: &PreparedPublisher,
) -> Result<(crate::Publisher, bool), BenchError> {
    let session = publisher.start(target, None).await?;
    let live_since = unix_ms();
    let url = playlist_url(target);
    let deadline = tokio::time::Instant::now() + PLAYLIST_WAIT;
    let last = loop {
        let answer = server::get_status(&url).await;
        let timed_out = tokio::time::Instant::now() >= deadline;
        if let Ok((200, body)) = &answer {
            let audio = body.contains("TYPE=AUDIO");
            let audio_ok = !publisher.info.audio || audio;
            if timed_out || (audio_ok && is_fresh(&url, body, live_since).await) {
                return Ok((session, audio));
            }
        }
        if timed_out {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = session.close().await;
    let answer = match last {
        Ok((status, body)) => format!("HTTP {status} {body}"),
        Err(error) => error,
    };
    Err(BenchError::Unsupported(format!(
        "scenario needs /hls (LL-HLS at {url}), not served by this server: {answer}"
    )))
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Whether the first variant's newest part ends after `since` (Unix ms); a playlist without
/// program date-times counts as fresh.
async fn is_fresh(multivariant: &str, body: &str, since: f64) -> bool {
    let Ok(variants) = Multivariant::parse(body) else {
        return false;
    };
    let Some(video) = variants.variants.first() else {
        return false;
    };
    let Some(url) = reqwest::Url::parse(multivariant)
        .ok()
        .and_then(|base| base.join(video).ok())
    else {
        return false;
    };
    let Ok((200, text)) = server::get_text(url.as_str()).await else {
        return false;
    };
    match MediaPlaylist::parse(&text) {
        Ok(p) => p
            .parts()
            .last()
            .is_some_and(|part| part.end_ms.is_none_or(|end| end > since)),
        Err(_) => false,
    }
}

/// Every viewer's counters at one instant.
struct Window {
    parts: u64,
    bytes: u64,
    playlists: u64,
    errors: u64,
    resyncs: u64,
    early: u64,
    latency: HistogramSnapshot,
    per_viewer_parts: Vec<u64>,
}

impl Window {
    fn take(viewers: &[Arc<HlsViewerStats>]) -> Self {
        let load = |f: fn(&HlsViewerStats) -> &std::sync::atomic::AtomicU64| {
            viewers
                .iter()
                .map(|v| f(v).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let mut latency = HistogramSnapshot::default();
        for v in viewers {
            v.part_latency.add_to(&mut latency);
        }
        Self {
            parts: load(|v| &v.parts),
            bytes: load(|v| &v.bytes),
            playlists: load(|v| &v.playlists),
            errors: load(|v| &v.errors),
            resyncs: load(|v| &v.resyncs),
            early: load(|v| &v.early),
            latency,
            per_viewer_parts: viewers
                .iter()
                .map(|v| v.parts.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// Runs scenario 2.
pub async fn run(
    target: &Target,
    publisher: &PreparedPublisher,
    p: &HlsParams,
) -> Result<ScenarioReport, BenchError> {
    if !(1..=MAX_VIEWERS).contains(&p.viewers) {
        return Err(BenchError::Config(format!(
            "LL-HLS needs 1..={MAX_VIEWERS} viewers"
        )));
    }
    check_time("the LL-HLS window", p.duration)?;
    let sampler = Sampler::start(target.server_pid);
    let first = sampler.now();
    let health_before = server::healthz(&target.base_url).await;
    let (session, audio_listed) = require_playlist(target, publisher).await?;
    let url = reqwest::Url::parse(&playlist_url(target))
        .map_err(|e| BenchError::Config(format!("playlist URL: {e}")))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| BenchError::Config(format!("HTTP client: {e}")))?;

    let ramp = Duration::from_secs_f64(p.viewers as f64 / JOIN_RATE);
    // Every viewer ends by itself at this deadline even if the window were never reached.
    let deadline = tokio::time::Instant::now() + ramp * 4 + SETTLE + p.duration + RAMP_SLACK;
    let stop = Arc::new(AtomicBool::new(false));
    let stats: Vec<Arc<HlsViewerStats>> = (0..p.viewers)
        .map(|_| Arc::new(HlsViewerStats::default()))
        .collect();
    let permits = Arc::new(Semaphore::new(JOIN_CONCURRENCY));
    let mut viewers = JoinSet::new();
    let start = tokio::time::Instant::now();
    for (i, viewer) in stats.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / JOIN_RATE)).await;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let (client, url, viewer) = (client.clone(), url.clone(), Arc::clone(viewer));
        let stop = Arc::clone(&stop);
        viewers.spawn(async move {
            let until = Until {
                stop: &stop,
                deadline,
            };
            // The permit covers the start: released at the first part (or the end).
            let started = async {
                while viewer.first_part.load(Ordering::Relaxed) == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let run = run_viewer(client, url, &viewer, until);
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => { drop(permit); return result; }
                () = started => drop(permit),
            }
            run.await
        });
    }
    tokio::time::sleep(SETTLE).await;
    let begin = Window::take(&stats);
    let cpu_start = sampler.now();
    tokio::time::sleep(p.duration).await;
    let cpu_end = sampler.now();
    let end = Window::take(&stats);
    let health_during = server::healthz(&target.base_url).await;

    let mut sessions = Sessions {
        target: p.viewers,
        ..Sessions::default()
    };
    stop.store(true, Ordering::Relaxed);
    let finish = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(done)) = tokio::time::timeout_at(finish, viewers.join_next()).await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => sessions.fail(error),
            Err(error) => sessions.fail(format!("viewer task: {error}")),
        }
    }
    viewers.abort_all();
    // Its idle keep-alive connections would count as the server's descriptors.
    drop(client);
    let mut notes = Vec::new();
    let early = end.early.saturating_sub(begin.early);
    if early * 10 > end.parts.saturating_sub(begin.parts) {
        notes.push(format!(
            "{early} parts arrived before their end by the program date-time: the server's \
             date-times are off this machine's clock, so the part latency is not meaningful"
        ));
    }
    if publisher.info.audio && !audio_listed {
        notes.push("the publisher sends audio but the playlist lists no audio rendition".into());
    }
    if let Err(error) = session.close().await {
        notes.push(format!("publisher DELETE failed: {error}"));
    }
    let fds_before = first.server.and_then(|s| s.fds);
    wait_fds_settled(target.server_pid, fds_before, Duration::from_secs(10)).await;
    let last = sampler.now();

    let mut joins = HistogramSnapshot::default();
    for v in &stats {
        let at = v.first_part.load(Ordering::Relaxed);
        if at > 0 {
            joins.record(at - 1);
        }
    }
    sessions.connected = p.viewers - sessions.failed;
    sessions.ready = joins.count() as usize;
    if sessions.ready == 0 {
        let why = sessions.failures.first().map_or_else(
            || "no viewer received a part".to_owned(),
            |(m, _)| m.clone(),
        );
        return Err(BenchError::NoSessions(why));
    }
    let secs = cpu_end
        .at
        .saturating_sub(cpu_start.at)
        .as_secs_f64()
        .max(1e-3);
    let parts = end.parts.saturating_sub(begin.parts);
    let bytes = end.bytes.saturating_sub(begin.bytes);
    let starved = end
        .per_viewer_parts
        .iter()
        .zip(&begin.per_viewer_parts)
        .filter(|(b, a)| b == a)
        .count();
    notes.push(
        "join is multivariant request to first part; latency is part end (PDT) to arrival".into(),
    );
    Ok(ScenarioReport {
        sessions,
        window_secs: secs,
        join_ms: MsSummary::from_us(&joins),
        latency_ms: Some(LatencyReport::from_us(
            &end.latency.since(&begin.latency),
            0,
        )),
        throughput: Some(Throughput {
            publisher_video_kbps: publisher.info.loop_bitrate_bps as f64 / 1000.0,
            received_mbps: bytes as f64 * 8.0 / 1e6 / secs,
            received_packets_per_sec: 0.0,
            per_viewer_kbps: bytes as f64 * 8.0 / 1e3 / secs / p.viewers as f64,
        }),
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
            after: server::healthz(&target.base_url).await,
        },
        hls: Some(HlsFigures {
            parts,
            parts_per_sec: parts as f64 / secs,
            playlists: end.playlists.saturating_sub(begin.playlists),
            errors: end.errors.saturating_sub(begin.errors),
            resyncs: end.resyncs.saturating_sub(begin.resyncs),
            viewers_starved: starved,
        }),
        keyframes: None,
        notes,
        ..ScenarioReport::default()
    })
}
