//! Integration-test harness: the real onair server in-process on port 0, media on loopback,
//! a fresh data directory per test.

#![allow(dead_code)]

pub mod offer;

use std::path::PathBuf;
use std::time::Duration;

use onair::auth::Role;
use onair::config::Config;
use onair::server::Server;

/// A running server and what tests need to talk to it.
pub struct TestServer {
    pub server: Server,
    pub base: String,
    dir: PathBuf,
}

impl TestServer {
    /// Starts a server with test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with test defaults changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = std::env::temp_dir().join(format!("onair-test-{:016x}", rand::random::<u64>()));
        let mut config = Config {
            http: "127.0.0.1:0".parse().unwrap(),
            https: Some("127.0.0.1:0".parse().unwrap()),
            udp_host: "127.0.0.1".parse().unwrap(),
            data_dir: dir.clone(),
            ..Config::default()
        };
        // The embedded TURN server on loopback and ephemeral ports, so parallel tests never collide.
        config.turn.listen = "127.0.0.1".parse().unwrap();
        config.turn.udp_port = 0;
        config.turn.tcp_port = 0;
        tweak(&mut config);
        config.validate().expect("test configuration is valid");
        let server = Server::start(config).await.expect("server starts");
        let base = server.base_url();
        Self { server, base, dir }
    }

    /// A token for `room` signed with this server's secret.
    pub fn token(&self, room: &str, role: Role, sub: &str) -> String {
        self.server
            .app()
            .keys
            .mint_for(room, role, sub, &sub.to_uppercase(), 600)
    }

    /// `Bearer <token>`.
    pub fn bearer(&self, room: &str, role: Role, sub: &str) -> String {
        format!("Bearer {}", self.token(room, role, sub))
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `pred` holds for the room's API detail, or panics after `timeout`.
    pub async fn wait_room(
        &self,
        room: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = serde_json::Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = reqwest::get(self.url(&format!("/api/rooms/{room}"))).await
                && r.status().is_success()
            {
                last = r.json().await.unwrap_or(serde_json::Value::Null);
                if pred(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("room {room} never reached the expected state; last: {last}");
    }

    /// Stops the server and removes its data directory.
    pub async fn stop(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture from `tests/data`.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts the JSON error shape and code, returns the message.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"], code, "error code in {body}");
    let message = body["message"].as_str().expect("message string").to_owned();
    assert!(!message.is_empty());
    message
}
