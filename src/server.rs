//! Starting and stopping onair (process shell): binds HTTP, runs the router and the room reaper,
//! and on shutdown closes every session before the listener goes away.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::load_or_create_secret;
use crate::config::Config;
use crate::http::{App, AppState, router};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The secret could not be read or created.
    #[error("JWT secret in {dir}: {source}")]
    Secret {
        /// The data directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// HTTPS could not start (address or certificate).
    #[error("{0}")]
    Https(String),
    /// The embedded TURN server could not start (secret or ports).
    #[error("TURN: {0}")]
    Turn(String),
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    app: App,
    stop: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts onair with `config`: the listener is bound when this returns.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let secret = load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)
            .map_err(|source| StartError::Secret {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.http,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.http,
            source,
        })?;
        let app = AppState::new(config, &secret);
        if let Some(turn) = crate::peer::offer::start_turn(&app.config)
            .await
            .map_err(StartError::Turn)?
        {
            let _ = app.turn.set(turn);
        }
        let _ = app.recordings.ops.set(app.ops.clone());
        let stop = CancellationToken::new();

        if app.recordings.enabled() {
            // Recordings a crash left fragmented become MP4s again.
            let dir = app.recordings.dir().to_owned();
            tokio::task::spawn_blocking(move || crate::egress::recorder::recover(&dir));
        }

        let reaper_app = app.clone();
        let reaper_stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = reaper_stop.cancelled() => break,
                    _ = tick.tick() => { reaper_app.rooms.reap(); }
                }
            }
        });

        let https = crate::http::tls::start_https(&app.config, stop.clone())
            .await
            .map_err(StartError::Https)?;
        let https_addr = https.as_ref().and_then(|h| h.listener.local_addr().ok());
        // Both listeners put the peer address in `ConnectInfo` (per-IP limits, `http::limits`).
        let timeouts = &app.config.http_timeouts;
        let http = crate::http::listener::spawn(
            listener,
            https,
            router(app.clone()),
            timeouts,
            stop.clone(),
        );
        tracing::info!(%addr, ?https_addr, "onair listening");
        Ok(Self {
            addr,
            https_addr,
            app,
            stop,
            http,
        })
    }

    /// The bound HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` with a loopback host when bound to every interface.
    pub fn base_url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            match self.addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        format!("http://{host}:{}", self.addr.port())
    }

    /// The bound HTTPS address, when HTTPS runs.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// `https://HOST:PORT` like [`Server::base_url`], when HTTPS runs.
    pub fn https_base_url(&self) -> Option<String> {
        let a = self.https_addr?;
        let host = match a {
            _ if a.ip().is_unspecified() => "localhost".to_owned(),
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        Some(format!("https://{host}:{}", a.port()))
    }

    /// Shared state (tests mint tokens and inspect rooms through it).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Closes every session, then stops accepting HTTP.
    pub async fn shutdown(self) {
        let sessions = self.app.sessions.end_all();
        tracing::info!(
            sessions = sessions.len(),
            "shutting down: closing every session"
        );
        // WebSocket chats get a close frame (1001) instead of a dropped connection.
        self.app.chat.shutdown();
        // Taps end their playlists and hand their recordings to be finalised.
        self.app.hls.shutdown();
        self.app.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.app.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not close within 5 s");
        }
        // participant_left, room_finished and recording_ready of the sessions just closed.
        self.app.ops.drain(Duration::from_secs(3)).await;
        if let Some(turn) = self.app.turn.get() {
            turn.shutdown().await;
        }
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(5), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP task failed"),
            Err(_) => tracing::warn!("HTTP connections did not close within 5 s"),
        }
    }
}
