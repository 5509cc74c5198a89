//! Access checks of the HTTP routes (control plane, I/O shell over [`crate::auth::policy`]):
//! finds the request's token (`Authorization: Bearer`, or `?token=` where browsers cannot set
//! headers: WebSocket, HLS, recordings), the room's visibility, and asks the matrix.

use axum::http::{HeaderMap, header};

use super::{ApiError, AppState};
use crate::auth::{Action, AuthError, Principal, Visibility, bearer_token, policy};
use crate::peer::session::Session;

/// The token of a request: the Bearer header wins over `?token=`. A malformed header is an
/// error; an absent or empty token is `None`.
pub fn request_token(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
        .transpose()?;
    if let Some(token) = bearer_token(header)? {
        return Ok(Some(token.to_owned()));
    }
    Ok(query_param(query, "token"))
}

/// The percent-decoded value of `name` in a query string; `None` when absent or empty.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .filter(|v| !v.is_empty())
}

/// `query` without its `token` parameter (what is left is passed to protocol parsers).
pub fn without_token(query: Option<&str>) -> Option<String> {
    let rest: Vec<&str> = query?
        .split('&')
        .filter(|p| !p.is_empty() && *p != "token" && !p.starts_with("token="))
        .collect();
    (!rest.is_empty()).then(|| rest.join("&"))
}

/// RFC 3986 §2.1 percent-decoding (and `+` as space, as forms send it); bad escapes stay.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| bytes[i] == b'%' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 §2.3: everything but unreserved characters is escaped, so a token is safe in a
/// query and inside a quoted playlist attribute.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AppState {
    /// Whether `room` needs a token to be watched (`[access]`).
    pub fn visibility(&self, room: &str) -> Visibility {
        self.config.access.visibility(room)
    }

    /// The gate of a room-scoped route: the request's token against the matrix.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        room: &str,
        action: Action,
    ) -> Result<Principal, ApiError> {
        let token = request_token(headers, query)?;
        Ok(self
            .keys
            .authorize(token.as_deref(), room, self.visibility(room), action)?)
    }

    /// The gate of the admin API.
    pub fn authorize_admin(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = request_token(headers, None)?;
        Ok(self.keys.authorize_admin(token.as_deref())?)
    }

    /// May this request `PATCH`/`DELETE` `session` (its owner's token, or an admin)?
    pub fn authorize_session(
        &self,
        headers: &HeaderMap,
        session: &Session,
    ) -> Result<(), ApiError> {
        let token = request_token(headers, None)?;
        let principal = match token {
            None => Principal::Anonymous,
            Some(t) => self.keys.principal(&t)?,
        };
        let caller = principal.claims().map(|c| c.sub.as_str());
        policy::may_manage_session(
            principal.subject(),
            caller,
            &session.user.id,
            session.user.anonymous,
        )
        .map_err(|deny| match deny {
            policy::Deny::NeedToken => AuthError::Missing.into(),
            policy::Deny::Role => AuthError::NotOwner.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_the_query() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h, None).unwrap(), None);
        assert_eq!(
            request_token(&h, Some("a=1&token=x%2Ey")).unwrap(),
            Some("x.y".into())
        );
        assert_eq!(request_token(&h, Some("token=")).unwrap(), None);
        h.insert(header::AUTHORIZATION, "Bearer hdr".parse().unwrap());
        assert_eq!(
            request_token(&h, Some("token=q")).unwrap(),
            Some("hdr".into())
        );
        h.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(request_token(&h, None).unwrap_err().code, "invalid_token");
    }

    #[test]
    fn the_token_is_removed_from_protocol_queries() {
        assert_eq!(
            without_token(Some("_HLS_msn=3&token=abc&_HLS_part=1")),
            Some("_HLS_msn=3&_HLS_part=1".into())
        );
        assert_eq!(without_token(Some("token=abc")), None);
        assert_eq!(without_token(None), None);
        assert_eq!(without_token(Some("tokens=1")), Some("tokens=1".into()));
    }

    #[test]
    fn percent_coding_round_trips() {
        for s in ["a.b-c_d~", "a b&c=d\"e", "é%"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_encode("a\"b"), "a%22b");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
