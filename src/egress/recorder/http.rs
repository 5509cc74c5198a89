//! `GET /api/recordings` and `GET /recordings/{file}` (control plane over the recordings
//! directory): the list with duration, size and start time, and the files themselves with
//! `Range` support (tower-http `ServeFile`). Does file I/O off the async threads.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::http::{ApiError, App};

/// The recordings routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/recordings", get(list))
        .route("/recordings/{file}", get(file))
}

async fn list(State(app): State<App>) -> Result<Json<serde_json::Value>, ApiError> {
    let recordings = app.recordings.clone();
    let active = recordings.active();
    let dir = recordings.dir().to_owned();
    let list = tokio::task::spawn_blocking(move || super::list(&dir, &active))
        .await
        .map_err(|e| ApiError::internal("listing recordings", e))?;
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
