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
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
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

        let http_stop = stop.clone();
        let service = router(app.clone());
        let http = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { http_stop.cancelled().await })
                .await
        });
        tracing::info!(%addr, "onair listening");
        Ok(Self {
            addr,
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
        // Taps end their playlists and hand their recordings to be finalised.
        self.app.hls.shutdown();
        self.app.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.app.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not close within 5 s");
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
