//! One room's chat hub (chat path, I/O shell): a task that owns the room's [`ChatRoom`], takes
//! joins, leaves and messages from every connection of both transports, serialises each
//! outgoing message once and queues it for its recipients, writes the broadcast's chat log,
//! carries bans out to the media sessions, and ends itself once the room is idle.
//!
//! Frames for the whole room go out at most once per [`COALESCE`]: one that comes sooner after
//! the last fan-out waits for the rest of that interval and leaves with the others, so a busy
//! room wakes (and writes to) each connection once per interval rather than once per message.
//! Anything else (a join, a leave, a frame for some connections, a ban) first sends what
//! waits, so every connection still gets its frames in the order the room made them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::conn::{ConnTx, Frame, fan_out, fan_out_all, frame};
use super::log::ChatLog;
use super::now_ms;
use crate::core::chat::{
    Audience, ChatError, ChatRoom, ClientMessage, ConnId, Identity, Output, Role, Transport,
};
use crate::http::App;

/// Commands queued per hub before connections wait (each connection is rate limited).
const HUB_QUEUE: usize = 4096;
/// Commands handled per wake-up.
const BATCH: usize = 256;
/// Shortest time between two fan-outs to the whole room (what a room-wide frame may wait).
const COALESCE: Duration = Duration::from_millis(20);
/// How long a ban waits for the banned user's chat connections to flush before their media
/// sessions end.
const BAN_FLUSH: Duration = Duration::from_secs(2);

/// Why a join did not happen.
#[derive(Debug)]
pub enum JoinError {
    /// The room refused (a ban).
    Refused(ChatError),
    /// The hub stopped meanwhile; join a fresh one.
    HubGone,
}

/// Counters of one hub, for the API.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct HubStats {
    /// Chat connections.
    pub members: usize,
    /// Messages broadcast (chat and reactions).
    pub messages: u64,
    /// Frames dropped for slow readers.
    pub dropped: u64,
    /// The broadcast's chat is being written to disk.
    pub logging: bool,
}

pub(crate) enum Command {
    Join {
        conn: ConnId,
        identity: Identity,
        transport: Transport,
        tx: ConnTx,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Leave {
        conn: ConnId,
    },
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    CheckBan {
        user: String,
        role: Role,
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
    Stats {
        reply: oneshot::Sender<HubStats>,
    },
    /// A server-made frame for every connection (stage `system` and `speaker` events).
    Broadcast {
        frame: Frame,
    },
}

/// A handle on a running hub.
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) id: u64,
    tx: mpsc::Sender<Command>,
}

impl HubHandle {
    /// Joins `conn`; its welcome is queued on `tx` before this returns.
    pub(crate) async fn join(
        &self,
        conn: ConnId,
        identity: Identity,
        transport: Transport,
        tx: ConnTx,
    ) -> Result<(), JoinError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Join {
            conn,
            identity,
            transport,
            tx,
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return Err(JoinError::HubGone);
        }
        answer.await.unwrap_or(Err(JoinError::HubGone))
    }

    /// Tells the hub `conn` is gone.
    pub(crate) async fn leave(&self, conn: ConnId) {
        let _ = self.tx.send(Command::Leave { conn }).await;
    }

    /// Hands a parsed message to the hub; false when the hub is gone.
    pub(crate) async fn message(&self, conn: ConnId, message: ClientMessage) -> bool {
        self.tx
            .send(Command::Message { conn, message })
            .await
            .is_ok()
    }

    /// Whether `user` is banned from the room.
    pub(crate) async fn check_ban(&self, user: &str, role: Role) -> Result<(), ChatError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::CheckBan {
            user: user.to_owned(),
            role,
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return Ok(()); // the hub stopped, so it held no ban
        }
        answer.await.unwrap_or(Ok(()))
    }

    /// Queues `frame` for every connection of the room without waiting; false when the hub
    /// is gone or its queue is full (the frame is dropped).
    pub(crate) fn broadcast(&self, frame: Frame) -> bool {
        self.tx.try_send(Command::Broadcast { frame }).is_ok()
    }

    /// The hub's counters, `None` if it stopped.
    pub(crate) async fn stats(&self) -> Option<HubStats> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Command::Stats { reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Starts the hub of `room`.
pub(crate) fn spawn(app: &App, room: &str, id: u64) -> HubHandle {
    let (tx, rx) = mpsc::channel(HUB_QUEUE);
    let limits = app.config.chat.clone();
    let prefix = format!("{:x}", now_ms() % 0xff_ffff);
    let log_dir = limits.log.then(|| app.config.data_dir.join("chat"));
    let hub = Hub {
        app: app.clone(),
        name: room.to_owned(),
        id,
        room: ChatRoom::new(limits, prefix),
        conns: HashMap::new(),
        log: ChatLog::new(log_dir, room),
        live: false,
        idle_since: None,
        pending: Vec::new(),
        last_fan_out: Instant::now()
            .checked_sub(COALESCE)
            .unwrap_or_else(Instant::now),
        messages: 0,
        dropped: 0,
    };
    tokio::spawn(hub.run(rx));
    HubHandle { id, tx }
}

struct Hub {
    app: App,
    name: String,
    id: u64,
    room: ChatRoom,
    conns: HashMap<ConnId, ConnTx>,
    log: ChatLog,
    live: bool,
    idle_since: Option<Instant>,
    /// Room-wide frames waiting for the next fan-out, oldest first.
    pending: Vec<Frame>,
    last_fan_out: Instant,
    messages: u64,
    dropped: u64,
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        tracing::debug!(room = %self.name, "chat hub started");
        let mut tick = tokio::time::interval(Duration::from_millis(self.room_limits_presence()));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let due = (!self.pending.is_empty()).then(|| self.last_fan_out + COALESCE);
            let flush = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for command in batch.drain(..) {
                        self.command(command);
                    }
                }
                _ = tick.tick() => {
                    self.tick();
                    if self.should_stop() {
                        break;
                    }
                }
                _ = flush => self.flush(),
            }
            if self.last_fan_out.elapsed() >= COALESCE {
                self.flush();
            }
        }
        self.flush();
        self.stop(rx);
    }

    fn room_limits_presence(&self) -> u64 {
        self.app.config.chat.presence_ms
    }

    fn media_viewers(&self) -> u64 {
        self.app
            .rooms
            .get(&self.name)
            .map_or(0, |r| r.viewer_count() as u64)
    }

    fn command(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Join {
                conn,
                identity,
                transport,
                tx,
                reply,
            } => {
                // The welcome's history already holds what waits: not twice to the newcomer.
                self.flush();
                let viewers = self.media_viewers();
                match self.room.join(conn, identity, transport, viewers, now) {
                    Ok(out) => {
                        self.conns.insert(conn, tx);
                        self.apply(out);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(JoinError::Refused(e)));
                    }
                }
            }
            Command::Leave { conn } => {
                self.flush();
                self.conns.remove(&conn);
                let out = self.room.leave(conn, self.media_viewers(), now);
                self.apply(out);
            }
            Command::Message { conn, message } => {
                let action = match &message {
                    crate::core::chat::ClientMessage::Mod(command) => {
                        Some(crate::ops::counters::mod_action(command))
                    }
                    _ => None,
                };
                let out = self.room.handle(conn, message, now);
                if let Some(command) = action {
                    let refused = matches!(
                        out.as_slice(),
                        [crate::core::chat::Output::Send {
                            event: crate::core::chat::ServerEvent::Error { .. },
                            ..
                        }]
                    );
                    self.app.ops.counters.moderation(command, !refused);
                }
                self.apply(out);
            }
            Command::CheckBan { user, role, reply } => {
                let _ = reply.send(self.room.check_ban(&user, role, now));
            }
            Command::Broadcast { frame } => self.pending.push(frame),
            Command::Stats { reply } => {
                let _ = reply.send(HubStats {
                    members: self.conns.len(),
                    messages: self.messages,
                    dropped: self.dropped,
                    logging: self.log.is_open(),
                });
            }
        }
    }

    /// Carries out what the room decided.
    fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { to, event, log } => {
                    let frame: Frame = frame(&event);
                    if log {
                        self.log.line(&frame);
                    }
                    if matches!(
                        event,
                        crate::core::chat::ServerEvent::Chat(_)
                            | crate::core::chat::ServerEvent::Reaction { .. }
                    ) {
                        self.messages += 1;
                        let reaction =
                            matches!(event, crate::core::chat::ServerEvent::Reaction { .. });
                        self.app.ops.counters.chat_sent(reaction);
                    }
                    if to == Audience::All {
                        self.pending.push(frame);
                        continue;
                    }
                    self.flush();
                    let result = fan_out(&self.conns, &to, &frame);
                    if result.dropped > 0 {
                        self.note_drops(result.dropped);
                    }
                }
                Output::Disconnect { user, conns } => {
                    // The banned user's connections get what waits before they close.
                    self.flush();
                    self.disconnect(user, conns);
                }
                Output::Stage { conn, action, user } => {
                    self.flush();
                    // The same code path as `POST /api/rooms/{room}/stage/{user}`; the stage
                    // task's `system` event is the visible effect, a failure is the sender's.
                    if let Err(e) =
                        crate::stage::control::apply(&self.app, &self.name, &user, action)
                    {
                        let error = crate::core::chat::ServerEvent::error(&ChatError::bad_request(
                            e.to_string(),
                        ));
                        let to = crate::core::chat::Audience::Conns(vec![conn]);
                        fan_out(&self.conns, &to, &frame(&error));
                    }
                }
            }
        }
    }

    /// Sends the waiting room-wide frames to every connection.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.last_fan_out = Instant::now();
        let result = fan_out_all(&self.conns, &self.pending);
        self.pending.clear();
        if result.dropped > 0 {
            self.note_drops(result.dropped);
        }
    }

    fn note_drops(&mut self, dropped: u64) {
        // One warning per thousand drops keeps a stalled reader from flooding the log.
        let before = self.dropped / 1000;
        self.dropped += dropped;
        self.app.ops.counters.chat_dropped(dropped);
        if self.dropped / 1000 != before || self.dropped == dropped {
            tracing::warn!(room = %self.name, dropped = self.dropped, "chat messages dropped for slow readers");
        }
    }

    /// A ban: close the user's chat connections once their last frames are written, then end
    /// the user's WHIP/WHEP sessions in this room.
    fn disconnect(&mut self, user: String, conns: Vec<ConnId>) {
        let finished: Vec<_> = conns
            .iter()
            .filter_map(|c| self.conns.remove(c))
            .map(|tx| {
                tx.kick();
                tx.finished()
            })
            .collect();
        let app = self.app.clone();
        let room = self.name.clone();
        tokio::spawn(async move {
            let all = futures::future::join_all(finished.iter().map(|f| f.cancelled()));
            let _ = tokio::time::timeout(BAN_FLUSH, all).await;
            let ended = app.sessions.end_user(&room, &user);
            tracing::info!(%room, %user, sessions = ended.len(), "banned user disconnected");
        });
    }

    fn tick(&mut self) {
        let now = now_ms();
        let out = self.room.tick(self.media_viewers(), now);
        self.apply(out);
        let live = self
            .app
            .rooms
            .get(&self.name)
            .and_then(|r| r.publisher())
            .is_some_and(|p| p.connected);
        if live && !self.live {
            let state = frame(&self.room.state_event(now, false));
            self.log.open(now, &state);
        } else if !live && self.live {
            self.log.close();
        }
        self.live = live;
    }

    /// Stops once nobody is connected, nothing is live, no ban runs, for the room grace period.
    fn should_stop(&mut self) -> bool {
        let idle = self.conns.is_empty() && !self.live && self.room.is_idle(now_ms());
        if !idle {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.app.config.room_grace()
    }

    fn stop(mut self, mut rx: mpsc::Receiver<Command>) {
        self.app.chat.forget(&self.name, self.id);
        rx.close();
        while let Ok(command) = rx.try_recv() {
            match command {
                Command::Join { reply, .. } => {
                    let _ = reply.send(Err(JoinError::HubGone));
                }
                Command::CheckBan { reply, .. } => {
                    let _ = reply.send(Ok(()));
                }
                Command::Stats { .. }
                | Command::Leave { .. }
                | Command::Message { .. }
                | Command::Broadcast { .. } => {}
            }
        }
        self.log.close();
        tracing::debug!(room = %self.name, "chat hub stopped");
    }
}
