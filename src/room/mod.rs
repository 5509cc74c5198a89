//! Rooms (between ingest and egress, no I/O): the registry, each room's stage (the
//! broadcaster's slot and up to `stage.max_guests` guests, see [`stage`]), its viewers and its
//! [`TrackHub`]s. The broadcaster's two hubs ([`Room::hub`]) outlive any one publisher so
//! viewers, the LL-HLS tap and the recorder survive a reconnect; each guest has its own pair.

pub mod stage;
mod track;

pub use stage::{StageConfig, StageMember, StageView};
pub use track::{
    HubConfig, MediaPacket, PacketSink, Subscription, TrackHub, TrackKind, TrackStats,
};

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::watch;

use crate::auth::Claims;
use crate::config::Config;

/// Room names are path segments: 1-64 of `[A-Za-z0-9_-]`.
pub fn is_valid_room_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Who holds a room's publishing slot.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherInfo {
    /// WHIP session id.
    pub session: String,
    /// Token subject.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Role of the token (broadcaster or guest).
    pub role: crate::auth::Role,
    /// Source id stamped on every packet of this publisher.
    #[serde(skip)]
    pub source: u64,
    /// ICE+DTLS connected and media may flow.
    pub connected: bool,
    /// The broadcaster muted this guest.
    pub muted: bool,
}

impl PublisherInfo {
    fn of(m: &StageMember) -> Self {
        Self {
            session: m.session.clone(),
            user: m.user.clone(),
            name: m.name.clone(),
            role: m.role,
            source: m.source,
            connected: m.connected,
            muted: m.is_muted(),
        }
    }
}

/// A WHEP viewer, as listed by the API.
#[derive(Debug, Clone, Serialize)]
pub struct ViewerInfo {
    /// WHEP session id.
    pub session: String,
    /// Display name (generated for anonymous viewers).
    pub name: String,
    /// Packets dropped for this viewer because it fell behind.
    pub dropped: u64,
    /// Someone who may be on stage (broadcaster or guest) watching it, e.g. the studio's view
    /// of its guests: listed, but not part of the audience [`Room::viewer_count`] counts.
    #[serde(skip)]
    pub participant: bool,
    #[serde(skip)]
    drop_counters: Vec<Arc<AtomicU64>>,
}

impl ViewerInfo {
    /// A viewer whose drops are counted by `drop_counters` (one per subscribed track).
    pub fn new(session: String, name: String, drop_counters: Vec<Arc<AtomicU64>>) -> Self {
        Self {
            session,
            name,
            dropped: 0,
            participant: false,
            drop_counters,
        }
    }

    /// Marks the session as a stage participant's view (not counted as audience).
    pub fn participant(mut self, participant: bool) -> Self {
        self.participant = participant;
        self
    }

    fn snapshot(&self) -> Self {
        let mut v = self.clone();
        v.dropped = self
            .drop_counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        v
    }
}

/// Why a publisher could not take a place on stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// Someone else is live in this room.
    #[error("room `{room}` already has a broadcaster ({name})")]
    Taken {
        /// The room.
        room: String,
        /// Who is live.
        name: String,
    },
    /// Every guest place is taken.
    #[error("the stage of room `{room}` is full ({max} guests)")]
    StageFull {
        /// The room.
        room: String,
        /// `stage.max_guests`.
        max: usize,
    },
    /// The broadcaster removed this guest from the stage.
    #[error("the broadcaster removed you from the stage of room `{room}`")]
    Removed {
        /// The room.
        room: String,
    },
}

/// Why a stage control (mute, remove) did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageControlError {
    /// No guest with that id holds a place on stage.
    #[error("`{0}` is not a guest on this stage")]
    NotAGuest(String),
}

/// A place on stage just claimed: the member (hubs, controls) and the session it replaced.
#[derive(Debug)]
pub struct Claimed {
    /// The same user's previous session, to be ended by the caller.
    pub replaced: Option<String>,
    /// The new participant (not yet connected).
    pub member: StageMember,
}

/// One room: its stage, its viewers and its tracks.
pub struct Room {
    name: String,
    /// The broadcaster's H.264 fan-out (pass-through for LL-HLS and recordings).
    pub video: Arc<TrackHub>,
    /// The broadcaster's Opus fan-out.
    pub audio: Arc<TrackHub>,
    stage: Mutex<stage::StageState>,
    stage_tx: watch::Sender<Arc<StageView>>,
    stage_config: StageConfig,
    hub_config: HubConfig,
    stage_task: AtomicBool,
    viewers: DashMap<String, ViewerInfo>,
    last_active: Mutex<Instant>,
    created: SystemTime,
    /// Source id of the connected publisher, `None` while nobody is live (egress taps follow it).
    live: watch::Sender<Option<u64>>,
}

/// What the API shows of a room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    /// Room name.
    pub room: String,
    /// A publisher is connected.
    pub live: bool,
    /// Publishers in the room: the broadcaster and guests.
    pub publishers: usize,
    /// WHEP viewers in the room.
    pub viewers: usize,
    /// Seconds since the Unix epoch when the room was created.
    pub created: u64,
}

/// Everything the API shows of one room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: RoomSummary,
    /// The main publisher: the broadcaster, or the first guest while no broadcaster is on.
    pub publisher: Option<PublisherInfo>,
    /// Everyone holding a place on stage, broadcaster first.
    pub stage: Vec<PublisherInfo>,
    /// The viewers.
    pub viewer_list: Vec<ViewerInfo>,
    /// Video track counters.
    pub video: TrackStats,
    /// Audio track counters.
    pub audio: TrackStats,
}

impl Room {
    fn new(name: &str, config: &Config) -> Self {
        let hub_config = config.hub_config();
        let hub = |kind| Arc::new(TrackHub::new(kind, hub_config));
        Self {
            name: name.to_owned(),
            video: hub(TrackKind::Video),
            audio: hub(TrackKind::Audio),
            stage: Mutex::new(stage::StageState::default()),
            stage_tx: watch::Sender::new(Arc::new(StageView::default())),
            stage_config: config.stage.clone(),
            hub_config,
            stage_task: AtomicBool::new(false),
            viewers: DashMap::new(),
            last_active: Mutex::new(Instant::now()),
            created: SystemTime::now(),
            live: watch::Sender::new(None),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hub of `kind`.
    pub fn hub(&self, kind: TrackKind) -> &Arc<TrackHub> {
        match kind {
            TrackKind::Audio => &self.audio,
            TrackKind::Video => &self.video,
        }
    }

    fn touch(&self) {
        *self.last_active.lock().expect("room lock poisoned") = Instant::now();
    }

    fn stage_lock(&self) -> std::sync::MutexGuard<'_, stage::StageState> {
        self.stage.lock().expect("stage lock poisoned")
    }

    /// Publishes the stage to its watchers; called with the stage lock held so versions
    /// arrive in order.
    fn publish_stage(&self, state: &mut stage::StageState) {
        self.stage_tx.send_replace(Arc::new(state.view()));
    }

    /// Takes a place on stage for `session`: the broadcaster's slot for a broadcaster token,
    /// a guest place for a guest token. The same user publishing again (a reconnect whose old
    /// session is not yet gone) takes over its place, hubs and mute included, and the old
    /// session id is returned so the caller can end it. Another broadcaster gets
    /// [`SlotError::Taken`]; a guest beyond `stage.max_guests` [`SlotError::StageFull`]; a
    /// removed guest [`SlotError::Removed`].
    pub fn claim_publisher(
        &self,
        session: &str,
        claims: &Claims,
        source: u64,
    ) -> Result<Claimed, SlotError> {
        self.touch();
        let mut state = self.stage_lock();
        let broadcaster = claims.role == crate::auth::Role::Broadcaster;
        let current = if broadcaster {
            match state.broadcaster.as_mut() {
                Some(b) if b.user != claims.sub => {
                    return Err(SlotError::Taken {
                        room: self.name.clone(),
                        name: b.name.clone(),
                    });
                }
                other => other,
            }
        } else {
            if state.removed.contains(&claims.sub) {
                return Err(SlotError::Removed {
                    room: self.name.clone(),
                });
            }
            let max = self.stage_config.max_guests;
            let existing = state.guests.iter().position(|g| g.user == claims.sub);
            if existing.is_none() && state.guests.len() >= max {
                return Err(SlotError::StageFull {
                    room: self.name.clone(),
                    max,
                });
            }
            existing.map(|i| &mut state.guests[i])
        };
        if let Some(member) = current {
            // Takeover: same hubs and controls; the place stays on stage meanwhile.
            let replaced = std::mem::replace(&mut member.session, session.to_owned());
            member.source = source;
            member.name = claims.name.clone();
            let member = member.clone();
            return Ok(Claimed {
                replaced: Some(replaced),
                member,
            });
        }
        let (video, audio) = if broadcaster {
            (self.video.clone(), self.audio.clone())
        } else {
            (
                Arc::new(TrackHub::new(TrackKind::Video, self.hub_config)),
                Arc::new(TrackHub::new(TrackKind::Audio, self.hub_config)),
            )
        };
        let member = StageMember {
            user: claims.sub.clone(),
            name: claims.name.clone(),
            role: claims.role,
            session: session.to_owned(),
            source,
            connected: false,
            video,
            audio,
            muted: Arc::new(AtomicBool::new(false)),
            level: Arc::new(AtomicU32::new(0)),
        };
        if broadcaster {
            state.broadcaster = Some(member.clone());
        } else {
            state.guests.push(member.clone());
        }
        Ok(Claimed {
            replaced: None,
            member,
        })
    }

    /// Marks the publisher of `session` connected: it appears on stage.
    pub fn set_publisher_connected(&self, session: &str) {
        let mut state = self.stage_lock();
        let Some(member) = state.find_mut(session) else {
            return;
        };
        let was = std::mem::replace(&mut member.connected, true);
        if member.is_broadcaster() {
            self.live.send_replace(Some(member.source));
        }
        if !was {
            self.publish_stage(&mut state);
        }
    }

    /// Frees the place of `session` if it still holds one.
    pub fn release_publisher(&self, session: &str) {
        self.touch();
        let mut state = self.stage_lock();
        if state
            .broadcaster
            .as_ref()
            .is_some_and(|b| b.session == session)
        {
            state.broadcaster = None;
            self.live.send_replace(None);
        } else if let Some(i) = state.guests.iter().position(|g| g.session == session) {
            state.guests.remove(i);
        } else {
            return;
        }
        self.publish_stage(&mut state);
    }

    /// Mutes or unmutes guest `user` (the publisher stops or resumes forwarding its audio).
    /// Returns whether anything changed.
    pub fn set_guest_muted(&self, user: &str, muted: bool) -> Result<bool, StageControlError> {
        let mut state = self.stage_lock();
        let guest = state
            .guests
            .iter()
            .find(|g| g.user == user)
            .ok_or_else(|| StageControlError::NotAGuest(user.to_owned()))?;
        let changed = guest.muted.swap(muted, Ordering::Relaxed) != muted;
        if changed {
            self.publish_stage(&mut state);
        }
        Ok(changed)
    }

    /// Takes guest `user` off the stage and refuses them until the room is dropped; returns
    /// their WHIP session id (the caller ends their sessions).
    pub fn remove_guest(&self, user: &str) -> Result<String, StageControlError> {
        self.touch();
        let mut state = self.stage_lock();
        let i = state
            .guests
            .iter()
            .position(|g| g.user == user)
            .ok_or_else(|| StageControlError::NotAGuest(user.to_owned()))?;
        let guest = state.guests.remove(i);
        state.removed.insert(user.to_owned());
        self.publish_stage(&mut state);
        Ok(guest.session)
    }

    /// True when the broadcaster removed `user` from this room's stage.
    pub fn was_removed(&self, user: &str) -> bool {
        self.stage_lock().removed.contains(user)
    }

    /// Follows the connected broadcaster: its source id, `None` while no broadcaster is live
    /// (the LL-HLS tap and recorder follow it).
    pub fn watch_live(&self) -> watch::Receiver<Option<u64>> {
        self.live.subscribe()
    }

    /// The broadcaster, if one holds the slot.
    pub fn publisher(&self) -> Option<PublisherInfo> {
        self.stage_lock()
            .broadcaster
            .as_ref()
            .map(PublisherInfo::of)
    }

    /// Who is on stage now (connected participants, broadcaster first, guests in join order),
    /// with each participant's own `video`/`audio` [`TrackHub`] to subscribe to.
    pub fn stage(&self) -> Arc<StageView> {
        self.stage_tx.borrow().clone()
    }

    /// Stage changes, for the composite and WHEP viewers: the receiver sees a new
    /// [`StageView`] (higher `version`) whenever someone joins or leaves the stage or is muted
    /// or unmuted. Typical use: `let mut rx = room.watch_stage(); loop { let view =
    /// rx.borrow_and_update().clone(); ...; rx.changed().await? }`. The broadcaster's hubs are
    /// also [`Room::hub`]; a guest's hubs live while the guest is on stage (and while anyone
    /// still holds their `Arc`).
    pub fn watch_stage(&self) -> watch::Receiver<Arc<StageView>> {
        self.stage_tx.subscribe()
    }

    /// Claims the right to run the room's stage task; false if one is running.
    pub fn start_stage_task(&self) -> bool {
        !self.stage_task.swap(true, Ordering::AcqRel)
    }

    /// The stage task stopped (a later join starts a new one).
    pub fn stage_task_stopped(&self) {
        self.stage_task.store(false, Ordering::Release);
    }

    /// The `[stage]` settings of this room.
    pub fn stage_config(&self) -> &StageConfig {
        &self.stage_config
    }

    /// Adds a viewer.
    pub fn add_viewer(&self, info: ViewerInfo) {
        self.touch();
        self.viewers.insert(info.session.clone(), info);
    }

    /// Removes a viewer.
    pub fn remove_viewer(&self, session: &str) {
        self.touch();
        self.viewers.remove(session);
    }

    /// Number of viewers in the audience (stage participants watching are not counted).
    pub fn viewer_count(&self) -> usize {
        self.viewers.iter().filter(|v| !v.participant).count()
    }

    /// True when nobody publishes or watches and nothing happened for `grace`.
    fn is_idle(&self, grace: Duration) -> bool {
        self.stage_lock().all().next().is_none()
            && self.viewers.is_empty()
            && self
                .last_active
                .lock()
                .expect("room lock poisoned")
                .elapsed()
                >= grace
    }

    /// The summary for the API.
    pub fn summary(&self) -> RoomSummary {
        let (live, publishers) = {
            let stage = self.stage_lock();
            (stage.all().any(|m| m.connected), stage.all().count())
        };
        RoomSummary {
            room: self.name.clone(),
            live,
            publishers,
            viewers: self.viewer_count(),
            created: self
                .created
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The detail for the API.
    pub fn detail(&self) -> RoomDetail {
        let stage: Vec<PublisherInfo> = self.stage_lock().all().map(PublisherInfo::of).collect();
        RoomDetail {
            summary: self.summary(),
            publisher: stage.first().cloned(),
            stage,
            viewer_list: self.viewers.iter().map(|v| v.snapshot()).collect(),
            video: self.video.stats(),
            audio: self.audio.stats(),
        }
    }
}

/// All rooms of the server. Rooms appear on first publish or view and are dropped after a
/// grace period once empty.
pub struct Rooms {
    rooms: DashMap<String, Arc<Room>>,
    config: Config,
    next_source: AtomicU64,
}

impl Rooms {
    /// An empty registry whose rooms use `config`'s queue and PLI settings.
    pub fn new(config: &Config) -> Self {
        Self {
            rooms: DashMap::new(),
            config: config.clone(),
            next_source: AtomicU64::new(1),
        }
    }

    /// The room named `name`, created if needed. The caller has validated the name.
    pub fn get_or_create(&self, name: &str) -> Arc<Room> {
        let room = self
            .rooms
            .entry(name.to_owned())
            .or_insert_with(|| {
                tracing::info!(room = name, "room created");
                Arc::new(Room::new(name, &self.config))
            })
            .clone();
        room.touch();
        room
    }

    /// The room named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.get(name).map(|r| r.clone())
    }

    /// Every room (a snapshot of the registry).
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.rooms.iter().map(|r| r.clone()).collect()
    }

    /// Summaries of every room, sorted by name.
    pub fn list(&self) -> Vec<RoomSummary> {
        let mut list: Vec<_> = self.rooms.iter().map(|r| r.summary()).collect();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        list
    }

    /// A fresh source id for a new publisher session.
    pub fn next_source(&self) -> u64 {
        self.next_source.fetch_add(1, Ordering::Relaxed)
    }

    /// Drops rooms idle for the grace period; returns how many.
    pub fn reap(&self) -> usize {
        let grace = self.config.room_grace();
        let before = self.rooms.len();
        self.rooms.retain(|name, room| {
            let keep = !room.is_idle(grace);
            if !keep {
                tracing::info!(room = %name, "room dropped after its grace period");
            }
            keep
        });
        before - self.rooms.len()
    }
}

#[cfg(test)]
mod tests;
