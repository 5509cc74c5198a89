//! Load bench, scenario 3: one chat room over the chat WebSocket (`/ws/{room}`, DESIGN §4).
//! Members join (anonymous, as LL-HLS viewers do), then the room carries `messages_per_sec`
//! chat messages sent round-robin by the members; every member counts what it receives and the
//! delivery latency (each message carries its send instant), after a drain period loss is what
//! did not arrive. A server without the route gets a clear [`BenchError::Unsupported`].
//! Does network I/O; bounded by the member count, the message count and the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::procfs::{Sampler, cpu_between, wait_fds_settled};
use super::report::{
    Before, ChatFigures, HealthTimeline, LatencyReport, MsSummary, ScenarioReport, Sessions,
};
use super::{BenchError, PreparedPublisher, Target, check_time, server};
use crate::histogram::{Histogram, HistogramSnapshot};

/// Most members one run may ask for.
pub const MAX_MEMBERS: usize = 20_000;
/// Members joining per second, and WebSocket handshakes in flight.
const JOIN_RATE: f64 = 200.0;
const JOIN_CONCURRENCY: usize = 32;
/// How long one member may take to connect and get its welcome.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet time after the last message, for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(2);
/// Messages queued per member to send.
const OUTBOX: usize = 16;
/// Start of every bench message's text: `lt <run> <seq> <sent µs>`.
const MARK: &str = "\"text\":\"lt ";

/// Parameters of a chat run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatParams {
    /// Chat members.
    pub members: usize,
    /// Messages sent per second, across all members.
    pub messages_per_sec: f64,
    /// How long messages are sent.
    pub duration: Duration,
}

impl Default for ChatParams {
    /// 100 members, 10 messages/s, a 10 s window.
    fn default() -> Self {
        Self {
            members: 100,
            messages_per_sec: 10.0,
            duration: Duration::from_secs(10),
        }
    }
}

/// The chat WebSocket URL of the target's room.
pub fn websocket_url(target: &Target) -> String {
    let base = target.base_url.trim_end_matches('/');
    let base = base
        .strip_prefix("http")
        .map_or_else(|| base.to_owned(), |rest| format!("ws{rest}"));
    format!("{base}/ws/{}", target.room)
}

/// A plain `GET` on the WebSocket route: a server with the route refuses the missing upgrade
/// (400/426), one without it answers 404.
pub async fn require_websocket(target: &Target) -> Result<(), BenchError> {
    let url = format!(
        "{}/ws/{}",
        target.base_url.trim_end_matches('/'),
        target.room
    );
    match server::get_status(&url).await {
        Ok((404 | 405, body)) => Err(BenchError::Unsupported(format!(
            "scenario needs the chat WebSocket {url}, not served by this server: {body}"
        ))),
        Ok(_) => Ok(()),
        Err(error) => Err(BenchError::Unsupported(format!(
            "scenario needs the chat WebSocket {url}: {error}"
        ))),
    }
}

/// What one member saw; written by its task only, through atomics.
#[derive(Debug, Default)]
struct MemberStats {
    /// Connect to welcome, µs + 1 (0: no welcome yet).
    welcomed: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
    latency: Histogram,
}

struct Member {
    outbox: mpsc::Sender<String>,
    stats: Arc<MemberStats>,
    task: JoinHandle<()>,
}

/// The clock every message's send instant is written in (µs since the run began).
#[derive(Clone, Copy)]
struct Clock {
    epoch: Instant,
    run: u32,
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

impl MemberStats {
    /// Looks at one text frame: the welcome, a bench message of this run, or an error. Scans
    /// the JSON for a few markers instead of parsing it.
    fn on_frame(&self, text: &str, clock: Clock, connected: Instant) {
        if text.starts_with("{\"type\":\"welcome\"") {
            let us = connected.elapsed().as_micros() as u64 + 1;
            let _ = self
                .welcomed
                .compare_exchange(0, us, Ordering::Relaxed, Ordering::Relaxed);
        } else if text.starts_with("{\"type\":\"chat\"") {
            let Some(at) = text.find(MARK) else { return };
            let mut fields = text[at + MARK.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .map(str::parse::<u64>);
            if let (Some(Ok(run)), Some(Ok(_seq)), Some(Ok(sent))) =
                (fields.next(), fields.next(), fields.next())
                && run == u64::from(clock.run)
            {
                self.received.fetch_add(1, Ordering::Relaxed);
                self.latency.record(clock.now_us().saturating_sub(sent));
            }
        } else if text.starts_with("{\"type\":\"error\"") {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if text.contains("\"rate_limited\"") {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Opens one member's WebSocket and starts its task.
async fn connect(url: String, clock: Clock) -> Result<Member, String> {
    let connected = Instant::now();
    // Nagle off, as browsers do for WebSockets: a chat line must not wait for an ACK.
    let handshake = tokio_tungstenite::connect_async_with_config(url, None, true);
    let (socket, _) = tokio::time::timeout(JOIN_TIMEOUT, handshake)
        .await
        .map_err(|_| "WebSocket handshake timed out".to_owned())?
        .map_err(|e| match e {
            // A refusal says which limit in its JSON body (a server's `too_many_connections`).
            tokio_tungstenite::tungstenite::Error::Http(response) => format!(
                "WebSocket refused: HTTP {} {}",
                response.status(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
            ),
            e => format!("WebSocket: {e}"),
        })?;
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut rx) = mpsc::channel::<String>(OUTBOX);
    let stats = Arc::new(MemberStats::default());
    let task = tokio::spawn({
        let stats = Arc::clone(&stats);
        async move {
            loop {
                tokio::select! {
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => stats.on_frame(text.as_str(), clock, connected),
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                    out = rx.recv() => match out {
                        Some(text) => {
                            if sink.send(Message::text(text)).await.is_err() {
                                break;
                            }
                        }
                        None => {
                            let _ = sink.send(Message::Close(None)).await;
                            break;
                        }
                    },
                }
            }
        }
    });
    Ok(Member {
        outbox,
        stats,
        task,
    })
}

/// Runs scenario 3.
pub async fn run(
    target: &Target,
    _publisher: &PreparedPublisher,
    p: &ChatParams,
) -> Result<ScenarioReport, BenchError> {
    if !(1..=MAX_MEMBERS).contains(&p.members)
        || p.messages_per_sec.is_nan()
        || p.messages_per_sec <= 0.0
    {
        return Err(BenchError::Config(format!(
            "chat needs 1..={MAX_MEMBERS} members and a positive message rate"
        )));
    }
    check_time("the chat window", p.duration)?;
    require_websocket(target).await?;
    let sampler = Sampler::start(target.server_pid);
    let first = sampler.now();
    let health_before = server::healthz(&target.base_url).await;
    let clock = Clock {
        epoch: Instant::now(),
        run: rand::random(),
    };
    let mut sessions = Sessions {
        target: p.members,
        ..Sessions::default()
    };
    let members = join_members(&websocket_url(target), p.members, clock, &mut sessions).await;
    sessions.connected = members.len();
    if members.is_empty() {
        let why = sessions
            .failures
            .first()
            .map_or_else(|| "none attempted".to_owned(), |(m, _)| m.clone());
        return Err(BenchError::NoSessions(why));
    }
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    while members
        .iter()
        .any(|m| m.stats.welcomed.load(Ordering::Relaxed) == 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tracing::info!(
        members = members.len(),
        rate = p.messages_per_sec,
        "chatting"
    );
    let cpu_start = sampler.now();
    let (sent, not_queued) = send_messages(&members, p, clock).await;
    let cpu_end = sampler.now();
    let health_during = server::healthz(&target.base_url).await;
    tokio::time::sleep(DRAIN).await;

    let mut joins = HistogramSnapshot::default();
    let mut latency = HistogramSnapshot::default();
    let (mut received, mut rate_limited, mut errors) = (0u64, 0u64, 0u64);
    for m in &members {
        let welcomed = m.stats.welcomed.load(Ordering::Relaxed);
        if welcomed > 0 {
            joins.record(welcomed - 1);
        }
        m.stats.latency.add_to(&mut latency);
        received += m.stats.received.load(Ordering::Relaxed);
        rate_limited += m.stats.rate_limited.load(Ordering::Relaxed);
        errors += m.stats.errors.load(Ordering::Relaxed);
    }
    sessions.ready = joins.count() as usize;
    let n = members.len() as u64;
    close_members(members).await;
    let health_after = server::wait_viewers_at_most(
        &target.base_url,
        health_before.map_or(0, |h| h.viewers),
        Duration::from_secs(5),
    )
    .await;
    let fds_before = first.server.and_then(|s| s.fds);
    wait_fds_settled(target.server_pid, fds_before, Duration::from_secs(5)).await;
    let last = sampler.now();

    let accepted = sent.saturating_sub(rate_limited);
    let expected = accepted * n;
    let secs = cpu_end.at.saturating_sub(cpu_start.at).as_secs_f64();
    let chat = ChatFigures {
        sent,
        not_queued,
        rate_limited,
        errors,
        expected_deliveries: expected,
        deliveries: received,
        loss_pct: if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(received) as f64 / expected as f64
        },
        // Over the sending window (the drain adds the last milliseconds of deliveries).
        deliveries_per_sec: received as f64 / secs.max(1e-3),
    };
    Ok(ScenarioReport {
        sessions,
        window_secs: secs,
        join_ms: MsSummary::from_us(&joins),
        latency_ms: Some(LatencyReport::from_us(&latency, 0)),
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
        chat: Some(chat),
        keyframes: None,
        notes: vec!["join is WebSocket connect to welcome; latency is send to delivery".into()],
        ..ScenarioReport::default()
    })
}

/// Connects `count` members at [`JOIN_RATE`], [`JOIN_CONCURRENCY`] handshakes in flight.
async fn join_members(
    url: &str,
    count: usize,
    clock: Clock,
    sessions: &mut Sessions,
) -> Vec<Member> {
    let permits = Arc::new(Semaphore::new(JOIN_CONCURRENCY));
    let mut joins = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / JOIN_RATE)).await;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let url = url.to_owned();
        joins.spawn(async move {
            let member = connect(url, clock).await;
            drop(permit);
            member
        });
    }
    let mut members = Vec::with_capacity(count);
    while let Some(joined) = joins.join_next().await {
        match joined {
            Ok(Ok(member)) => members.push(member),
            Ok(Err(error)) => sessions.fail(error),
            Err(error) => sessions.fail(format!("member task: {error}")),
        }
    }
    members
}

/// Sends `rate x duration` messages round-robin over the members; returns (queued, not queued
/// because the member's outbox was full or closed).
async fn send_messages(members: &[Member], p: &ChatParams, clock: Clock) -> (u64, u64) {
    let total = (p.messages_per_sec * p.duration.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let start = tokio::time::Instant::now();
    let (mut sent, mut not_queued) = (0, 0);
    for seq in 0..total {
        let due = start + Duration::from_secs_f64(seq as f64 / p.messages_per_sec);
        tokio::time::sleep_until(due).await;
        let member = &members[(seq % members.len() as u64) as usize];
        let text = format!(
            r#"{{"type":"chat","text":"lt {} {seq} {}"}}"#,
            clock.run,
            clock.now_us()
        );
        match member.outbox.try_send(text) {
            Ok(()) => sent += 1,
            Err(_) => not_queued += 1,
        }
    }
    (sent, not_queued)
}

/// Closes every member (a close frame each), waiting at most 5 s before aborting the rest.
async fn close_members(members: Vec<Member>) {
    let mut tasks = Vec::with_capacity(members.len());
    for member in members {
        drop(member.outbox);
        tasks.push(member.task);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified_without_parsing_the_json() {
        let stats = MemberStats::default();
        let clock = Clock {
            epoch: Instant::now(),
            run: 7,
        };
        let connected = Instant::now();
        let welcome =
            r#"{"type":"welcome","you":{"id":"a"},"history":[{"type":"chat","text":"lt 7 1 0"}]}"#;
        stats.on_frame(welcome, clock, connected);
        assert!(stats.welcomed.load(Ordering::Relaxed) > 0);
        assert_eq!(
            stats.received.load(Ordering::Relaxed),
            0,
            "history is not a delivery"
        );
        let mine = r#"{"type":"chat","id":"m1","user":{"id":"u","name":"lt 9 9 9"},"text":"lt 7 42 0","ts":1}"#;
        stats.on_frame(mine, clock, connected);
        let other_run = r#"{"type":"chat","id":"m2","user":{"id":"u"},"text":"lt 8 43 0","ts":1}"#;
        stats.on_frame(other_run, clock, connected);
        let human = r#"{"type":"chat","id":"m3","user":{"id":"u"},"text":"hello","ts":1}"#;
        stats.on_frame(human, clock, connected);
        assert_eq!(stats.received.load(Ordering::Relaxed), 1);
        assert_eq!(stats.latency.count(), 1);
        let limited = r#"{"type":"error","code":"rate_limited","message":"slow down"}"#;
        stats.on_frame(limited, clock, connected);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rate_limited.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn websocket_urls_follow_the_base_scheme() {
        let target = Target {
            base_url: "http://127.0.0.1:8080/".into(),
            room: "r".into(),
            token: None,
            server_pid: None,
        };
        assert_eq!(websocket_url(&target), "ws://127.0.0.1:8080/ws/r");
    }
}
