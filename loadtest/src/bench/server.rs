//! Load bench: what the bench asks the server over plain HTTP besides WHIP/WHEP — onair's
//! `GET /healthz` session counts (other servers may not have it: then there are no counts),
//! and whether a route is served at all. Does network I/O; every request is bounded in time.

use std::time::Duration;

use serde::Serialize;

/// How long one of these requests may take.
const TIMEOUT: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// Sessions the server reports (`GET /healthz`: `{"publishers": N, "viewers": N}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// WHIP sessions.
    pub publishers: u64,
    /// WHEP sessions.
    pub viewers: u64,
}

/// `GET {base}/healthz`; `None` when the server has no such route or answers something else.
pub async fn healthz(base: &str) -> Option<Health> {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let response = client().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some(Health {
        publishers: body.get("publishers")?.as_u64()?,
        viewers: body.get("viewers")?.as_u64()?,
    })
}

/// Polls `/healthz` (every 100 ms, at most `timeout`) until it reports at most `viewers` WHEP
/// sessions; returns the last answer.
pub async fn wait_viewers_at_most(base: &str, viewers: u64, timeout: Duration) -> Option<Health> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let health = healthz(base).await;
        let done = health.is_none_or(|h| h.viewers <= viewers);
        if done || tokio::time::Instant::now() >= deadline {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET url`: the status and the body (first 1000 characters), or the transport error.
pub async fn get_status(url: &str) -> Result<(u16, String), String> {
    let (status, body) = get_text(url).await?;
    Ok((status, body.chars().take(1000).collect()))
}

/// `GET url`: the status and the whole body as text, or the transport error.
pub async fn get_text(url: &str) -> Result<(u16, String), String> {
    let response = client().get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}
