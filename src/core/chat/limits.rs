//! Chat limits (chat path, pure): the `[chat]` section of the configuration and the token
//! bucket behind every rate limit. Time is Unix milliseconds passed in by the caller.

use serde::{Deserialize, Serialize};

/// Every chat limit, configurable in `onair.toml` under `[chat]`; the defaults suit a public
/// room of a few thousand people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatLimits {
    /// Longest chat message, in characters (after trimming).
    pub max_length: usize,
    /// Messages kept in memory per room.
    pub history: usize,
    /// Messages sent in the welcome (the newest ones; also capped at 48 KiB).
    pub welcome_history: usize,
    /// Chat messages a user may send in a burst...
    pub user_burst: u32,
    /// ...and then one per this many milliseconds.
    pub user_refill_ms: u64,
    /// Reactions a user may send in a burst...
    pub reaction_burst: u32,
    /// ...and then one per this many milliseconds.
    pub reaction_refill_ms: u64,
    /// Frames of any kind one connection may send in a burst...
    pub conn_burst: u32,
    /// ...and then one per this many milliseconds.
    pub conn_refill_ms: u64,
    /// Outgoing messages queued per connection; a slower reader loses messages beyond this.
    pub queue: usize,
    /// At most one presence update per this many milliseconds.
    pub presence_ms: u64,
    /// Anonymous viewers (no token) may write, not only read.
    pub anonymous_chat: bool,
    /// Write each broadcast's chat as JSON lines under `<data_dir>/chat/`.
    pub log: bool,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_length: 500,
            history: 100,
            welcome_history: 50,
            user_burst: 5,
            user_refill_ms: 1000,
            reaction_burst: 10,
            reaction_refill_ms: 250,
            conn_burst: 20,
            conn_refill_ms: 100,
            queue: 256,
            presence_ms: 500,
            anonymous_chat: true,
            log: true,
        }
    }
}

impl ChatLimits {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        check(
            (1..=4000).contains(&self.max_length),
            "chat.max_length must be within 1..=4000",
        )?;
        check(
            (1..=10_000).contains(&self.history),
            "chat.history must be within 1..=10000",
        )?;
        check(
            self.welcome_history <= self.history,
            "chat.welcome_history must not exceed chat.history",
        )?;
        check(
            self.user_burst >= 1 && self.reaction_burst >= 1 && self.conn_burst >= 1,
            "chat.*_burst must be at least 1",
        )?;
        check(
            (4..=65_536).contains(&self.queue),
            "chat.queue must be within 4..=65536",
        )?;
        check(
            (50..=60_000).contains(&self.presence_ms),
            "chat.presence_ms must be within 50..=60000",
        )?;
        Ok(())
    }

    /// Largest frame a client may send: the longest message with every character escaped
    /// (`\uXXXX\uXXXX` for a character outside the BMP) plus room for the other fields.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_length * 12 + 1024
    }
}

/// A token bucket: `capacity` tokens, one more every `refill_ms`. Levels are kept in
/// thousandths of a token so refills are exact in integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    capacity_milli: u64,
    refill_ms: u64,
    level_milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`. `refill_ms == 0` never limits.
    pub fn new(capacity: u32, refill_ms: u64, now_ms: u64) -> Self {
        let capacity_milli = u64::from(capacity.max(1)) * 1000;
        Self {
            capacity_milli,
            refill_ms,
            level_milli: capacity_milli,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        if self.refill_ms == 0 {
            self.level_milli = self.capacity_milli;
            return;
        }
        let gained = u128::from(elapsed) * 1000 / u128::from(self.refill_ms);
        let gained = u64::try_from(gained).unwrap_or(u64::MAX);
        self.level_milli = self
            .level_milli
            .saturating_add(gained)
            .min(self.capacity_milli);
    }

    /// Takes one token, or says how many milliseconds until one is there.
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.level_milli >= 1000 {
            self.level_milli -= 1000;
            return Ok(());
        }
        let missing = 1000 - self.level_milli;
        Err(missing.saturating_mul(self.refill_ms).div_ceil(1000).max(1))
    }

    /// True when the bucket has refilled completely (its state no longer matters).
    pub fn is_full(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        self.level_milli >= self.capacity_milli
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_refill_rate() {
        let mut b = TokenBucket::new(3, 1000, 10_000);
        for _ in 0..3 {
            assert_eq!(b.take(10_000), Ok(()));
        }
        assert_eq!(b.take(10_000), Err(1000));
        assert_eq!(b.take(10_400), Err(600));
        assert_eq!(b.take(11_000), Ok(()));
        assert_eq!(b.take(11_000), Err(1000));
        assert!(!b.is_full(12_000));
        assert!(b.is_full(14_000));
        assert_eq!(b.take(100_000), Ok(()), "refill is capped at capacity");
        assert_eq!(b.take(100_000), Ok(()));
        assert_eq!(b.take(100_000), Ok(()));
        assert!(b.take(100_000).is_err());
    }

    #[test]
    fn bucket_survives_clock_steps_backwards_and_huge_gaps() {
        let mut b = TokenBucket::new(1, 1000, 50_000);
        assert_eq!(b.take(50_000), Ok(()));
        assert!(b.take(10_000).is_err(), "time going back gives nothing");
        assert_eq!(b.take(u64::MAX), Ok(()));
        let mut unlimited = TokenBucket::new(1, 0, 0);
        for _ in 0..100 {
            assert_eq!(unlimited.take(0), Ok(()));
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert_eq!(ChatLimits::default().validate(), Ok(()));
        let bad = ChatLimits {
            queue: 1,
            ..ChatLimits::default()
        };
        assert!(bad.validate().unwrap_err().contains("chat.queue"));
        let bad = ChatLimits {
            welcome_history: 500,
            ..ChatLimits::default()
        };
        assert!(bad.validate().unwrap_err().contains("welcome_history"));
    }
}
