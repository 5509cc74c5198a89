//! Server-wide operational counters (control plane; updated with relaxed atomics from the
//! HTTP handlers, chat hubs, recorder and session tasks; pure: no I/O, no locks on the
//! increment paths). Per-packet media counters stay in each room's `TrackHub`; this file holds
//! what has no room to live in, and the label sets of `/metrics` (all fixed, so bounded).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::chat::ModCommand;
use crate::peer::session::SessionKind;

/// What an LL-HLS request asked for (the `kind` label of `onair_hls_requests_total`).
pub const HLS_KINDS: [&str; 6] = [
    "multivariant",
    "playlist",
    "part",
    "segment",
    "init",
    "other",
];

/// Status codes counted one by one; anything else is counted as `other`.
pub const HLS_STATUSES: [u16; 8] = [200, 206, 304, 400, 403, 404, 500, 503];

/// Moderation actions by their wire name (DESIGN.md §4 chat JSON).
pub const MOD_ACTIONS: [&str; 11] = [
    "ban",
    "unban",
    "timeout",
    "delete",
    "clear",
    "slow",
    "guests_only",
    "filter_add",
    "filter_remove",
    "promote",
    "demote",
];

/// Index into [`HLS_KINDS`] for a file name under `/hls/{room}/`.
pub fn hls_kind(file: &str) -> usize {
    use crate::core::hls::Resource;
    match Resource::parse(file) {
        Some(Resource::Multivariant) => 0,
        Some(Resource::Playlist(_)) => 1,
        Some(Resource::Part { .. }) => 2,
        Some(Resource::Segment { .. }) => 3,
        Some(Resource::Init { .. }) => 4,
        None => 5,
    }
}

/// Index of a status code into [`HLS_STATUSES`], or `HLS_STATUSES.len()` for `other`.
pub fn hls_status(status: u16) -> usize {
    HLS_STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(HLS_STATUSES.len())
}

/// Index into [`MOD_ACTIONS`].
pub fn mod_action(command: &ModCommand) -> usize {
    match command {
        ModCommand::Ban { .. } => 0,
        ModCommand::Unban { .. } => 1,
        ModCommand::Timeout { .. } => 2,
        ModCommand::Delete { .. } => 3,
        ModCommand::Clear => 4,
        ModCommand::Slow { .. } => 5,
        ModCommand::GuestsOnly { .. } => 6,
        ModCommand::FilterAdd { .. } => 7,
        ModCommand::FilterRemove { .. } => 8,
        ModCommand::Promote { .. } => 9,
        ModCommand::Demote { .. } => 10,
    }
}

const STATUS_SLOTS: usize = HLS_STATUSES.len() + 1;

/// The counters; every field only grows except the gauges named so.
#[derive(Debug, Default)]
pub struct Counters {
    sessions_started: [AtomicU64; 2],
    hls_requests: [[AtomicU64; STATUS_SLOTS]; HLS_KINDS.len()],
    chat_messages: AtomicU64,
    chat_reactions: AtomicU64,
    chat_dropped: AtomicU64,
    mod_actions: [AtomicU64; MOD_ACTIONS.len()],
    mod_refused: AtomicU64,
    /// Bytes written to recording files.
    pub recording_bytes: AtomicU64,
    /// Recordings finalised into progressive MP4s.
    pub recordings_ready: AtomicU64,
    /// Webhook deliveries answered 2xx.
    pub webhooks_delivered: AtomicU64,
    /// Webhook deliveries given up (4xx, or retries exhausted).
    pub webhooks_failed: AtomicU64,
    /// Webhook attempts repeated after a network error or 5xx.
    pub webhooks_retried: AtomicU64,
    /// Webhook events dropped (oldest first) because a queue was full.
    pub webhooks_dropped: AtomicU64,
    /// Webhook events waiting (gauge).
    pub webhooks_queued: AtomicU64,
}

fn kind_index(kind: SessionKind) -> usize {
    match kind {
        SessionKind::Whip => 0,
        SessionKind::Whep => 1,
    }
}

impl Counters {
    /// A WHIP or WHEP session began.
    pub fn session_started(&self, kind: SessionKind) {
        self.sessions_started[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions of `kind` started so far.
    pub fn sessions_started(&self, kind: SessionKind) -> u64 {
        self.sessions_started[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// An LL-HLS request for `file` was answered with `status`.
    pub fn hls_request(&self, file: &str, status: u16) {
        self.hls_requests[hls_kind(file)][hls_status(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// `(kind, status, count)` of every non-zero HLS request counter.
    pub fn hls_requests(&self) -> Vec<(&'static str, String, u64)> {
        let mut out = Vec::new();
        for (k, row) in self.hls_requests.iter().enumerate() {
            for (s, counter) in row.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let status = HLS_STATUSES
                        .get(s)
                        .map_or_else(|| "other".to_owned(), u16::to_string);
                    out.push((HLS_KINDS[k], status, n));
                }
            }
        }
        out
    }

    /// A chat message (`reaction` false) or a reaction went out to a room.
    pub fn chat_sent(&self, reaction: bool) {
        let c = if reaction {
            &self.chat_reactions
        } else {
            &self.chat_messages
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Chat messages and reactions sent so far.
    pub fn chat(&self) -> (u64, u64) {
        (
            self.chat_messages.load(Ordering::Relaxed),
            self.chat_reactions.load(Ordering::Relaxed),
        )
    }

    /// Chat frames dropped for slow readers.
    pub fn chat_dropped(&self, n: u64) {
        self.chat_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Chat frames dropped so far.
    pub fn chat_dropped_total(&self) -> u64 {
        self.chat_dropped.load(Ordering::Relaxed)
    }

    /// A moderation command (index from [`mod_action`]) was carried out (`accepted`) or
    /// refused with an error.
    pub fn moderation(&self, action: usize, accepted: bool) {
        if accepted && action < MOD_ACTIONS.len() {
            self.mod_actions[action].fetch_add(1, Ordering::Relaxed);
        } else {
            self.mod_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(action, count)` for every action, and the refused count.
    pub fn moderation_totals(&self) -> ([(&'static str, u64); MOD_ACTIONS.len()], u64) {
        let mut out = [("", 0); MOD_ACTIONS.len()];
        for (i, name) in MOD_ACTIONS.iter().enumerate() {
            out[i] = (name, self.mod_actions[i].load(Ordering::Relaxed));
        }
        (out, self.mod_refused.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_requests_are_labelled_by_kind_and_status() {
        let c = Counters::default();
        c.hls_request("index.m3u8", 200);
        c.hls_request("index.m3u8", 200);
        c.hls_request("nope.txt", 404);
        c.hls_request("index.m3u8", 418);
        let got = c.hls_requests();
        assert!(got.contains(&("multivariant", "200".to_owned(), 2)));
        assert!(got.contains(&("other", "404".to_owned(), 1)));
        assert!(got.contains(&("multivariant", "other".to_owned(), 1)));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn moderation_counts_by_action() {
        let c = Counters::default();
        c.moderation(mod_action(&ModCommand::Clear), true);
        c.moderation(mod_action(&ModCommand::Slow { seconds: 3 }), true);
        c.moderation(mod_action(&ModCommand::Slow { seconds: 0 }), false);
        let (actions, refused) = c.moderation_totals();
        assert_eq!(actions[4], ("clear", 1));
        assert_eq!(actions[5], ("slow", 1));
        assert_eq!(refused, 1);
    }
}
