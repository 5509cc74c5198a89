//! The HTTP surface (control plane): shared state, the router of DESIGN.md §4, CORS, body
//! limits and JSON errors. Handlers live beside the media code they start.

mod access;
mod admin;
mod api;
mod cors;
mod error;
pub mod limits;
pub mod listener;
mod metrics;
pub mod tls;
mod web;

pub use access::{percent_encode, query_param, request_token, without_token};
pub use admin::{Ejectable, Ejector};
pub use error::ApiError;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio_util::task::TaskTracker;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::peer::PeerFactory;
use crate::peer::offer::ice_server_links;
use crate::peer::session::{self, SessionKind, Sessions};
use crate::room::{Rooms, is_valid_room_name};

/// Largest SDP offer or fragment accepted (bytes).
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// Everything the handlers share.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// Token signing and verification.
    pub keys: TokenKeys,
    /// Rooms.
    pub rooms: Rooms,
    /// WHIP and WHEP sessions.
    pub sessions: Sessions,
    /// Builds PeerConnections.
    pub peers: PeerFactory,
    /// `Link` headers for the configured ICE servers.
    pub link_headers: Vec<HeaderValue>,
    /// The embedded TURN server, once started (its credentials go into `Link` headers).
    pub turn: std::sync::OnceLock<Arc<onair_turn::TurnServer>>,
    /// Every session task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Every room's chat hub.
    pub chat: crate::chat::ChatHubs,
    /// Every room's LL-HLS stream and tap.
    pub hls: crate::egress::hls::HlsRegistry,
    /// Where broadcasts are recorded.
    pub recordings: Arc<crate::egress::recorder::Recordings>,
    /// Sessions per IP and pending viewers, for the admission limits.
    pub limiter: limits::Limiter,
    /// Chat WebSockets the admin API can end.
    pub ejector: Ejector,
    /// Server-wide counters, webhooks and session spans.
    pub ops: Arc<crate::ops::Ops>,
}

/// Shared state handle.
pub type App = Arc<AppState>;

impl AppState {
    /// State for `config` signed with `secret`.
    pub fn new(config: Config, secret: &[u8]) -> App {
        Arc::new(Self {
            keys: TokenKeys::new(secret),
            rooms: Rooms::new(&config),
            sessions: Sessions::default(),
            peers: PeerFactory::new(&config),
            link_headers: ice_server_links(&config.ice_servers),
            turn: std::sync::OnceLock::new(),
            tasks: TaskTracker::new(),
            limiter: limits::Limiter::default(),
            ejector: Ejector::default(),
            chat: crate::chat::ChatHubs::default(),
            hls: crate::egress::hls::HlsRegistry::default(),
            ops: Arc::new(crate::ops::Ops::new(&config.webhooks)),
            recordings: Arc::new(crate::egress::recorder::Recordings::new(
                &config.data_dir,
                config.recordings,
            )),
            config,
        })
    }
}

/// 400 unless `room` is a valid room name.
pub fn valid_room(room: &str) -> Result<(), ApiError> {
    if is_valid_room_name(room) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_room",
            "room names are 1-64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ))
    }
}

/// The whole router.
pub fn router(app: App) -> Router {
    let media = Router::new()
        .route("/whip/{room}", post(crate::ingest::post))
        .route(
            "/whip/{room}/{session}",
            axum::routing::patch(patch_whip).delete(delete_whip),
        )
        .route("/whep/{room}", post(crate::egress::post))
        .route(
            "/whep/{room}/{session}",
            axum::routing::patch(patch_whep).delete(delete_whep),
        )
        .layer(DefaultBodyLimit::max(MAX_SDP_BYTES))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            limits::admission,
        ))
        .layer(middleware::from_fn(json_limit_errors));
    let routes = Router::new()
        .merge(media)
        .route("/ws/{room}", axum::routing::get(crate::chat::ws::get))
        .route(
            "/api/rooms/{room}/stage/{user}",
            post(crate::stage::control::post),
        )
        .merge(api::routes())
        .merge(admin::routes())
        .merge(web::routes())
        .merge(crate::egress::hls::routes())
        .merge(crate::egress::recorder::routes())
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(app.clone());
    // Around the whole router once, not around each route (`Router::layer` wraps every route,
    // which costs a clone of each layer per request).
    let outer = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            app,
            crate::peer::offer::options_links,
        ))
        .layer(middleware::from_fn(cors::headers))
        .service(routes);
    Router::new().fallback_service(outer)
}

/// Turns axum's plain-text body-limit rejection into the JSON error shape.
async fn json_limit_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_SDP_BYTES} bytes"),
        )
        .into_response();
    }
    response
}

async fn patch_whip(
    State(app): State<App>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    owner_only(&app, SessionKind::Whip, &room, &id, &headers)?;
    let target = (SessionKind::Whip, room.as_str(), id.as_str());
    session::patch(&app.sessions, target, app.config.public_ip, &headers, &body).await
}

async fn patch_whep(
    State(app): State<App>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    owner_only(&app, SessionKind::Whep, &room, &id, &headers)?;
    let target = (SessionKind::Whep, room.as_str(), id.as_str());
    session::patch(&app.sessions, target, app.config.public_ip, &headers, &body).await
}

/// RFC 9725 §4.3: a session resource is changed or ended with the token that created it (or
/// an admin's); an unknown session is left to the handler's `404`.
fn owner_only(
    app: &AppState,
    kind: SessionKind,
    room: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    match app.sessions.get(kind, room, id) {
        Some(session) => app.authorize_session(headers, &session),
        None => Ok(()),
    }
}

async fn delete_whip(
    State(app): State<App>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    owner_only(&app, SessionKind::Whip, &room, &id, &headers)?;
    let response = session::delete(&app.sessions, SessionKind::Whip, &room, &id)?;
    // The publisher's place is free once DELETE answers, so the next publisher (OBS stopped
    // and started again, another broadcaster) is not refused in the moment before the
    // session's task has cleaned up; that task releases it too, which is then a no-op.
    if let Some(r) = app.rooms.get(&room) {
        r.release_publisher(&id);
    }
    Ok(response)
}

async fn delete_whep(
    State(app): State<App>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    owner_only(&app, SessionKind::Whep, &room, &id, &headers)?;
    session::delete(&app.sessions, SessionKind::Whep, &room, &id)
}
