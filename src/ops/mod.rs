//! Operating onair (control plane beside the media path): server-wide counters for
//! `/metrics`, webhooks for room, participant and recording events, and the per-session
//! `tracing` span. Everything here is called from session tasks, HTTP handlers, chat hubs
//! and the recorder, never per packet, and never waits: webhooks are queued, not sent inline.

pub mod counters;
mod delivery;
pub mod prom;
pub mod totals;
pub mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

pub use counters::Counters;
pub use delivery::Webhooks;
pub use webhook::{Event, EventType, WebhookConfig};

use crate::egress::recorder::RecordingInfo;
use crate::peer::session::{Session, SessionKind, random_id};

/// A room with at least one live publisher.
struct LiveRoom {
    sessions: HashSet<String>,
    since: Instant,
}

/// Counters, webhooks and the bookkeeping behind room and participant events.
pub struct Ops {
    /// Server-wide counters.
    pub counters: Arc<Counters>,
    webhooks: Webhooks,
    /// Sessions that emitted `participant_joined`, with when.
    joined: Mutex<HashMap<String, Instant>>,
    /// Rooms that emitted `room_started`.
    live: Mutex<HashMap<String, LiveRoom>>,
    /// Monotonic media totals for `/metrics`.
    pub totals: Mutex<totals::MediaTotals>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("webhooks", &self.webhooks.enabled())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `kind` of a participant in events: who publishes and who watches.
fn participant_kind(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Whip => "publisher",
        SessionKind::Whep => "viewer",
    }
}

impl Ops {
    /// Counters, and webhook workers for `config.urls` (spawned on the current Tokio runtime).
    pub fn new(config: &WebhookConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let webhooks = if config.urls.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            Webhooks::start(&WebhookConfig::default(), counters.clone())
        } else {
            Webhooks::start(config, counters.clone())
        };
        Self {
            counters,
            webhooks,
            joined: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            totals: Mutex::new(totals::MediaTotals::default()),
        }
    }

    /// Queues an event for every endpoint (nothing when webhooks are off).
    pub fn emit(&self, kind: EventType, room: &str, data: serde_json::Value) {
        if self.webhooks.enabled() {
            self.webhooks
                .emit(Event::new(random_id(), kind, now_ms(), room, data));
        }
    }

    /// The span every log line of `session` carries (DESIGN.md §6): room, session, kind, user.
    pub fn span(session: &Session) -> tracing::Span {
        tracing::info_span!(
            "session",
            room = %session.room,
            session = %session.id,
            kind = session.kind.path(),
            user = %session.user.id,
            role = session.user.role.as_str(),
        )
    }

    fn participant(session: &Session) -> serde_json::Value {
        json!({
            "session": session.id,
            "kind": participant_kind(session.kind),
            "protocol": session.kind.path(),
            "user": session.user.id,
            "name": session.user.name,
            "role": session.user.role.as_str(),
            "anonymous": session.user.anonymous,
        })
    }

    /// A WHIP or WHEP session was created (its `201` is on the way): `participant_joined`.
    pub fn session_started(&self, session: &Session) {
        self.counters.session_started(session.kind);
        self.joined
            .lock()
            .expect("ops lock poisoned")
            .insert(session.id.clone(), Instant::now());
        self.emit(
            EventType::ParticipantJoined,
            &session.room,
            Self::participant(session),
        );
    }

    /// A session's task ended: `participant_left` (once), and `room_finished` when it was the
    /// room's last live publisher.
    pub fn session_ended(&self, session: &Session) {
        let joined = self
            .joined
            .lock()
            .expect("ops lock poisoned")
            .remove(&session.id);
        if let Some(joined) = joined {
            let mut data = Self::participant(session);
            data["duration"] = json!(round_ms(joined.elapsed()));
            self.emit(EventType::ParticipantLeft, &session.room, data);
        }
        if session.kind == SessionKind::Whip {
            self.publisher_gone(session);
        }
    }

    /// A publisher's media connected: `room_started` when nobody else was live in the room.
    pub fn publisher_live(&self, session: &Session) {
        let mut live = self.live.lock().expect("ops lock poisoned");
        let room = live
            .entry(session.room.clone())
            .or_insert_with(|| LiveRoom {
                sessions: HashSet::new(),
                since: Instant::now(),
            });
        let first = room.sessions.is_empty();
        room.sessions.insert(session.id.clone());
        drop(live);
        if first {
            self.emit(
                EventType::RoomStarted,
                &session.room,
                json!({ "publisher": Self::participant(session) }),
            );
        }
    }

    fn publisher_gone(&self, session: &Session) {
        let mut live = self.live.lock().expect("ops lock poisoned");
        let Some(room) = live.get_mut(&session.room) else {
            return;
        };
        if !room.sessions.remove(&session.id) || !room.sessions.is_empty() {
            return;
        }
        let since = room.since;
        live.remove(&session.room);
        drop(live);
        self.emit(
            EventType::RoomFinished,
            &session.room,
            json!({ "duration": round_ms(since.elapsed()) }),
        );
    }

    /// Rooms with a live publisher now, as the webhooks saw them.
    pub fn live_rooms(&self) -> usize {
        self.live.lock().expect("ops lock poisoned").len()
    }

    /// A recording was finalised: `recording_ready` with its file, duration and size.
    pub fn recording_ready(&self, info: &RecordingInfo) {
        self.counters
            .recordings_ready
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.emit(
            EventType::RecordingReady,
            &info.room,
            json!({
                "file": info.file,
                "duration": info.duration,
                "size": info.size,
                "url": info.url,
                "playlist": info.playlist,
                "start": info.start,
            }),
        );
    }

    /// Shutdown: gives queued webhooks up to `limit` to go out.
    pub async fn drain(&self, limit: Duration) {
        self.webhooks.drain(limit).await;
    }
}

/// Seconds with millisecond precision.
fn round_ms(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}
