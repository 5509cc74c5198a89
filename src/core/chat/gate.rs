//! Per-connection gate (chat path, pure): every frame a connection sends passes here before it
//! reaches the room: the connection's rate limit, the frame size, UTF-8 and JSON. A flooding
//! connection is answered with at most one `rate_limited` error per second, then ignored.

use super::ChatError;
use super::limits::{ChatLimits, TokenBucket};
use super::message::{ClientMessage, parse_client};

/// Minimum interval between two `rate_limited` replies to one connection.
const RATE_NOTICE_INTERVAL_MS: u64 = 1000;

/// What to do with one inbound frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// A well-formed message for the room.
    Pass(ClientMessage),
    /// Refused: send this error back on the same connection.
    Reply(ChatError),
    /// Refused without a reply (a flood already told it is rate limited).
    Silent,
}

/// The state one connection keeps.
#[derive(Debug, Clone)]
pub struct ConnGate {
    bucket: TokenBucket,
    max_frame: usize,
    last_notice_ms: Option<u64>,
}

impl ConnGate {
    /// A fresh gate at `now_ms`.
    pub fn new(limits: &ChatLimits, now_ms: u64) -> Self {
        Self {
            bucket: TokenBucket::new(limits.conn_burst, limits.conn_refill_ms, now_ms),
            max_frame: limits.max_frame_bytes(),
            last_notice_ms: None,
        }
    }

    /// Checks one frame (text or binary data-channel message, WebSocket text frame).
    pub fn inbound(&mut self, frame: &[u8], now_ms: u64) -> GateVerdict {
        if let Err(retry_ms) = self.bucket.take(now_ms) {
            let due = self
                .last_notice_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= RATE_NOTICE_INTERVAL_MS);
            if !due {
                return GateVerdict::Silent;
            }
            self.last_notice_ms = Some(now_ms);
            return GateVerdict::Reply(ChatError::RateLimited { retry_ms });
        }
        if frame.len() > self.max_frame {
            return GateVerdict::Reply(ChatError::TooLong {
                max: self.max_frame,
                unit: "bytes",
            });
        }
        let Ok(text) = std::str::from_utf8(frame) else {
            return GateVerdict::Reply(ChatError::bad_request("messages are UTF-8 JSON text"));
        };
        match parse_client(text) {
            Ok(message) => GateVerdict::Pass(message),
            Err(e) => GateVerdict::Reply(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ChatLimits {
        ChatLimits {
            conn_burst: 3,
            conn_refill_ms: 100,
            max_length: 10,
            ..ChatLimits::default()
        }
    }

    #[test]
    fn frames_are_checked_and_the_connection_stays_usable() {
        let mut gate = ConnGate::new(&limits(), 0);
        assert!(matches!(
            gate.inbound(br#"{"type":"chat","text":"hi"}"#, 0),
            GateVerdict::Pass(ClientMessage::Chat { .. })
        ));
        let GateVerdict::Reply(e) = gate.inbound(b"{not json", 0) else {
            panic!("malformed JSON is answered");
        };
        assert_eq!(e.code(), "bad_request");
        let GateVerdict::Reply(e) = gate.inbound(&[0xff, 0xfe], 0) else {
            panic!("invalid UTF-8 is answered");
        };
        assert_eq!(e.code(), "bad_request");
        let big = vec![b' '; limits().max_frame_bytes() + 1];
        let GateVerdict::Reply(e) = gate.inbound(&big, 1000) else {
            panic!("oversized frames are answered");
        };
        assert_eq!(e.code(), "too_long");
        assert!(matches!(
            gate.inbound(br#"{"type":"chat","text":"again"}"#, 1000),
            GateVerdict::Pass(_)
        ));
    }

    #[test]
    fn a_flood_gets_one_rate_limited_reply_per_second() {
        let mut gate = ConnGate::new(&limits(), 0);
        let msg = br#"{"type":"reaction","emoji":"x"}"#;
        for _ in 0..3 {
            assert!(matches!(gate.inbound(msg, 0), GateVerdict::Pass(_)));
        }
        assert_eq!(
            gate.inbound(msg, 0),
            GateVerdict::Reply(ChatError::RateLimited { retry_ms: 100 })
        );
        for t in [10, 50, 90] {
            assert_eq!(gate.inbound(msg, t), GateVerdict::Silent, "at {t} ms");
        }
        // 200 ms after the burst two tokens have refilled: two pass, then silence again.
        assert!(matches!(gate.inbound(msg, 200), GateVerdict::Pass(_)));
        assert!(matches!(gate.inbound(msg, 200), GateVerdict::Pass(_)));
        assert_eq!(gate.inbound(msg, 200), GateVerdict::Silent);
        // Later the bucket is full again (capped at 3) and the next flood is told again.
        for _ in 0..3 {
            assert!(matches!(gate.inbound(msg, 1200), GateVerdict::Pass(_)));
        }
        assert!(matches!(
            gate.inbound(msg, 1200),
            GateVerdict::Reply(ChatError::RateLimited { .. })
        ));
    }
}
