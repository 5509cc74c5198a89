//! The stage shell (control plane, I/O): one task per room with people on stage turns stage
//! changes into chat `system` events (guest joined, left, muted, unmuted, removed) and RFC 6464
//! audio levels into `speaker` events for everyone in the room's chat; [`control`] is the
//! broadcaster's HTTP API to mute and remove guests. Decisions live in `core::stage`.

pub mod control;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::auth::Role;
use crate::core::stage::{SpeakerSelector, SystemEvent, speaker_json, system_json};
use crate::http::App;
use crate::room::{Room, StageView};

/// How often the active speaker is re-evaluated (so at most ~4 `speaker` events a second).
const SPEAKER_TICK: Duration = Duration::from_millis(250);

/// Starts the stage task of `room` unless one is running (called when a publisher connects).
pub fn ensure_task(app: &App, room: &Arc<Room>) {
    if room.start_stage_task() {
        app.tasks.spawn(run(app.clone(), room.clone()));
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Seen {
    name: String,
    role: Role,
    muted: bool,
}

fn seen(view: &StageView) -> HashMap<String, Seen> {
    view.members
        .iter()
        .map(|m| {
            let s = Seen {
                name: m.name.clone(),
                role: m.role,
                muted: m.is_muted(),
            };
            (m.user.clone(), s)
        })
        .collect()
}

/// Runs while anyone is on stage.
async fn run(app: App, room: Arc<Room>) {
    let mut rx = room.watch_stage();
    let mut before: HashMap<String, Seen> = HashMap::new();
    let mut speaker = SpeakerSelector::new();
    let mut tick = tokio::time::interval(SPEAKER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let mut empty_ticks = 0u32;
    tracing::debug!(room = room.name(), "stage task started");
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let view = rx.borrow_and_update().clone();
                let now = seen(&view);
                announce(&app, &room, &before, &now);
                before = now;
            }
            _ = tick.tick() => {
                let view = room.stage();
                let levels: Vec<(&str, u32)> = view
                    .members
                    .iter()
                    .map(|m| (m.user.as_str(), m.level.load(Ordering::Relaxed)))
                    .collect();
                let now_ms = started.elapsed().as_millis() as u64;
                if let Some(change) = speaker.update(&levels, now_ms) {
                    app.chat.broadcast(room.name(), speaker_json(change.as_deref()));
                }
                // Stop after a couple of seconds with nobody on stage; a join restarts it.
                empty_ticks = if view.members.is_empty() { empty_ticks + 1 } else { 0 };
                if empty_ticks >= 8 {
                    room.stage_task_stopped();
                    if room.stage().members.is_empty() || !room.start_stage_task() {
                        break;
                    }
                    empty_ticks = 0;
                }
            }
        }
    }
    tracing::debug!(room = room.name(), "stage task stopped");
}

/// Chat `system` events for what changed between two stage snapshots (guests only: the
/// broadcaster going live or leaving is the stream itself).
fn announce(app: &App, room: &Room, before: &HashMap<String, Seen>, now: &HashMap<String, Seen>) {
    let ts = crate::chat::now_ms();
    let send = |event, user: &str, s: &Seen| {
        if s.role == Role::Guest {
            let json = system_json(event, user, &s.name, s.role.as_str(), ts);
            app.chat.broadcast(room.name(), json);
        }
    };
    for (user, s) in now {
        match before.get(user) {
            None => send(SystemEvent::GuestJoined, user, s),
            Some(old) if old.muted != s.muted => {
                let event = if s.muted {
                    SystemEvent::GuestMuted
                } else {
                    SystemEvent::GuestUnmuted
                };
                send(event, user, s);
            }
            Some(_) => {}
        }
    }
    for (user, s) in before {
        if !now.contains_key(user) {
            let event = if room.was_removed(user) {
                SystemEvent::GuestRemoved
            } else {
                SystemEvent::GuestLeft
            };
            send(event, user, s);
        }
    }
}
