//! Rooms (between ingest and egress): the registry, each room's publisher slot, its viewers and
//! its two [`TrackHub`]s, which outlive any one publisher so viewers survive a reconnect.

mod track;

pub use track::{MediaPacket, Subscription, TrackHub, TrackKind, TrackStats};

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
            drop_counters,
        }
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

/// Why a publisher could not take the slot.
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
}

/// One room: a stage with one publishing slot, its viewers and its tracks.
pub struct Room {
    name: String,
    /// H.264 fan-out.
    pub video: Arc<TrackHub>,
    /// Opus fan-out.
    pub audio: Arc<TrackHub>,
    publisher: Mutex<Option<PublisherInfo>>,
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
    /// Publishers in the room (0 or 1).
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
    /// The publisher, if any.
    pub publisher: Option<PublisherInfo>,
    /// The viewers.
    pub viewer_list: Vec<ViewerInfo>,
    /// Video track counters.
    pub video: TrackStats,
    /// Audio track counters.
    pub audio: TrackStats,
}

impl Room {
    fn new(name: &str, config: &Config) -> Self {
        let hub = |kind| {
            Arc::new(TrackHub::new(
                kind,
                config.viewer_queue,
                config.retransmit_cache,
                config.pli_interval(),
            ))
        };
        Self {
            name: name.to_owned(),
            video: hub(TrackKind::Video),
            audio: hub(TrackKind::Audio),
            publisher: Mutex::new(None),
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

    /// Takes the publishing slot for `session`. The same user publishing again (a reconnect
    /// whose old session is not yet gone) takes over: the old session id is returned so the
    /// caller can end it. Anyone else gets [`SlotError::Taken`].
    pub fn claim_publisher(
        &self,
        session: &str,
        claims: &Claims,
        source: u64,
    ) -> Result<Option<String>, SlotError> {
        self.touch();
        let mut slot = self.publisher.lock().expect("room lock poisoned");
        let replaced = match slot.as_ref() {
            Some(current) if current.user != claims.sub => {
                return Err(SlotError::Taken {
                    room: self.name.clone(),
                    name: current.name.clone(),
                });
            }
            Some(current) => Some(current.session.clone()),
            None => None,
        };
        *slot = Some(PublisherInfo {
            session: session.to_owned(),
            user: claims.sub.clone(),
            name: claims.name.clone(),
            role: claims.role,
            source,
            connected: false,
        });
        Ok(replaced)
    }

    /// Marks the publisher of `session` connected.
    pub fn set_publisher_connected(&self, session: &str) {
        if let Some(p) = self
            .publisher
            .lock()
            .expect("room lock poisoned")
            .as_mut()
            .filter(|p| p.session == session)
        {
            p.connected = true;
            self.live.send_replace(Some(p.source));
        }
    }

    /// Frees the slot if `session` still holds it.
    pub fn release_publisher(&self, session: &str) {
        self.touch();
        let mut slot = self.publisher.lock().expect("room lock poisoned");
        if slot.as_ref().is_some_and(|p| p.session == session) {
            *slot = None;
            self.live.send_replace(None);
        }
    }

    /// Follows the connected publisher: its source id, `None` while nobody is live.
    pub fn watch_live(&self) -> watch::Receiver<Option<u64>> {
        self.live.subscribe()
    }

    /// The current publisher.
    pub fn publisher(&self) -> Option<PublisherInfo> {
        self.publisher.lock().expect("room lock poisoned").clone()
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

    /// Number of viewers.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// True when nobody publishes or watches and nothing happened for `grace`.
    fn is_idle(&self, grace: Duration) -> bool {
        self.publisher.lock().expect("room lock poisoned").is_none()
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
        let publisher = self.publisher();
        RoomSummary {
            room: self.name.clone(),
            live: publisher.as_ref().is_some_and(|p| p.connected),
            publishers: usize::from(publisher.is_some()),
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
        RoomDetail {
            summary: self.summary(),
            publisher: self.publisher(),
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
mod tests {
    use super::*;
    use crate::auth::Role;

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            name: sub.to_uppercase(),
            room: "r".into(),
            role: Role::Broadcaster,
            exp: u64::MAX,
        }
    }

    #[test]
    fn one_publisher_per_room_but_the_same_user_takes_over() {
        let rooms = Rooms::new(&Config::default());
        let room = rooms.get_or_create("r");
        assert_eq!(room.claim_publisher("s1", &claims("alice"), 1), Ok(None));
        let taken = room.claim_publisher("s2", &claims("bob"), 2).unwrap_err();
        assert!(taken.to_string().contains("ALICE"));
        assert_eq!(
            room.claim_publisher("s3", &claims("alice"), 3),
            Ok(Some("s1".into()))
        );
        room.release_publisher("s1");
        assert_eq!(
            room.publisher().unwrap().session,
            "s3",
            "stale release ignored"
        );
        room.release_publisher("s3");
        assert!(room.publisher().is_none());
    }

    #[test]
    fn empty_rooms_are_reaped_after_grace_only() {
        let config = Config {
            room_grace_secs: 0,
            ..Config::default()
        };
        let rooms = Rooms::new(&config);
        let room = rooms.get_or_create("a");
        room.add_viewer(ViewerInfo::new("v".into(), "V".into(), vec![]));
        assert_eq!(rooms.reap(), 0);
        room.remove_viewer("v");
        assert_eq!(rooms.reap(), 1);
        assert!(rooms.get("a").is_none());

        let patient = Rooms::new(&Config::default());
        patient.get_or_create("b");
        assert_eq!(patient.reap(), 0, "30 s grace has not passed");
    }

    #[test]
    fn room_names_are_path_safe() {
        assert!(is_valid_room_name("demo-1_A"));
        for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(65)] {
            assert!(!is_valid_room_name(bad), "{bad}");
        }
    }
}
