//! Presence coalescing (chat path, pure): joins, leaves and viewer-count changes are collected
//! and released as at most one `presence` message per interval, so a room of thousands does not
//! drown in them. A user who joins and leaves within one interval is not mentioned at all.

use super::message::{PresenceView, UserView};

/// Users listed per direction in one update; the counts tell the rest.
pub const MAX_LISTED: usize = 20;

/// Collects presence changes between updates.
#[derive(Debug, Clone)]
pub struct PresenceCoalescer {
    interval_ms: u64,
    last_sent_ms: Option<u64>,
    sent_counts: Option<(u64, u64)>,
    joined: Vec<UserView>,
    left: Vec<UserView>,
}

impl PresenceCoalescer {
    /// At most one update per `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            last_sent_ms: None,
            sent_counts: None,
            joined: Vec::new(),
            left: Vec::new(),
        }
    }

    /// A user's first connection joined the chat.
    pub fn joined(&mut self, user: UserView) {
        if let Some(i) = self.left.iter().position(|u| u.id == user.id) {
            self.left.remove(i);
        } else if self.joined.len() < MAX_LISTED {
            self.joined.push(user);
        }
    }

    /// A user's last connection left the chat.
    pub fn left(&mut self, user: UserView) {
        if let Some(i) = self.joined.iter().position(|u| u.id == user.id) {
            self.joined.remove(i);
        } else if self.left.len() < MAX_LISTED {
            self.left.push(user);
        }
    }

    /// The update to send now, if anything changed and the interval has passed.
    pub fn poll(&mut self, now_ms: u64, viewers: u64, chatters: u64) -> Option<PresenceView> {
        let changed = !self.joined.is_empty()
            || !self.left.is_empty()
            || self.sent_counts != Some((viewers, chatters));
        let due = self
            .last_sent_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.interval_ms);
        if !changed || !due {
            return None;
        }
        self.last_sent_ms = Some(now_ms);
        self.sent_counts = Some((viewers, chatters));
        Some(PresenceView {
            viewers,
            chatters,
            joined: std::mem::take(&mut self.joined),
            left: std::mem::take(&mut self.left),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::Role;

    fn user(id: &str) -> UserView {
        UserView {
            id: id.into(),
            name: id.to_uppercase(),
            role: Role::Viewer,
        }
    }

    #[test]
    fn updates_are_coalesced_to_one_per_interval() {
        let mut p = PresenceCoalescer::new(500);
        p.joined(user("a"));
        let first = p.poll(0, 1, 1).expect("first change goes out at once");
        assert_eq!(first.joined, vec![user("a")]);
        for i in 0..100 {
            p.joined(user(&format!("u{i}")));
        }
        assert_eq!(p.poll(499, 101, 101), None, "within the interval");
        let second = p.poll(500, 101, 101).expect("after the interval");
        assert_eq!(second.joined.len(), MAX_LISTED, "lists are capped");
        assert_eq!((second.viewers, second.chatters), (101, 101));
        assert_eq!(p.poll(5000, 101, 101), None, "nothing changed");
        assert!(p.poll(5000, 102, 101).is_some(), "a count change is news");
    }

    #[test]
    fn join_then_leave_within_an_interval_is_not_mentioned() {
        let mut p = PresenceCoalescer::new(500);
        assert!(p.poll(0, 0, 0).is_some());
        p.joined(user("a"));
        p.left(user("a"));
        assert_eq!(p.poll(1000, 0, 0), None);
        p.left(user("b"));
        p.joined(user("b"));
        assert_eq!(p.poll(2000, 0, 0), None);
        p.left(user("c"));
        assert_eq!(p.poll(3000, 0, 0).unwrap().left, vec![user("c")]);
    }
}
