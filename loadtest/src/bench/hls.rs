//! Load bench, scenario 2: LL-HLS viewers. Needs the server to serve LL-HLS at
//! `{base}/hls/{room}/index.m3u8` (DESIGN §4); a server without it gets a clear
//! [`BenchError::Unsupported`] once the bench's publisher has been live long enough for a
//! playlist to exist. Does network I/O; bounded in requests and time.

use std::time::Duration;

use super::report::ScenarioReport;
use super::{BenchError, PreparedPublisher, Target, check_time, server};

/// How long a playlist may take to appear after the publisher went live.
const PLAYLIST_WAIT: Duration = Duration::from_secs(10);

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

/// Publishes, then polls the playlist (every 500 ms, at most 10 s) until it is served;
/// [`BenchError::Unsupported`] naming the last answer if it never is.
pub async fn require_playlist(
    target: &Target,
    publisher: &PreparedPublisher,
) -> Result<crate::Publisher, BenchError> {
    let session = publisher.start(target, None).await?;
    let url = playlist_url(target);
    let deadline = tokio::time::Instant::now() + PLAYLIST_WAIT;
    let last = loop {
        let answer = server::get_status(&url).await;
        if matches!(answer, Ok((200, _))) {
            return Ok(session);
        }
        if tokio::time::Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Runs scenario 2.
pub async fn run(
    target: &Target,
    publisher: &PreparedPublisher,
    p: &HlsParams,
) -> Result<ScenarioReport, BenchError> {
    check_time("the LL-HLS window", p.duration)?;
    let session = require_playlist(target, publisher).await?;
    let _ = session.close().await;
    Err(BenchError::Unsupported(format!(
        "{} is served, but this onair-loadtest has no LL-HLS viewer yet",
        playlist_url(target)
    )))
}
