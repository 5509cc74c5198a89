//! TURN REST credentials (pure, no I/O): the time-limited username/password scheme that coturn
//! calls `use-auth-secret` (draft-uberti-behave-turn-rest-00 §2.2), shared with any coturn given
//! the same `static-auth-secret`.
//!
//! username = `<expiry unix seconds>:<user>`, password = `base64(HMAC-SHA1(secret, username))`.
//! The long-term credential key of RFC 8489 §9.2.2 is then `MD5(username ":" realm ":" password)`.

use base64::Engine;
use stun::crypto::{HashAlgorithm, HmacAlgorithm, RTCCryptoProvider, default_provider};

/// A username/password pair a client hands to its TURN client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `<expiry>:<user>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// Unix time (seconds) after which the server refuses the username.
    pub expires_unix: u64,
}

/// Mints credentials for `user`, valid `ttl_secs` from `unix_now`. Characters a username
/// must not hold (`:` would shift the user part, `"` would break a `Link` header) are replaced.
pub fn mint(secret: &[u8], user: &str, ttl_secs: u64, unix_now: u64) -> Credentials {
    let clean: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let expires_unix = unix_now.saturating_add(ttl_secs);
    let username = format!("{expires_unix}:{clean}");
    let password = rest_password(secret, &username);
    Credentials {
        username,
        password,
        expires_unix,
    }
}

/// `base64(HMAC-SHA1(secret, username))`: the password coturn derives for a REST username.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mac = hmac_sha1(secret, &[username.as_bytes()]);
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The expiry of a REST username (`<expiry>` or `<expiry>:<user>`), or `None` when it has no
/// numeric timestamp first.
pub fn username_expiry(username: &str) -> Option<u64> {
    let stamp = username.split(':').next()?;
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stamp.parse().ok()
}

/// The user part of a REST username (what quotas count), empty when there is none.
pub fn username_user(username: &str) -> &str {
    username.split_once(':').map(|(_, u)| u).unwrap_or("")
}

/// The long-term credential key of RFC 8489 §9.2.2: `MD5(username:realm:password)`.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    let input = format!("{username}:{realm}:{password}");
    provider()
        .crypto()
        .hash(HashAlgorithm::Md5, input.as_bytes())
        .expect("the ring provider implements MD5")
}

/// HMAC-SHA1 over the concatenation of `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut out = [0u8; 20];
    provider()
        .crypto()
        .new_hmac(HmacAlgorithm::Sha1, key)
        .and_then(|mut mac| mac.sign(parts, &mut out))
        .expect("the ring provider implements HMAC-SHA1");
    out
}

/// The crypto provider of the webrtc-rs stack (ring), shared by every call.
pub(crate) fn provider() -> &'static dyn RTCCryptoProvider {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<dyn RTCCryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| default_provider().expect("rtc-stun is built with the ring provider"))
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_coturn_rest_scheme() {
        // HMAC-SHA1("secret", "1700000000:alice"), computed independently with
        // `printf %s 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64`.
        let c = mint(b"secret", "alice", 100, 1_699_999_900);
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.password, EXPECTED_ALICE);
        assert_eq!(c.expires_unix, 1_700_000_000);
    }

    const EXPECTED_ALICE: &str = "d8soP47RbdIKLDUOpnJPVQyq5Ts=";

    #[test]
    fn usernames_parse() {
        assert_eq!(username_expiry("123:bob"), Some(123));
        assert_eq!(username_expiry("123"), Some(123));
        assert_eq!(username_expiry("bob"), None);
        assert_eq!(username_expiry(":bob"), None);
        assert_eq!(username_user("123:bob:x"), "bob:x");
        assert_eq!(mint(b"s", "a:b\"c", 1, 1).username, "2:a_b_c");
    }

    #[test]
    fn long_term_key_is_md5() {
        // Computed independently with `printf %s u:r:p | md5sum`.
        assert_eq!(
            hex::encode(long_term_key("u", "r", "p")),
            "44add22b6f3179b751eafd68ee370f7d"
        );
    }
}
