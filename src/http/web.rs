//! The browser pages (`web/`, embedded at build time): studio, watch, live (LL-HLS),
//! recordings and the landing page.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, App, valid_room};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route(
            "/studio/{room}",
            get(|Path(room): Path<String>| async move { room_page(&room, "studio.html") }),
        )
        .route(
            "/watch/{room}",
            get(|Path(room): Path<String>| async move { room_page(&room, "watch.html") }),
        )
        .route(
            "/guest/{room}",
            get(|Path(room): Path<String>| async move { room_page(&room, "guest.html") }),
        )
        .route(
            "/live/{room}",
            get(|Path(room): Path<String>| async move { room_page(&room, "live.html") }),
        )
        .route("/recordings", get(|| async { page("recordings.html") }))
        .route(
            "/web/{file}",
            get(|Path(file): Path<String>| async move { page(&file) }),
        )
}

fn room_page(room: &str, file: &str) -> Result<Response, ApiError> {
    valid_room(room)?;
    page(file)
}

fn page(name: &str) -> Result<Response, ApiError> {
    let (_, bytes) = ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ApiError::not_found(format!("no page `{name}`")))?;
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
