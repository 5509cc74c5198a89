//! The stage of a room (between ingest and egress, no I/O): the broadcaster plus up to
//! `stage.max_guests` guests, each with its own pair of [`TrackHub`]s, and a `watch` of who is
//! on stage that WHEP viewers, the stage shell and the composite follow.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use super::TrackHub;
use crate::auth::Role;

/// `[stage]` in `onair.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageConfig {
    /// Guests who may be on stage with the broadcaster at once (0-16). A WHEP viewer gets at
    /// most `1 + max_guests` slots.
    pub max_guests: usize,
}

impl Default for StageConfig {
    fn default() -> Self {
        Self { max_guests: 4 }
    }
}

impl StageConfig {
    /// Checks the limits; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_guests > 16 {
            return Err("stage.max_guests must be within 0..=16".into());
        }
        Ok(())
    }

    /// Most slots one WHEP session may have.
    pub fn max_slots(&self) -> usize {
        1 + self.max_guests
    }
}

/// One publisher on stage: who, its session, its hubs and its controls.
#[derive(Clone)]
pub struct StageMember {
    /// Token `sub`.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Broadcaster or guest.
    pub role: Role,
    /// WHIP session id.
    pub session: String,
    /// Source id stamped on this publisher's packets.
    pub source: u64,
    /// ICE+DTLS connected and media may flow.
    pub connected: bool,
    /// This participant's H.264 fan-out.
    pub video: Arc<TrackHub>,
    /// This participant's Opus fan-out.
    pub audio: Arc<TrackHub>,
    /// Set by the broadcaster: the publisher drops this participant's audio.
    pub muted: Arc<AtomicBool>,
    /// Smoothed RFC 6464 loudness (0 silence - 127 full scale), written by the publisher.
    pub level: Arc<AtomicU32>,
}

impl StageMember {
    /// True for the broadcaster.
    pub fn is_broadcaster(&self) -> bool {
        self.role == Role::Broadcaster
    }

    /// Whether the broadcaster muted this participant.
    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for StageMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageMember")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("session", &self.session)
            .field("connected", &self.connected)
            .field("muted", &self.is_muted())
            .finish()
    }
}

/// Who is on stage right now: connected publishers only, broadcaster first, then guests in
/// the order they joined. `version` grows with every change (a mute included).
#[derive(Debug, Clone, Default)]
pub struct StageView {
    /// Increases on every change.
    pub version: u64,
    /// The participants.
    pub members: Vec<StageMember>,
}

impl StageView {
    /// The participant `user`, if on stage.
    pub fn member(&self, user: &str) -> Option<&StageMember> {
        self.members.iter().find(|m| m.user == user)
    }
}

/// The mutable stage behind the room's lock.
#[derive(Default)]
pub(super) struct StageState {
    pub broadcaster: Option<StageMember>,
    pub guests: Vec<StageMember>,
    /// Guests the broadcaster removed; refused until the room is dropped.
    pub removed: HashSet<String>,
    pub version: u64,
}

impl StageState {
    /// Everyone holding a place, broadcaster first.
    pub fn all(&self) -> impl Iterator<Item = &StageMember> {
        self.broadcaster.iter().chain(self.guests.iter())
    }

    pub fn find_mut(&mut self, session: &str) -> Option<&mut StageMember> {
        self.broadcaster
            .iter_mut()
            .chain(self.guests.iter_mut())
            .find(|m| m.session == session)
    }

    /// The connected participants, for the watch.
    pub fn view(&mut self) -> StageView {
        self.version += 1;
        StageView {
            version: self.version,
            members: self.all().filter(|m| m.connected).cloned().collect(),
        }
    }
}
