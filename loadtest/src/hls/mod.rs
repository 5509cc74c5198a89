//! Test/load client: an LL-HLS viewer that loads like hls.js in low-latency mode — the
//! multivariant playlist, then per rendition (video, and the audio rendition if any) the media
//! playlist and its init segment, and from then on, for each next part, a blocking playlist
//! reload (`_HLS_msn`/`_HLS_part`, and `_HLS_skip=YES` when the server offers delta updates)
//! together with a request for the preload-hinted part, which the server answers when the part
//! is complete. Measures parts, bytes, errors and each part's
//! latency after its end on the program date-time clock. Does network I/O; every request and
//! the viewer's life are bounded in time.

pub mod playlist;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;

use crate::histogram::Histogram;
use playlist::{MediaPlaylist, Multivariant};

/// Longest a request may take beyond the playlist's own blocking limit (3 target durations).
const REQUEST_SLACK: Duration = Duration::from_secs(2);
/// Pause after a failed request before the viewer tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What one LL-HLS viewer did; lock-free counters written by its tasks.
#[derive(Debug, Default)]
pub struct HlsViewerStats {
    /// Multivariant request to the first part received, µs + 1 (0: none yet).
    pub first_part: AtomicU64,
    /// Parts received.
    pub parts: AtomicU64,
    /// Bytes received (parts and init segments).
    pub bytes: AtomicU64,
    /// Playlists received.
    pub playlists: AtomicU64,
    /// Requests answered with an error status or failed.
    pub errors: AtomicU64,
    /// Times the viewer fell behind the parts a playlist still listed and jumped ahead.
    pub resyncs: AtomicU64,
    /// Each part's arrival after its end (program date-time plus part durations), µs.
    pub part_latency: Histogram,
    /// Parts that arrived before their end by the program date-time (counted as 0 in
    /// `part_latency`): the server's date-times are not the wall clock of this machine.
    pub early: AtomicU64,
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn get(
    client: &reqwest::Client,
    url: Url,
    timeout: Duration,
) -> Result<bytes::Bytes, String> {
    let response = client
        .get(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {}", status.as_u16()));
    }
    response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

fn resolve(base: &Url, uri: &str) -> Result<Url, String> {
    base.join(uri).map_err(|e| format!("bad URI {uri:?}: {e}"))
}

/// When an LL-HLS viewer stops: when `stop` is set, at `deadline` at the latest.
#[derive(Debug, Clone, Copy)]
pub struct Until<'a> {
    /// Set by the caller to end the viewer (checked between requests).
    pub stop: &'a AtomicBool,
    /// Hard limit.
    pub deadline: tokio::time::Instant,
}

impl Until<'_> {
    fn reached(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= self.deadline
    }
}

/// Runs one viewer on `multivariant` until `until`; returns the first error that stopped it
/// (a failed start), or `Ok` when time was up.
pub async fn run_viewer(
    client: reqwest::Client,
    multivariant: Url,
    stats: &HlsViewerStats,
    until: Until<'_>,
) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let body = get(&client, multivariant.clone(), REQUEST_SLACK * 5).await?;
    let text = String::from_utf8_lossy(&body);
    let variants = Multivariant::parse(&text)?;
    let video = variants
        .variants
        .first()
        .ok_or("the multivariant playlist lists no variant")?;
    let mut media = vec![resolve(&multivariant, video)?];
    if let Some(audio) = variants.renditions.first() {
        media.push(resolve(&multivariant, audio)?);
    }
    let follows = media
        .into_iter()
        .map(|url| follow(&client, url, stats, started, until));
    let results = futures_util::future::join_all(follows).await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(())
}

/// Follows one media playlist part by part until `until`.
async fn follow(
    client: &reqwest::Client,
    url: Url,
    stats: &HlsViewerStats,
    started: tokio::time::Instant,
    until: Until<'_>,
) -> Result<(), String> {
    let mut playlist = load(client, &url, None, false, REQUEST_SLACK * 5, stats).await?;
    if !playlist.can_block_reload {
        return Err(format!(
            "{url} is not a low-latency playlist (no CAN-BLOCK-RELOAD)"
        ));
    }
    if let Some(map) = &playlist.map {
        let init = get(client, resolve(&url, map)?, REQUEST_SLACK * 5).await?;
        stats.bytes.fetch_add(init.len() as u64, Ordering::Relaxed);
    }
    let mut last = playlist.parts().last().map(|p| (p.msn, p.index));
    while !until.reached() && !playlist.ended {
        let timeout =
            Duration::from_secs_f64(playlist.target_duration.max(1.0) * 3.0) + REQUEST_SLACK;
        let Some(next) = playlist.next_part() else {
            tokio::time::sleep(RETRY_PAUSE).await;
            playlist = load(client, &url, None, false, timeout, stats).await?;
            continue;
        };
        // Like hls.js: the blocking reload and the hinted part at the same time.
        let hint = playlist.preload_hint.clone();
        let hinted = async {
            let uri = hint.as_deref()?;
            let url = resolve(&url, uri).ok()?;
            let result = get(client, url, timeout).await;
            Some((result, unix_ms()))
        };
        // hls.js asks for a delta update whenever the server offers them: the playlist it
        // holds is always far younger than half the skip boundary (RFC 8216bis §6.3.7).
        let skip = playlist.can_skip_until.is_some();
        let (reloaded, hinted) =
            tokio::join!(load(client, &url, Some(next), skip, timeout, stats), hinted);
        let fresh = match reloaded {
            Ok(p) => p,
            Err(_) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let mut hinted = hinted.zip(hint);
        if let Some(l) = last
            && !fresh.parts().any(|p| (p.msn, p.index) == l)
            && fresh.parts().next().is_some_and(|f| (f.msn, f.index) > l)
        {
            // What we had is gone from the playlist: skip to its newest part.
            stats.resyncs.fetch_add(1, Ordering::Relaxed);
            last = fresh.parts().last().map(|p| (p.msn, p.index));
        }
        let new: Vec<_> = fresh
            .parts()
            .filter(|p| last.is_none_or(|l| (p.msn, p.index) > l))
            .map(|p| (p.msn, p.index, p.part.uri.clone(), p.end_ms))
            .collect();
        for (msn, index, uri, end_ms) in new {
            let arrival = match hinted.take_if(|(_, hint)| *hint == uri) {
                Some(((Ok(bytes), at), _)) => Ok((bytes, at)),
                _ => get(client, resolve(&url, &uri)?, timeout)
                    .await
                    .map(|b| (b, unix_ms())),
            };
            match arrival {
                Ok((bytes, at)) => {
                    stats.parts.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    let since_start = started.elapsed().as_micros() as u64 + 1;
                    let _ = stats.first_part.compare_exchange(
                        0,
                        since_start,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if let Some(end) = end_ms {
                        stats
                            .part_latency
                            .record(((at - end).max(0.0) * 1000.0) as u64);
                    }
                }
                Err(_) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            last = Some((msn, index));
        }
        playlist = fresh;
    }
    Ok(())
}

/// GETs and parses a media playlist, blocking on `next` (`_HLS_msn`, `_HLS_part`) if given,
/// then as a delta update (`_HLS_skip=YES`) if `skip`.
async fn load(
    client: &reqwest::Client,
    url: &Url,
    next: Option<(u64, u32)>,
    skip: bool,
    timeout: Duration,
    stats: &HlsViewerStats,
) -> Result<MediaPlaylist, String> {
    let mut url = url.clone();
    if let Some((msn, part)) = next {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("_HLS_msn", &msn.to_string())
            .append_pair("_HLS_part", &part.to_string());
        if skip {
            query.append_pair("_HLS_skip", "YES");
        }
    }
    let result = get(client, url, timeout)
        .await
        .and_then(|body| MediaPlaylist::parse(&String::from_utf8_lossy(&body)));
    match &result {
        Ok(_) => stats.playlists.fetch_add(1, Ordering::Relaxed),
        Err(_) => stats.errors.fetch_add(1, Ordering::Relaxed),
    };
    result
}
