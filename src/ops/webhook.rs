//! Webhooks, the pure part (control plane, sans-IO; time and randomness are passed in):
//! configuration, event bodies, HMAC-SHA256 signatures (RFC 2104 over SHA-256, FIPS 180-4),
//! the retry decision and the exponential backoff schedule with jitter. `delivery.rs` does the
//! HTTP.
//!
//! Signature header: `X-Onair-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`. A receiver recomputes the HMAC over the timestamp, a dot and the raw body,
//! compares in constant time, and refuses timestamps too far from its clock (replays).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-onair-signature";
/// The HTTP header carrying the event type.
pub const EVENT_HEADER: &str = "x-onair-event";
/// The HTTP header carrying the event id (stable across retries: receivers deduplicate on it).
pub const ID_HEADER: &str = "x-onair-event-id";

/// `[webhooks]` in `onair.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoints that receive every event (`http://` or `https://` URLs); empty: webhooks off.
    pub urls: Vec<String>,
    /// Extra PEM root certificates trusted for `https://` endpoints (a private CA, or a
    /// self-signed receiver), besides the public web roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// HMAC-SHA256 key for `X-Onair-Signature`; required (16+ characters) when `urls` is set.
    pub secret: Option<String>,
    /// Time allowed for one delivery attempt, connect to response.
    pub timeout_ms: u64,
    /// Further attempts after a network error or a 5xx answer (a 4xx is final).
    pub retries: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    pub backoff_ms: u64,
    /// Longest delay between attempts.
    pub max_backoff_ms: u64,
    /// Events waiting per endpoint; when full the oldest is dropped (and counted).
    pub queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            ca_file: None,
            secret: None,
            timeout_ms: 5000,
            retries: 5,
            backoff_ms: 500,
            max_backoff_ms: 30_000,
            queue: 1024,
        }
    }
}

impl WebhookConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for url in &self.urls {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .ok_or_else(|| {
                    format!("webhooks.urls: `{url}` must be an http:// or https:// URL")
                })?;
            if rest.is_empty() || rest.starts_with('/') || url.contains(char::is_whitespace) {
                return Err(format!("webhooks.urls: `{url}` has no host"));
            }
        }
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("webhooks.ca_file: cannot read {}: {e}", path.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "webhooks.ca_file: {} holds no PEM certificate",
                    path.display()
                ));
            }
        }
        if !self.urls.is_empty() && self.secret.as_ref().is_none_or(|s| s.len() < 16) {
            return Err(
                "webhooks.secret (16+ characters) is required when webhooks.urls is set".into(),
            );
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err("webhooks.timeout_ms must be within 100..=60000".into());
        }
        if self.retries > 20 {
            return Err("webhooks.retries must be at most 20".into());
        }
        if self.backoff_ms == 0 || self.max_backoff_ms < self.backoff_ms {
            return Err("webhooks.backoff_ms must be > 0 and <= max_backoff_ms".into());
        }
        if !(1..=100_000).contains(&self.queue) {
            return Err("webhooks.queue must be within 1..=100000".into());
        }
        Ok(())
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The first publisher of a room went live.
    RoomStarted,
    /// The last live publisher of a room left.
    RoomFinished,
    /// A WHIP (publisher) or WHEP (viewer) session began.
    ParticipantJoined,
    /// A WHIP or WHEP session ended.
    ParticipantLeft,
    /// A recording was finalised and can be downloaded.
    RecordingReady,
}

impl EventType {
    /// The `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RoomStarted => "room_started",
            EventType::RoomFinished => "room_finished",
            EventType::ParticipantJoined => "participant_joined",
            EventType::ParticipantLeft => "participant_left",
            EventType::RecordingReady => "recording_ready",
        }
    }
}

/// One event, serialised once and shared by every endpoint and attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Random id; the same on every retry.
    pub id: String,
    /// The type.
    pub kind: EventType,
    /// The JSON body.
    pub body: bytes::Bytes,
}

impl Event {
    /// `{"id","type","timestamp" (Unix ms),"room","data"}`.
    pub fn new(
        id: String,
        kind: EventType,
        timestamp_ms: u64,
        room: &str,
        data: serde_json::Value,
    ) -> Self {
        let body = serde_json::json!({
            "id": id,
            "type": kind.as_str(),
            "timestamp": timestamp_ms,
            "room": room,
            "data": data,
        });
        let body = serde_json::to_vec(&body).expect("a JSON value serialises");
        Self {
            id,
            kind,
            body: body.into(),
        }
    }
}

/// HMAC-SHA256 (RFC 2104 §2 with B = 64, L = 32).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn signed_payload(secret: &[u8], unix: u64, body: &[u8]) -> [u8; 32] {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(unix.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    hmac_sha256(secret, &message)
}

/// The `X-Onair-Signature` value for `body` sent at `unix` seconds.
pub fn sign(secret: &[u8], unix: u64, body: &[u8]) -> String {
    format!(
        "t={unix},v1={}",
        hex::encode(signed_payload(secret, unix, body))
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not `t=<digits>,v1=<64 hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further than the tolerance from now.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// The HMAC does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks a signature header as a receiver should: format, freshness (`tolerance` seconds
/// from `now_unix`), then the HMAC in constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: u64,
    tolerance: u64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok().filter(|d| d.len() == 32),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    if t.abs_diff(now_unix) > tolerance {
        return Err(VerifyError::Stale);
    }
    let expected = signed_payload(secret, t, body);
    let diff = expected
        .iter()
        .zip(&v1)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// What one attempt's outcome means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Network error, timeout or 5xx: try again if attempts are left.
    Retry,
    /// Any other status (4xx, 3xx): the receiver refused; retrying will not help.
    Refused,
}

/// The verdict on an HTTP status (`None`: no response, a network error or timeout).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        None | Some(500..=599) => Verdict::Retry,
        Some(_) => Verdict::Refused,
    }
}

/// Delay before retry number `retry` (0 for the first retry): `base * 2^retry` capped at
/// `max`, then "equal jitter": half of it fixed, half scaled by `jitter` in `[0, 1)`, so
/// receivers coming back from an outage are not hit by every server at once.
pub fn backoff(retry: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_vectors() {
        // RFC 4231 §4.2, test case 1.
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex::encode(mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // §4.3, test case 2: a short key.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // §4.7, test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_and_replays() {
        let body = br#"{"type":"room_started"}"#;
        let header = sign(b"0123456789abcdef", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        let ok = verify(b"0123456789abcdef", &header, body, 1_700_000_100, 300);
        assert_eq!(ok, Ok(()));
        let wrong_key = verify(b"0123456789abcdeX", &header, body, 1_700_000_000, 300);
        assert_eq!(wrong_key, Err(VerifyError::Mismatch));
        let tampered = verify(b"0123456789abcdef", &header, b"{}", 1_700_000_000, 300);
        assert_eq!(tampered, Err(VerifyError::Mismatch));
        let replay = verify(b"0123456789abcdef", &header, body, 1_700_001_000, 300);
        assert_eq!(replay, Err(VerifyError::Stale));
        let junk = verify(b"k", "v1=zz", body, 0, 300);
        assert_eq!(junk, Err(VerifyError::Malformed));
    }

    #[test]
    fn retries_on_network_errors_and_5xx_only() {
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(None), Verdict::Retry);
        assert_eq!(verdict(Some(503)), Verdict::Retry);
        assert_eq!(verdict(Some(400)), Verdict::Refused);
        assert_eq!(verdict(Some(404)), Verdict::Refused);
        assert_eq!(verdict(Some(301)), Verdict::Refused);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        let fixed: Vec<u64> = (0..8)
            .map(|r| backoff(r, base, max, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(fixed, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
        assert_eq!(backoff(2, base, max, 0.999_999).as_millis(), 1999);
        assert_eq!(backoff(40, base, max, 1.0), max);
    }

    #[test]
    fn events_have_the_documented_shape() {
        let e = Event::new(
            "abc".into(),
            EventType::RecordingReady,
            1_700_000_000_123,
            "demo",
            serde_json::json!({"file": "demo-1.mp4", "duration": 2.5, "size": 1000}),
        );
        let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["type"], "recording_ready");
        assert_eq!(v["timestamp"], 1_700_000_000_123u64);
        assert_eq!(v["room"], "demo");
        assert_eq!(v["data"]["file"], "demo-1.mp4");
    }

    #[test]
    fn configuration_is_checked() {
        let mut c = WebhookConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.urls = vec!["http://127.0.0.1:9/hook".into()];
        assert!(c.validate().unwrap_err().contains("secret"));
        c.secret = Some("0123456789abcdef".into());
        assert_eq!(c.validate(), Ok(()));
        c.urls = vec!["https://example.com/hook".into()];
        assert_eq!(c.validate(), Ok(()));
        c.urls = vec!["ftp://example.com/hook".into()];
        assert!(c.validate().unwrap_err().contains("https://"));
        c.urls = vec!["https://example.com/hook".into()];
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(c.validate().unwrap_err().contains("ca_file"));
        c.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into());
        assert!(c.validate().unwrap_err().contains("no PEM certificate"));
        c.ca_file = None;
        c.urls = vec!["http:///x".into()];
        assert!(c.validate().unwrap_err().contains("host"));
        let c = WebhookConfig {
            queue: 0,
            ..WebhookConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("queue"));
    }
}
