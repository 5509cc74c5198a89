//! CORS and `Accept-Post` on every HTTP answer (HTTP shell, in front of all routes): WHIP/WHEP
//! pages on other origins can publish and play (RFC 9725 §4.8), players on other origins can
//! load LL-HLS, and WHIP/WHEP `OPTIONS` say which body `POST` takes (RFC 9725 §4.2). Fixed
//! header values, no per-request allocation: this runs for every LL-HLS part and playlist.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// Any origin: nothing onair serves depends on cookies (tokens travel in `Authorization` or
/// `?token=`).
const ALLOW_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET,POST,PATCH,DELETE,OPTIONS");
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("authorization,content-type,if-match");
/// What scripts on other origins may read: the WHIP/WHEP session URL, ICE-restart ETags, the
/// ICE-server `Link`s and the accepted offer type.
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("location,etag,link,accept-post");
/// Answers differ by these request headers (caches must key on them).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
const ACCEPT_POST: HeaderValue = HeaderValue::from_static("application/sdp");

/// Every `OPTIONS` is answered here (200, empty, the allowed methods and headers): a
/// preflight, or a plain `OPTIONS` of a WHIP/WHEP client asking for `Accept-Post` and its ICE
/// servers (`Link`, added outside this layer), which a page on another origin may read.
/// Every other answer gets the origin and exposed headers.
pub async fn headers(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        let path = request.uri().path();
        let whip_or_whep = path.starts_with("/whip/") || path.starts_with("/whep/");
        let mut response = Response::default();
        let h = response.headers_mut();
        h.insert(header::VARY, VARY);
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ORIGIN);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        if whip_or_whep {
            h.insert("accept-post", ACCEPT_POST);
        }
        return response;
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.append(header::VARY, VARY);
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ORIGIN);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    response
}
