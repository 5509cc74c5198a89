//! `GET /api/recordings` and `GET /recordings/{file}` (control plane over the recordings
//! directory): the list with duration, size and start time, and the files themselves with
//! `Range` support (tower-http `ServeFile`). Does file I/O off the async threads.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::files::RecordingError;
use crate::auth::Action;
use crate::auth::policy::recording_room;
use crate::http::{ApiError, App, percent_encode, query_param, request_token};

/// The recordings routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/recordings", get(list))
        .route("/recordings/{file}", get(file))
        .route("/recordings/{name}/{file}", get(vod))
}

async fn list(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Recordings of private rooms are listed to holders of a token for the room only.
    let token = request_token(&headers, query.as_deref())?;
    if let Some(t) = &token {
        app.keys.principal(t)?;
    }
    let recordings = app.recordings.clone();
    let active = recordings.active();
    let dir = recordings.dir().to_owned();
    let chat_dir = recordings.chat_dir().to_owned();
    let list = tokio::task::spawn_blocking(move || super::list(&dir, &chat_dir, &active))
        .await
        .map_err(|e| ApiError::internal("listing recordings", e))?;
    let list: Vec<_> = list
        .into_iter()
        .filter(|r| {
            let vis = app.visibility(&r.room);
            let action = Action::ListRecordings;
            app.keys
                .authorize(token.as_deref(), &r.room, vis, action)
                .is_ok()
        })
        .collect();
    Ok(Json(json!({
        "enabled": recordings.enabled(),
        "write_errors": recordings.write_errors(),
        "dropped_fragments": recordings.dropped_fragments(),
        "recordings": list,
    })))
}

/// Names onair writes: `[A-Za-z0-9_-]` plus dots, ending in `.mp4`, never starting with a dot.
fn valid_file(name: &str) -> bool {
    name.len() <= 200
        && name.ends_with(".mp4")
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn file(
    State(app): State<App>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let room = recording_room(&name).unwrap_or(&name);
    let query = request.uri().query();
    app.authorize(request.headers(), query, room, Action::DownloadRecording)?;
    if !valid_file(&name) {
        return Err(ApiError::not_found(format!("no recording `{name}`")));
    }
    let path = app.recordings.dir().join(&name);
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return Err(ApiError::not_found(format!("no recording `{name}`")));
    }
    let response = ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(|e| ApiError::internal("serving a recording", e))?;
    let mut response = response.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    // A finished recording never changes; one being written grows.
    let cache = if name.ends_with(".live.mp4") {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

/// `GET /recordings/{name}/chat`: the chat of the broadcast recorded as `{name}.mp4` (or
/// `{name}.live.mp4`), each event with its `offset` in seconds into the recording; `404` when
/// the broadcast has no chat log.
async fn chat(app: App, name: String) -> Result<Response, ApiError> {
    let missing = format!("no chat log for recording `{name}`");
    let recordings = app.recordings.clone();
    let found = tokio::task::spawn_blocking(move || {
        let dir = recordings.dir();
        let (path, duration) = [format!("{name}.mp4"), format!("{name}.live.mp4")]
            .into_iter()
            .filter(|f| valid_file(f))
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .map(|p| {
                // A recording being written has no end yet.
                let live = p.to_string_lossy().ends_with(".live.mp4");
                let duration = if live {
                    None
                } else {
                    super::files::duration_of(&p)
                };
                (p, duration)
            })?;
        drop(path);
        let room = super::files::room_from_stem(&name);
        let start_ms = super::chat::read_sidecar(dir, &name)
            .map(|s| s.start())
            .or_else(|| super::files::start_from_stem(&name).map(|s| s * 1000))?;
        let log = super::chat::find_log(recordings.chat_dir(), &room, start_ms)?;
        let end_ms = duration.map_or(u64::MAX, |d| start_ms + (d * 1000.0) as u64 + 2_000);
        Some(super::chat::replay(&log, start_ms, end_ms))
    })
    .await
    .map_err(|e| ApiError::internal("reading a chat log", e))?;
    let replay = match found {
        Some(Ok(replay)) => replay,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(missing));
        }
        Some(Err(e)) => return Err(ApiError::internal("reading a chat log", e)),
        None => return Err(ApiError::not_found(missing)),
    };
    let mut response = Json(replay).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `GET /recordings/{name}/index.m3u8`, `init.mp4`, `N.m4s`: the finished recording
/// `{name}.mp4` as VOD HLS (RFC 8216bis §4.4.3.5), fragments cut at its IDRs on request.
async fn vod(
    State(app): State<App>,
    Path((name, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room = recording_room(&name).unwrap_or(&name).to_owned();
    app.authorize(&headers, query.as_deref(), &room, Action::DownloadRecording)?;
    let private = app.visibility(&room) == crate::auth::Visibility::Private;
    // A `?token=` rides on the VOD playlist's URIs, as on the live playlists.
    let token_query =
        query_param(query.as_deref(), "token").map(|t| format!("token={}", percent_encode(&t)));
    if file == "chat" {
        return chat(app, name).await;
    }
    let mp4 = format!("{name}.mp4");
    let missing = format!("no recording `{mp4}` or no `{file}` in it");
    let not_found = move || ApiError::not_found(missing.clone());
    if !valid_file(&mp4) || mp4.ends_with(".live.mp4") {
        return Err(not_found());
    }
    let recordings = app.recordings.clone();
    let found = tokio::task::spawn_blocking(move || {
        let vod = recordings.vod.get(recordings.dir(), &mp4)?;
        Ok::<_, RecordingError>(match file.as_str() {
            "index.m3u8" => Some((vod.playlist(), "application/vnd.apple.mpegurl")),
            "init.mp4" => Some((vod.init(), "video/mp4")),
            other => match other
                .strip_suffix(".m4s")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => vod
                    .segment(&recordings.dir().join(&mp4), n)?
                    .map(|b| (b, "video/mp4")),
                None => None,
            },
        })
    })
    .await
    .map_err(|e| ApiError::internal("reading a recording", e))?;
    let (body, kind) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Err(not_found()),
        Err(RecordingError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_found());
        }
        Err(e) => return Err(ApiError::internal("reading a recording", e)),
    };
    let body = match (&token_query, kind) {
        (Some(q), "application/vnd.apple.mpegurl") => bytes::Bytes::from(
            crate::core::hls::with_query(&String::from_utf8_lossy(&body), q),
        ),
        _ => body,
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    let cache = match private || token_query.is_some() {
        true => "private, max-age=3600",
        false => "public, max-age=3600",
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::valid_file;

    #[test]
    fn only_recording_names_are_served() {
        assert!(valid_file("demo-20231114-221320.mp4"));
        assert!(valid_file("demo-20231114-221320.live.mp4"));
        for bad in [
            "../x.mp4",
            ".hidden.mp4",
            "a/b.mp4",
            "x.txt",
            "a..mp4",
            "x.mp4 ",
        ] {
            assert!(!valid_file(bad), "{bad}");
        }
    }
}
