//! CI smoke run of the load bench (issue 7): every scenario of `onair-loadtest bench` at a tiny
//! scale against the real server in-process — one publisher, three WHEP viewers for 3 s, five
//! churn cycles, and LL-HLS and chat where the server serves them — and a chat run that a server
//! limit refuses. Fails if the tool breaks; no timed assertions and no thresholds on the figures.

use crate::common;

use std::time::Duration;

use common::TestServer;
use onair::auth::Role;
use onair_loadtest::VideoConfig;
use onair_loadtest::bench::chat::ChatParams;
use onair_loadtest::bench::churn::ChurnParams;
use onair_loadtest::bench::fanout::FanoutParams;
use onair_loadtest::bench::hls::HlsParams;
use onair_loadtest::bench::{Noise, PublisherSpec, Scenario, Target, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bench_scenario_runs_at_tiny_scale() {
    let s = TestServer::start().await;
    let room = "bench";
    let target = Target {
        base_url: s.base.clone(),
        room: room.to_owned(),
        token: Some(s.token(room, Role::Broadcaster, "bench")),
        // The server runs in this process: its /proc figures are this test's.
        server_pid: Some(std::process::id()),
    };
    let publisher = PublisherSpec {
        video: VideoConfig {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_bps: 500_000,
            keyframe_interval_frames: 60,
        },
        loop_frames: 60,
        noise: Noise::MatchBitrate,
        audio: true,
    }
    .prepare()
    .expect("the publisher's loop encodes");
    let window = Duration::from_secs(3);
    let scenarios = [
        Scenario::Fanout(FanoutParams {
            viewers: 3,
            ramp_per_sec: 10.0,
            connect_concurrency: 3,
            duration: window,
            join_timeout: Duration::from_secs(20),
        }),
        Scenario::Churn(ChurnParams {
            cycles: 5,
            warmup: 1,
            parallel: 2,
            keyframe_timeout: Duration::from_secs(20),
            max_duration: Duration::from_secs(300),
        }),
        Scenario::Hls(HlsParams {
            viewers: 3,
            duration: window,
        }),
        Scenario::Chat(ChatParams {
            members: 3,
            messages_per_sec: 3.0,
            duration: window,
        }),
    ];
    let report = run_all(&target, &publisher, &scenarios, Duration::from_millis(500)).await;
    let table = report.table();
    println!("{table}");
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    assert_eq!(report.runs.len(), scenarios.len(), "{json}");

    let fanout = report.runs[0].report.as_ref().expect("fan-out ran");
    assert_eq!(fanout.sessions.connected, 3, "{table}");
    assert_eq!(fanout.sessions.ready, 3, "{table}");
    assert!(fanout.join_ms.is_some(), "{table}");
    assert!(fanout.latency_ms.expect("latency").samples > 0, "{table}");
    assert!(fanout.loss.expect("loss").video_packets > 0, "{table}");
    let health = fanout.health.during.expect("onair serves /healthz");
    assert_eq!((health.publishers, health.viewers), (1, 3), "{table}");
    assert!(fanout.server.is_some() && fanout.cpu.is_some(), "{table}");
    // Every viewer started at a keyframe, so the publisher sent at least one; the figures
    // cover the whole run.
    let keyframes = fanout.keyframes.expect("keyframe load");
    assert_eq!(keyframes.joins, 3, "{table}");
    assert!(keyframes.keyframes_sent >= 1, "{table}");
    assert!(keyframes.frames_sent >= keyframes.keyframes_sent, "{table}");

    let churn = report.runs[1].report.as_ref().expect("churn ran");
    let figures = churn.churn.expect("churn figures");
    assert_eq!(figures.completed, 5, "{table}");
    assert!(figures.fd_growth.is_some(), "{table}");

    // LL-HLS and chat depend on features that may not be served yet: either they ran, or they
    // said clearly what the server lacks. Anything else is the tool breaking.
    for run in &report.runs[2..] {
        match run.status {
            "ok" => {
                let r = run.report.as_ref().expect("figures of a run that went ok");
                assert_eq!(r.sessions.connected, 3, "{table}");
                if let Some(chat) = r.chat {
                    assert!(chat.deliveries > 0, "{table}");
                }
            }
            "unsupported" => assert!(run.error.is_some(), "{json}"),
            _ => panic!("{} failed: {:?}\n{table}", run.label, run.error),
        }
    }
    s.stop().await;
}

/// A server limit refusing the bench's chat members shows in the report with the server's own
/// error code, not as a bare handshake failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_run_refused_by_a_limit_reports_the_servers_error() {
    let s = TestServer::start_with(|c| c.limits.chat_sockets_per_ip = 2).await;
    let room = "bench";
    let target = Target {
        base_url: s.base.clone(),
        room: room.to_owned(),
        token: Some(s.token(room, Role::Broadcaster, "bench")),
        server_pid: None,
    };
    let publisher = PublisherSpec {
        video: VideoConfig {
            width: 160,
            height: 120,
            fps: 30,
            bitrate_bps: 200_000,
            keyframe_interval_frames: 30,
        },
        loop_frames: 30,
        noise: Noise::Off,
        audio: false,
    }
    .prepare()
    .expect("the publisher's loop encodes");
    let chat = Scenario::Chat(ChatParams {
        members: 3,
        messages_per_sec: 2.0,
        duration: Duration::from_secs(1),
    });
    let report = run_all(&target, &publisher, &[chat], Duration::from_millis(100)).await;
    let json = serde_json::to_string(&report).expect("the report serializes");
    let sessions = &report.runs[0]
        .report
        .as_ref()
        .expect("the run has figures")
        .sessions;
    assert_eq!((sessions.connected, sessions.failed), (2, 1), "{json}");
    let (message, count) = &sessions.failures[0];
    assert_eq!(*count, 1, "{json}");
    assert!(
        message.contains("429") && message.contains("too_many_connections"),
        "{json}"
    );
    s.stop().await;
}
