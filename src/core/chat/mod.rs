//! Chat and moderation (chat path, beside the media path): the protocol of DESIGN.md §4 as a pure
//! state machine. No I/O: time is passed in as Unix milliseconds, and every call returns the
//! messages to send and the users to disconnect; `crate::chat` (the shell) does the sending.
//!
//! - [`message`]: the wire types (client -> server parsing, server -> client events).
//! - [`gate`]: per-connection checks before a frame reaches the room (size, UTF-8, JSON, rate).
//! - [`room`]: one room's chat: members, history, limits, slow mode, presence.
//! - `moderation`: the commands and who may run them.
//! - [`stage`]: the broadcaster's stage controls (mute, unmute, remove a guest) over chat.
//! - [`text`]: trimming, length, control characters, the word filter, reactions.
//! - [`limits`]: the configurable limits and the token bucket behind every rate limit.
//! - [`presence`]: join/leave/viewer-count updates coalesced to a few per second.
//! - `view`: the welcome and the `state` message as clients see them.

pub mod gate;
pub mod limits;
pub mod message;
mod moderation;
pub mod presence;
pub mod room;
pub mod stage;
pub mod text;
mod view;

#[cfg(test)]
mod moderation_tests;
#[cfg(test)]
mod room_tests;

pub use gate::{ConnGate, GateVerdict};
pub use limits::{ChatLimits, TokenBucket};
pub use message::{
    ChatLine, ClientMessage, ModCommand, PresenceView, Restriction, Role, ServerEvent, StateView,
    UserView, parse_client,
};
pub use room::{Audience, ChatRoom, ConnId, Identity, Output, Transport};
pub use stage::{StageAction, StageCommand};

/// Why a client's message or command was refused. Every variant maps to one of the error codes
/// of DESIGN.md §4 ([`ChatError::code`]) and is sent back as `{"type":"error",...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Too many messages from this user or connection.
    #[error("too many messages; wait {} s", secs_ceil(*retry_ms))]
    RateLimited {
        /// When the next message will be accepted.
        retry_ms: u64,
    },
    /// Slow mode: one message per interval per user.
    #[error("slow mode is on; you can write again in {} s", secs_ceil(*retry_ms))]
    SlowMode {
        /// When the next message will be accepted.
        retry_ms: u64,
    },
    /// The user is banned from this room.
    #[error("{}", banned_text(*retry_ms))]
    Banned {
        /// End of the ban (Unix ms); `None` for a ban without end.
        until: Option<u64>,
        /// Milliseconds left, when the ban ends.
        retry_ms: Option<u64>,
    },
    /// The user is muted for a while.
    #[error("you are timed out for {} s", secs_ceil(*retry_ms))]
    TimedOut {
        /// End of the timeout (Unix ms).
        until: u64,
        /// Milliseconds left.
        retry_ms: u64,
    },
    /// The sender's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The text (or frame) is longer than allowed.
    #[error("too long: at most {max} {unit}")]
    TooLong {
        /// The limit.
        max: usize,
        /// What is counted ("characters", "bytes").
        unit: &'static str,
    },
    /// Malformed JSON, a missing or wrong field, an unknown type or action.
    #[error("{0}")]
    BadRequest(String),
}

impl ChatError {
    /// The machine-readable code (DESIGN.md §4).
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::SlowMode { .. } => "slow_mode",
            ChatError::Banned { .. } => "banned",
            ChatError::TimedOut { .. } => "timed_out",
            ChatError::Forbidden(_) => "forbidden",
            ChatError::TooLong { .. } => "too_long",
            ChatError::BadRequest(_) => "bad_request",
        }
    }

    /// Milliseconds until trying again can succeed, when that is known.
    pub fn retry_ms(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_ms }
            | ChatError::SlowMode { retry_ms }
            | ChatError::TimedOut { retry_ms, .. } => Some(*retry_ms),
            ChatError::Banned { retry_ms, .. } => *retry_ms,
            _ => None,
        }
    }

    /// Shorthand for [`ChatError::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        ChatError::BadRequest(message.into())
    }

    /// Shorthand for [`ChatError::Forbidden`].
    pub fn forbidden(message: impl Into<String>) -> Self {
        ChatError::Forbidden(message.into())
    }
}

fn secs_ceil(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

fn banned_text(retry_ms: Option<u64>) -> String {
    match retry_ms {
        Some(ms) => format!("you are banned from this room for {} s", secs_ceil(ms)),
        None => "you are banned from this room".to_owned(),
    }
}
