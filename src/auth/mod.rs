//! Who may publish and watch (control plane, beside the media path): JWT claims, roles and the
//! server secret. Pure except for reading/creating the secret file at start.

pub mod policy;
mod secret;

pub use policy::{AccessConfig, Action, Deny, Subject, Visibility};
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
    /// The subject may not do this action ([`policy::decide`]).
    #[error("{} may not {}", .0.as_str(), .1.as_str())]
    Forbidden(Subject, Action),
    /// The session belongs to someone else.
    #[error(
        "this session was created with another user's token; only its owner or an admin may change or end it"
    )]
    NotOwner,
}

impl AuthError {
    /// The machine-readable code of the JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Malformed | AuthError::Invalid => "invalid_token",
            AuthError::Expired => "token_expired",
            AuthError::WrongRoom => "wrong_room",
            AuthError::RoleMayNotPublish(_) | AuthError::Forbidden(..) | AuthError::NotOwner => {
                "forbidden"
            }
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
    /// The server secret itself is an admin credential (`Authorization: Bearer <secret>`).
    secret: std::sync::Arc<[u8]>,
}

/// Claims plus the optional `admin` flag, as found in a token.
#[derive(Serialize, Deserialize)]
struct TokenClaims {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
}

/// Who a request comes from, once its token (if any) is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No token.
    Anonymous,
    /// A participant's token.
    User(Claims),
    /// A token with `"admin": true`, or the server secret.
    Admin(Claims),
}

impl Principal {
    /// The token's claims (an admin using the secret gets `sub` `admin`).
    pub fn claims(&self) -> Option<&Claims> {
        match self {
            Principal::Anonymous => None,
            Principal::User(c) | Principal::Admin(c) => Some(c),
        }
    }

    /// The matrix row of this principal (room coverage is checked by [`TokenKeys::authorize`]).
    pub fn subject(&self) -> Subject {
        match self {
            Principal::Anonymous => Subject::Anonymous,
            Principal::User(c) => Subject::Role(c.role),
            Principal::Admin(_) => Subject::Admin,
        }
    }

    /// True for admins.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin(_))
    }
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
            secret: secret.into(),
        }
    }

    /// Mints an admin token (`"admin": true`, every room) for `sub`.
    pub fn mint_admin(&self, sub: &str, name: &str, ttl_secs: u64) -> String {
        let claims = TokenClaims {
            claims: Claims {
                sub: sub.to_owned(),
                name: name.to_owned(),
                room: "*".to_owned(),
                role: Role::Broadcaster,
                exp: unix_now() + ttl_secs,
            },
            admin: true,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// Verifies a raw token (no `Bearer`): the server secret, or a signed, unexpired JWT.
    pub fn principal(&self, token: &str) -> Result<Principal, AuthError> {
        if constant_time_eq(token.as_bytes(), &self.secret) {
            return Ok(Principal::Admin(Claims {
                sub: "admin".to_owned(),
                name: "admin".to_owned(),
                room: "*".to_owned(),
                role: Role::Broadcaster,
                exp: u64::MAX,
            }));
        }
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        Ok(match data.claims.admin {
            true => Principal::Admin(data.claims.claims),
            false => Principal::User(data.claims.claims),
        })
    }

    /// The one gate of every room-scoped route: verifies `token` (absent = anonymous), checks
    /// that a participant's token covers `room`, then asks the matrix ([`policy::decide`]).
    pub fn authorize(
        &self,
        token: Option<&str>,
        room: &str,
        visibility: Visibility,
        action: Action,
    ) -> Result<Principal, AuthError> {
        let principal = match token {
            None => Principal::Anonymous,
            Some(t) => self.principal(t)?,
        };
        if let Principal::User(c) = &principal
            && !c.covers_room(room)
        {
            return Err(AuthError::WrongRoom);
        }
        match policy::decide(principal.subject(), action, visibility) {
            Ok(()) => Ok(principal),
            Err(Deny::NeedToken) => Err(AuthError::Missing),
            Err(Deny::Role) => match (action, principal.subject()) {
                (Action::Publish, Subject::Role(r)) => Err(AuthError::RoleMayNotPublish(r)),
                (_, who) => Err(AuthError::Forbidden(who, action)),
            },
        }
    }

    /// The gate of server-wide admin routes.
    pub fn authorize_admin(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        let principal = match token {
            None => Principal::Anonymous,
            Some(t) => self.principal(t)?,
        };
        match policy::decide(principal.subject(), Action::Admin, Visibility::Private) {
            Ok(()) => Ok(principal),
            Err(Deny::NeedToken) => Err(AuthError::Missing),
            Err(Deny::Role) => Err(AuthError::Forbidden(principal.subject(), Action::Admin)),
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

/// Compares without an early exit, so timing does not reveal how much of the secret matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header value: `Ok(None)` without a header,
/// an error when the header is not a Bearer token.
pub fn bearer_token(header: Option<&str>) -> Result<Option<&str>, AuthError> {
    let Some(header) = header else {
        return Ok(None);
    };
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(Some(token.trim()))
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
    fn admins_are_the_secret_or_an_admin_token() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let k = keys();
        let by_secret = k.principal(std::str::from_utf8(secret).unwrap()).unwrap();
        assert!(by_secret.is_admin());
        assert!(
            k.principal(&k.mint_admin("ops", "Ops", 60))
                .unwrap()
                .is_admin()
        );
        let user = k
            .principal(&k.mint_for("a", Role::Broadcaster, "u", "U", 60))
            .unwrap();
        assert_eq!(user.subject(), Subject::Role(Role::Broadcaster));
        assert!(k.principal("0123456789abcdef0123456789abcdeX").is_err());
        let admin = k.mint_admin("ops", "Ops", 60);
        assert!(k.authorize_admin(Some(&admin)).is_ok());
        let viewer = k.mint_for("a", Role::Viewer, "v", "V", 60);
        assert_eq!(
            k.authorize_admin(Some(&viewer)).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(k.authorize_admin(None).unwrap_err(), AuthError::Missing);
    }

    #[test]
    fn authorize_checks_room_then_matrix() {
        let k = keys();
        let viewer_b = k.mint_for("b", Role::Viewer, "v", "V", 60);
        let viewer_a = k.mint_for("a", Role::Viewer, "v", "V", 60);
        let priv_ = Visibility::Private;
        assert_eq!(
            k.authorize(Some(&viewer_b), "a", priv_, Action::ViewHls)
                .unwrap_err(),
            AuthError::WrongRoom
        );
        assert!(
            k.authorize(Some(&viewer_a), "a", priv_, Action::ViewHls)
                .is_ok()
        );
        assert_eq!(
            k.authorize(None, "a", priv_, Action::ViewHls).unwrap_err(),
            AuthError::Missing
        );
        assert!(
            k.authorize(None, "a", Visibility::Public, Action::ViewHls)
                .is_ok()
        );
        assert_eq!(
            k.authorize(Some(&viewer_a), "a", priv_, Action::Publish)
                .unwrap_err(),
            AuthError::RoleMayNotPublish(Role::Viewer)
        );
        let admin = k.mint_admin("ops", "Ops", 60);
        assert!(
            k.authorize(Some(&admin), "zzz", priv_, Action::Publish)
                .is_ok()
        );
        assert_eq!(bearer_token(Some("Bearer  x ")).unwrap(), Some("x"));
        assert_eq!(bearer_token(None).unwrap(), None);
        assert!(bearer_token(Some("Basic x")).is_err());
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
