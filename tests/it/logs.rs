//! Structured logs of the real binary: `onair --log-json` writes one JSON object per line, and
//! every line a WHIP or WHEP session logs carries its `session` span (room, session id, kind,
//! user, role) — checked for a real publish (openh264 + Opus) and a real WHEP viewer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onair::auth::{Role, TokenKeys};
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whep::{ViewOptions, Viewer};
use onair_loadtest::whip::{PublishOptions, Publisher};

const SECRET: &str = "log-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(30);

/// The server process; killed on drop so a failing test leaves nothing behind.
struct Onair {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: std::path::PathBuf,
}

impl Drop for Onair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> Onair {
    let dir = std::env::temp_dir().join(format!("onair-logs-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("onair.toml");
    std::fs::write(&config, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_onair"))
        .args(["serve", "--http", "127.0.0.1:0", "--udp-host", "127.0.0.1"])
        .arg("--data-dir")
        .arg(&dir)
        .arg("--config")
        .arg(&config)
        .arg("--log-json")
        .env("ONAIR_JWT_SECRET", SECRET)
        .env("RUST_LOG", "info,webrtc=warn,rtc=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the onair binary starts");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = stderr.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut base = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(addr) = line.trim().split(" listening on ").nth(1) {
            base = Some(addr.to_owned());
            break;
        }
        line.clear();
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let base = base.unwrap_or_else(|| panic!("no listening line; stderr: {:?}", stderr.lock()));
    Onair {
        child,
        base,
        stderr,
        dir,
    }
}

/// Parsed JSON lines so far; a line that is not JSON fails the test.
fn json_lines(server: &Onair) -> Vec<serde_json::Value> {
    server
        .stderr
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

async fn wait_line(server: &Onair, message: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = json_lines(server)
            .into_iter()
            .find(|l| l["fields"]["message"] == message)
        {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{message}` line in {:#?}",
            server.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_carry_a_span_per_session() {
    let server = start();
    let token = TokenKeys::new(SECRET.as_bytes()).mint_for(
        "logged",
        Role::Broadcaster,
        "carol",
        "Carol",
        600,
    );
    let publisher = Publisher::connect(PublishOptions {
        base_url: server.base.clone(),
        room: "logged".into(),
        token: Some(token),
        video: Some(VideoConfig {
            width: 320,
            height: 240,
            fps: 30,
            bitrate_bps: 300_000,
            keyframe_interval_frames: 30,
        }),
        ..Default::default()
    })
    .await
    .expect("publisher");
    publisher.wait_connected(WAIT).await.unwrap();
    let viewer = Viewer::connect(ViewOptions {
        base_url: server.base.clone(),
        room: "logged".into(),
        ..Default::default()
    })
    .await
    .expect("viewer");
    viewer
        .wait_for(|v| v.video.packets > 30, WAIT)
        .await
        .expect("media reaches the viewer");
    let whip = last_segment(publisher.resource_url());
    let whep = last_segment(viewer.resource_url());
    viewer.close().await.unwrap();
    publisher.close().await.unwrap();

    let connected = wait_line(&server, "publisher connected").await;
    let span = &connected["span"];
    assert_eq!(span["name"], "session", "{connected}");
    assert_eq!(span["room"], "logged");
    assert_eq!(span["session"], whip.as_str());
    assert_eq!(span["kind"], "whip");
    assert_eq!(span["user"], "carol");
    assert_eq!(span["role"], "broadcaster");
    assert_eq!(connected["level"], "INFO");

    let left = wait_line(&server, "viewer left").await;
    let span = &left["span"];
    assert_eq!(span["room"], "logged", "{left}");
    assert_eq!(span["session"], whep.as_str());
    assert_eq!(span["kind"], "whep");
    assert_eq!(span["role"], "viewer");
    assert!(span["user"].as_str().unwrap().starts_with("anon-"));

    let left = wait_line(&server, "publisher left").await;
    assert_eq!(left["span"]["session"], whip.as_str(), "{left}");
    // Every line logged inside a session names the session it belongs to.
    for line in json_lines(&server) {
        if let Some(spans) = line["spans"].as_array()
            && let Some(session) = spans.iter().find(|s| s["name"] == "session")
        {
            let id = session["session"].as_str().unwrap();
            assert!(id == whip || id == whep, "{line}");
            assert!(session["room"] == "logged" && session["kind"].is_string());
        }
    }
}
