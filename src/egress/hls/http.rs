//! `GET /hls/{room}/{file}` (egress path, last hop: `HlsStream` -> HTTP caches -> players):
//! the multivariant and media playlists (blocking reload, delta updates, gzip), init segments,
//! segments and parts (a hinted part blocks until it is complete). A blocked request is a
//! future waiting on the stream's version: memory, not a thread. Cache-Control follows the
//! LL-HLS practice: playlists `no-cache` (a blocking response, whose URL names a playlist
//! version, may be cached briefly so CDNs collapse identical requests), media immutable.
//! Access follows the matrix (`auth::policy`, action `ViewHls`): a private room needs a token,
//! as `?token=` (players cannot set headers) or Bearer. A `?token=` is appended to every URI
//! the playlists emit so players carry it along; such playlists, and everything of a private
//! room, are `Cache-Control: private` so shared caches never hand them to someone else.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::sync::watch;

use super::HlsStream;
use super::store::Lookup;
use crate::auth::{Action, Visibility};
use crate::core::hls::{
    Decision, PartDecision, Rendition, Resource, decide, decide_part, parse_directives,
};
use crate::http::{ApiError, App, percent_encode, query_param, valid_room};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// How a response may be cached and which query its playlist URIs carry.
struct Audience {
    /// `token=<percent-encoded>` to append to every playlist URI, from the request's `?token=`.
    token_query: Option<String>,
    /// The room is private: nothing may sit in a shared cache.
    private: bool,
}

impl Audience {
    fn playlist_cache(&self, shared: &'static str, private: &'static str) -> &'static str {
        if self.private || self.token_query.is_some() {
            private
        } else {
            shared
        }
    }
}

/// The LL-HLS routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/hls/{room}/{file}", get(hls))
        .route("/vendor/hls.min.js", get(hls_js))
}

/// hls.js for the live page, from the `hls_js` setting: a file served as is, or a URL to
/// redirect to. onair ships no third-party code; without the setting the page falls back to
/// the browser's own HLS and says what is missing.
async fn hls_js(State(app): State<App>) -> Response {
    let Some(source) = app.config.hls_js.as_deref() else {
        return error_response(ApiError::not_found(
            "hls.js is not configured: set `hls_js` in onair.toml to node_modules/hls.js/dist/hls.min.js (npm install hls.js) or to a URL",
        ));
    };
    if source.starts_with("https://") || source.starts_with("http://") {
        let mut response = StatusCode::FOUND.into_response();
        if let Ok(location) = HeaderValue::from_str(source) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return response;
    }
    match tokio::fs::read(source).await {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            response
        }
        Err(e) => error_response(ApiError::internal(
            "reading hls_js",
            format!("{source}: {e}"),
        )),
    }
}

fn error_response(e: ApiError) -> Response {
    let mut response = e.into_response();
    // An error now (a part not there yet) must not be cached for later.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request is borrowed, not copied: no per-request copy of the headers, path or query
/// (a viewer makes several requests a second, thousands of viewers per room).
async fn hls(State(app): State<App>, params: RawPathParams, request: Request) -> Response {
    let mut room = "";
    let mut file = "";
    for (key, value) in &params {
        match key {
            "room" => room = value,
            "file" => file = value,
            _ => {}
        }
    }
    let query = request.uri().query();
    let response = match serve(&app, room, file, query, request.headers()).await {
        Ok(response) => response,
        Err(e) => error_response(e),
    };
    app.ops
        .counters
        .hls_request(file, response.status().as_u16());
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            parts.next() == Some("gzip") && parts.all(|q| q.trim() != "q=0")
        })
}

async fn serve(
    app: &App,
    room: &str,
    file: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    valid_room(room)?;
    app.authorize(headers, query, room, Action::ViewHls)?;
    let audience = Audience {
        token_query: query_param(query, "token").map(|t| format!("token={}", percent_encode(&t))),
        private: app.visibility(room) == Visibility::Private,
    };
    if !app.config.hls {
        return Err(ApiError::not_found(
            "LL-HLS is switched off on this server (hls = false)",
        ));
    }
    let resource = Resource::parse(file)
        .ok_or_else(|| ApiError::not_found(format!("no HLS file `{file}`")))?;
    let Some(stream) = app.hls.get(room) else {
        if app.rooms.get(room).is_some() {
            let mut response = ApiError::unavailable(
                "not_live",
                format!("room `{room}` has no LL-HLS stream yet; retry when a broadcaster is live"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(response);
        }
        return Err(ApiError::not_found(format!("no room `{room}`")));
    };
    let result = match resource {
        Resource::Multivariant => {
            let text = stream.multivariant();
            let text = match &audience.token_query {
                Some(q) => crate::core::hls::with_query(&text, q),
                None => text,
            };
            let cache = audience.playlist_cache("no-cache", "private, no-cache");
            Ok(playlist_response(Bytes::from(text), false, cache))
        }
        Resource::Playlist(r) => media_playlist(&stream, r, query, headers, &audience).await,
        Resource::Init {
            rendition,
            stream: id,
            version,
        } => {
            let bytes = (id == stream.stream_id())
                .then(|| stream.init(rendition, version))
                .flatten()
                .ok_or_else(|| ApiError::not_found(format!("no init segment `{file}`")))?;
            Ok(media_response(bytes, rendition))
        }
        Resource::Segment {
            rendition,
            stream: id,
            msn,
        } => media(&stream, file, id, rendition, msn, None).await,
        Resource::Part {
            rendition,
            stream: id,
            msn,
            index,
        } => media(&stream, file, id, rendition, msn, Some(index)).await,
    };
    result.map(|mut response| {
        if audience.private && response.status().is_success() && !is_playlist(&response) {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(PRIVATE_IMMUTABLE),
            );
        }
        response
    })
}

fn is_playlist(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PLAYLIST.as_bytes())
}

/// A `200` with `body`; its headers are set by the caller (no default `Content-Type` to
/// replace). The default header map holds six entries without growing: a playlist has four of
/// its own and two more from the CORS layer (which adds to its `Vary`), a part five in all.
fn ok_response(body: Bytes) -> Response {
    Response::new(Body::from(body))
}

/// One step of a blocking request (the caller looks again after each): the first call only
/// subscribes to `rendition`'s changes, so nothing published between the caller's look and
/// the subscription is missed (most requests are answered without subscribing at all); later
/// calls wait for a change or until `left` has passed. False when the stream is gone.
async fn wait_for_change(
    stream: &HlsStream,
    rendition: Rendition,
    version: &mut Option<watch::Receiver<u64>>,
    left: std::time::Duration,
) -> bool {
    let Some(version) = version.as_mut() else {
        *version = Some(stream.subscribe(rendition));
        return true;
    };
    tokio::select! {
        changed = version.changed() => changed.is_ok(),
        _ = tokio::time::sleep(left) => true,
    }
}

fn playlist_response(body: Bytes, gzip: bool, cache: &'static str) -> Response {
    let mut response = ok_response(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn media_response(body: Bytes, rendition: Rendition) -> Response {
    let mut response = ok_response(body);
    let h = response.headers_mut();
    let kind = match rendition {
        Rendition::Video => "video/mp4",
        Rendition::Audio => "audio/mp4",
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    response
}

/// A media playlist, after blocking as long as its directives ask (RFC 8216bis §6.2.5.2).
async fn media_playlist(
    stream: &Arc<HlsStream>,
    rendition: Rendition,
    query: Option<&str>,
    headers: &HeaderMap,
    audience: &Audience,
) -> Result<Response, ApiError> {
    let Some(mut position) = stream.position(rendition) else {
        return Err(ApiError::not_found(format!(
            "this stream has no {} rendition",
            rendition.as_str()
        )));
    };
    let directives = parse_directives(query)
        .map_err(|e| ApiError::bad_request("bad_directive", e.to_string()))?;
    let timing = *stream.timing();
    let mut version = None;
    let started = Instant::now();
    loop {
        match decide(&directives, &position, &timing, started.elapsed()) {
            Decision::Ready => break,
            Decision::BadRequest(e) => {
                return Err(ApiError::bad_request("bad_directive", e.to_string()));
            }
            Decision::Unavailable => {
                return Err(ApiError::unavailable(
                    "not_ready",
                    "the requested segment or part did not come within three target durations",
                ));
            }
            Decision::Wait => {
                let left = timing.block_limit().saturating_sub(started.elapsed());
                if !wait_for_change(stream, rendition, &mut version, left).await {
                    return Err(ApiError::not_found("stream gone"));
                }
            }
        }
        position = stream
            .position(rendition)
            .ok_or_else(|| ApiError::not_found("rendition gone"))?;
    }
    let gzip = accepts_gzip(headers);
    let skip = directives.skip != crate::core::hls::Skip::No;
    let body = match &audience.token_query {
        // The shared rendering, then this viewer's token on every URI.
        Some(q) => {
            let plain = stream
                .playlist(rendition, skip, false)
                .ok_or_else(|| ApiError::not_found("rendition gone"))?;
            let text = crate::core::hls::with_query(&String::from_utf8_lossy(&plain), q);
            match gzip {
                true => gzip_text(&text)?,
                false => Bytes::from(text),
            }
        }
        None => stream
            .playlist(rendition, skip, gzip)
            .ok_or_else(|| ApiError::not_found("rendition gone"))?,
    };
    // A response to `_HLS_msn` holds at least what the URL asked for, whenever it is served.
    let cache = if directives.msn.is_some() {
        audience.playlist_cache("public, max-age=6", "private, max-age=6")
    } else {
        audience.playlist_cache("no-cache", "private, no-cache")
    };
    Ok(playlist_response(body, gzip, cache))
}

fn gzip_text(text: &str) -> Result<Bytes, ApiError> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| ApiError::internal("compressing a playlist", e))
}

/// A segment or part; the next part (what `EXT-X-PRELOAD-HINT` names) and the segment in
/// progress are waited for (RFC 8216bis §6.2.6), anything else is `404`.
async fn media(
    stream: &Arc<HlsStream>,
    file: &str,
    id: u32,
    rendition: Rendition,
    msn: u64,
    index: Option<u32>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no media `{file}`"));
    if id != stream.stream_id() {
        return Err(not_found());
    }
    let timing = *stream.timing();
    let mut version = None;
    let started = Instant::now();
    loop {
        let position = match stream.lookup(rendition, msn, index) {
            Lookup::Found(bytes) => return Ok(media_response(bytes, rendition)),
            Lookup::NoRendition => return Err(not_found()),
            Lookup::Missing(position) => position,
        };
        let waited = started.elapsed();
        match decide_part(msn, index.map(u64::from), &position, &timing, waited) {
            PartDecision::NotFound => return Err(not_found()),
            PartDecision::Wait => {
                let left = timing.block_limit().saturating_sub(waited);
                if !wait_for_change(stream, rendition, &mut version, left).await {
                    return Err(not_found());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hls::HlsTiming;
    use crate::egress::hls::{NewPart, StreamInfo};

    /// Blocked requests are futures on one thread: thousands wait, then all are answered by
    /// the part that unblocks them.
    #[tokio::test(flavor = "current_thread")]
    async fn thousands_of_blocked_reloads_wait_on_one_thread() {
        let stream = Arc::new(HlsStream::new(
            7,
            HlsTiming::default(),
            StreamInfo {
                video_codec: Some("avc1.42c01e".into()),
                resolution: Some((320, 240)),
                audio_channels: None,
            },
            Some(Bytes::from_static(b"init")),
            None,
        ));
        let part = |index| NewPart {
            msn: 0,
            index,
            duration: 0.2,
            independent: index == 0,
            discontinuity: false,
            program_date_time_ms: 0,
            bytes: Bytes::from_static(b"part"),
        };
        stream.add_part(Rendition::Video, part(0));
        let mut waiting = tokio::task::JoinSet::new();
        for i in 0..5000 {
            let stream = stream.clone();
            waiting.spawn(async move {
                let mut headers = HeaderMap::new();
                if i % 2 == 0 {
                    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
                }
                let audience = Audience {
                    token_query: None,
                    private: false,
                };
                media_playlist(
                    &stream,
                    Rendition::Video,
                    Some("_HLS_msn=0&_HLS_part=1"),
                    &headers,
                    &audience,
                )
                .await
                .map(|r| r.status())
            });
        }
        // Let every request reach its wait, then publish the part they ask for.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(waiting.try_join_next().is_none(), "nobody answered early");
        stream.add_part(Rendition::Video, part(1));
        let mut answered = 0;
        while let Some(done) = waiting.join_next().await {
            assert_eq!(done.unwrap().unwrap(), axum::http::StatusCode::OK);
            answered += 1;
        }
        assert_eq!(answered, 5000);
    }

    #[test]
    fn gzip_is_used_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
    }
}
