//! Who may publish and watch (control plane, beside the media path): JWT claims, roles and the
//! server secret. Pure except for reading/creating the secret file at start.

mod secret;

pub use secret::load_or_create_secret;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a participant may do in a room (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owns the room's stage: publishes, moderates.
    Broadcaster,
    /// Invited on stage: publishes.
    Guest,
    /// Runs chat commands.
    Moderator,
    /// Watches and chats.
    Viewer,
}

impl Role {
    /// Broadcasters and guests may publish over WHIP.
    pub fn may_publish(self) -> bool {
        matches!(self, Role::Broadcaster | Role::Guest)
    }

    /// The lowercase name used in tokens and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Broadcaster => "broadcaster",
            Role::Guest => "guest",
            Role::Moderator => "moderator",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "broadcaster" => Ok(Role::Broadcaster),
            "guest" => Ok(Role::Guest),
            "moderator" => Ok(Role::Moderator),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "unknown role `{other}` (broadcaster, guest, moderator or viewer)"
            )),
        }
    }
}

/// The claims onair puts in and expects from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Stable user id.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// The room this token is for, or `*` for every room.
    pub room: String,
    /// What the bearer may do.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// True when the token is valid for `room`.
    pub fn covers_room(&self, room: &str) -> bool {
        self.room == "*" || self.room == room
    }
}

/// Why a token was refused. Maps to 401 (no or bad credentials) or 403 (valid but not allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error(
        "this action needs a token: send `Authorization: Bearer <token>` (mint one with `onair token`)"
    )]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    /// Signature, format or claims are wrong.
    #[error("the token is invalid")]
    Invalid,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// The token is for another room.
    #[error("the token is for another room")]
    WrongRoom,
    /// The role may not do this.
    #[error("a {0} token may not publish; use a broadcaster or guest token")]
    RoleMayNotPublish(Role),
}

impl AuthError {
    /// The machine-readable code of the JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Malformed | AuthError::Invalid => "invalid_token",
            AuthError::Expired => "token_expired",
            AuthError::WrongRoom => "wrong_room",
            AuthError::RoleMayNotPublish(_) => "forbidden",
        }
    }

    /// True for 401 (authenticate again), false for 403 (authenticated, not allowed).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::Missing | AuthError::Malformed | AuthError::Invalid | AuthError::Expired
        )
    }
}

/// Signs and verifies HS256 tokens with the server secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// Builds and signs claims that expire `ttl_secs` from now.
    pub fn mint_for(&self, room: &str, role: Role, sub: &str, name: &str, ttl_secs: u64) -> String {
        self.mint(&Claims {
            sub: sub.to_owned(),
            name: name.to_owned(),
            room: room.to_owned(),
            role,
            exp: unix_now() + ttl_secs,
        })
    }

    /// Verifies signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }

    /// Verifies an `Authorization` header value (`Bearer <token>`); `None` is [`AuthError::Missing`].
    pub fn verify_bearer(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        self.verify(token.trim())
    }

    /// The rule for WHIP: a valid broadcaster or guest token for this room.
    pub fn authorize_publish(&self, header: Option<&str>, room: &str) -> Result<Claims, AuthError> {
        let claims = self.verify_bearer(header)?;
        if !claims.covers_room(room) {
            return Err(AuthError::WrongRoom);
        }
        if !claims.role.may_publish() {
            return Err(AuthError::RoleMayNotPublish(claims.role));
        }
        Ok(claims)
    }

    /// The rule for WHEP on a public room: no token is fine; a token, if sent, must be valid
    /// and for this room.
    pub fn authorize_view(
        &self,
        header: Option<&str>,
        room: &str,
    ) -> Result<Option<Claims>, AuthError> {
        match header {
            None => Ok(None),
            Some(_) => {
                let claims = self.verify_bearer(header)?;
                if !claims.covers_room(room) {
                    return Err(AuthError::WrongRoom);
                }
                Ok(Some(claims))
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn publish_rules_follow_the_role_matrix() {
        let k = keys();
        let bearer = |role, room: &str| format!("Bearer {}", k.mint_for(room, role, "u1", "U", 60));
        assert!(
            k.authorize_publish(Some(&bearer(Role::Broadcaster, "a")), "a")
                .is_ok()
        );
        assert!(
            k.authorize_publish(Some(&bearer(Role::Guest, "a")), "a")
                .is_ok()
        );
        assert!(
            k.authorize_publish(Some(&bearer(Role::Broadcaster, "*")), "a")
                .is_ok()
        );
        for role in [Role::Viewer, Role::Moderator] {
            let e = k
                .authorize_publish(Some(&bearer(role, "a")), "a")
                .unwrap_err();
            assert_eq!(e, AuthError::RoleMayNotPublish(role));
            assert!(!e.is_unauthenticated());
        }
        let e = k
            .authorize_publish(Some(&bearer(Role::Broadcaster, "b")), "a")
            .unwrap_err();
        assert_eq!(e, AuthError::WrongRoom);
        assert_eq!(
            k.authorize_publish(None, "a").unwrap_err(),
            AuthError::Missing
        );
        assert_eq!(
            k.authorize_publish(Some("Basic abc"), "a").unwrap_err(),
            AuthError::Malformed
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let k = keys();
        let mut claims = Claims {
            sub: "u".into(),
            name: "n".into(),
            room: "a".into(),
            role: Role::Broadcaster,
            exp: unix_now() - 3600,
        };
        assert_eq!(k.verify(&k.mint(&claims)).unwrap_err(), AuthError::Expired);
        claims.exp = unix_now() + 3600;
        let other = TokenKeys::new(b"another-secret-of-enough-length!");
        assert_eq!(
            k.verify(&other.mint(&claims)).unwrap_err(),
            AuthError::Invalid
        );
        assert_eq!(k.verify("not.a.jwt").unwrap_err(), AuthError::Invalid);
        assert_eq!(k.verify(&k.mint(&claims)).unwrap(), claims);
    }

    #[test]
    fn viewing_needs_no_token_but_checks_one_if_sent() {
        let k = keys();
        assert_eq!(k.authorize_view(None, "a").unwrap(), None);
        let t = format!("Bearer {}", k.mint_for("b", Role::Viewer, "u", "U", 60));
        assert_eq!(
            k.authorize_view(Some(&t), "a").unwrap_err(),
            AuthError::WrongRoom
        );
        assert_eq!(
            k.authorize_view(Some("Bearer x"), "a").unwrap_err(),
            AuthError::Invalid
        );
    }
}
