//! Test/load client tests: the load bench against the in-process forwarder in `support` — a
//! WHIP/WHEP server that is not onair (own SSRCs and sequence numbers, no `/healthz`, no
//! LL-HLS, no chat WebSocket) — at a tiny scale. Checks that the tool works, not how fast the
//! forwarder is: no timed assertions.

mod support;

use std::time::Duration;

use onair_loadtest::VideoConfig;
use onair_loadtest::bench::chat::ChatParams;
use onair_loadtest::bench::churn::ChurnParams;
use onair_loadtest::bench::fanout::FanoutParams;
use onair_loadtest::bench::hls::HlsParams;
use onair_loadtest::bench::{Noise, PublisherSpec, Scenario, Target, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scenarios_run_against_another_forwarder() {
    let base = support::start().await;
    let target = Target {
        base_url: base,
        room: "loop".to_owned(),
        token: Some(support::TOKEN.to_owned()),
        // The forwarder runs in this process: sample it.
        server_pid: Some(std::process::id()),
    };
    let publisher = PublisherSpec {
        video: VideoConfig {
            width: 320,
            height: 180,
            fps: 15,
            bitrate_bps: 300_000,
            keyframe_interval_frames: 30,
        },
        loop_frames: 30,
        noise: Noise::MatchBitrate,
        audio: true,
    }
    .prepare()
    .expect("loop encodes");
    assert!(publisher.info.loop_bitrate_bps > 0);
    let scenarios = [
        Scenario::Fanout(FanoutParams {
            viewers: 3,
            ramp_per_sec: 10.0,
            connect_concurrency: 2,
            duration: Duration::from_secs(2),
            join_timeout: Duration::from_secs(15),
        }),
        Scenario::Churn(ChurnParams {
            cycles: 3,
            warmup: 1,
            parallel: 2,
            keyframe_timeout: Duration::from_secs(15),
            max_duration: Duration::from_secs(120),
        }),
        Scenario::Hls(HlsParams {
            viewers: 2,
            duration: Duration::from_secs(1),
        }),
        Scenario::Chat(ChatParams {
            members: 2,
            messages_per_sec: 2.0,
            duration: Duration::from_secs(1),
        }),
    ];
    let report = run_all(&target, &publisher, &scenarios, Duration::from_millis(200)).await;
    let table = report.table();
    println!("{table}");
    assert_eq!(report.runs.len(), 4, "{table}");

    let fanout = &report.runs[0];
    assert_eq!(fanout.status, "ok", "{fanout:?}");
    let r = fanout.report.as_ref().expect("fan-out figures");
    assert_eq!(r.sessions.connected, 3, "{r:?}");
    assert_eq!(r.sessions.ready, 3, "{r:?}");
    assert!(r.join_ms.is_some(), "{r:?}");
    let latency = r.latency_ms.expect("latency section");
    assert!(
        latency.samples > 0,
        "payload fingerprints match across a forwarder that rewrites SSRC and seq: {latency:?}"
    );
    assert!(r.loss.expect("loss").video_packets > 0, "{r:?}");
    assert!(r.server.is_some() && r.cpu.is_some(), "{r:?}");
    assert!(r.health.before.is_none(), "the forwarder has no /healthz");

    let churn = &report.runs[1];
    assert_eq!(churn.status, "ok", "{churn:?}");
    let c = churn.report.as_ref().expect("churn figures");
    assert_eq!(c.churn.expect("churn section").completed, 3, "{c:?}");

    for run in &report.runs[2..] {
        assert_eq!(run.status, "unsupported", "{run:?}");
        let error = run.error.as_deref().unwrap_or_default();
        assert!(error.contains("not served by this server"), "{error}");
    }
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["runs"][0]["status"], "ok");
}
