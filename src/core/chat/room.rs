//! One room's chat (chat path, pure): members and their roles, the bounded history, message
//! ids and timestamps, per-user rate limits, slow mode, timeouts, guests-only mode, the word
//! filter and presence. Every call takes the time (Unix ms) and returns [`Output`]s: what to
//! send to whom and whom to disconnect. Moderator commands live in `moderation.rs`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::ChatError;
use super::limits::{ChatLimits, TokenBucket};
use super::message::{ChatLine, ClientMessage, Role, ServerEvent, UserView};
use super::presence::PresenceCoalescer;
use super::text::{WordFilter, clean_emoji, clean_text};

/// A chat connection, unique within the server.
pub type ConnId = u64;

/// Users remembered (for names, roles and commands by name) beyond those connected.
const MAX_KNOWN: usize = 4096;
/// Bans, timeouts, promotions and demotions kept per room.
pub(super) const MAX_RESTRICTIONS: usize = 10_000;
/// Longest display name kept, in characters.
const MAX_NAME_CHARS: usize = 64;

/// How a connection reaches the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The `chat` data channel of a WHIP or WHEP session.
    DataChannel,
    /// `GET /ws/{room}` (LL-HLS viewers and programs); counted as a viewer.
    WebSocket,
}

/// Who is connecting, from the token (or generated for an anonymous viewer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Token `sub`, or a generated id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Token role.
    pub role: Role,
    /// No token: a generated identity.
    pub anonymous: bool,
}

/// Recipients of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connection of the room.
    All,
    /// These connections only.
    Conns(Vec<ConnId>),
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Serialise `event` once and queue it for `to`; `log` says it belongs in the room's chat
    /// log (public events only).
    Send {
        /// Recipients.
        to: Audience,
        /// The message.
        event: ServerEvent,
        /// Write it to the chat log.
        log: bool,
    },
    /// Close these chat connections (after what was queued for them) and end every WHIP/WHEP
    /// session of `user` in this room: the user was banned.
    Disconnect {
        /// The banned user.
        user: String,
        /// Their chat connections.
        conns: Vec<ConnId>,
    },
    /// The room's broadcaster (on `conn`) asked for a stage control: carry it out on the media
    /// side, whose `system` event is the visible effect; a failure goes back to `conn` as an
    /// `error`.
    Stage {
        /// The broadcaster's connection.
        conn: ConnId,
        /// What to do.
        action: super::stage::StageAction,
        /// The guest's user id (resolved from a display name when one matched).
        user: String,
    },
}

impl Output {
    pub(super) fn to_conns(conns: Vec<ConnId>, event: ServerEvent) -> Self {
        Output::Send {
            to: Audience::Conns(conns),
            event,
            log: false,
        }
    }

    pub(super) fn to_all(event: ServerEvent, log: bool) -> Self {
        Output::Send {
            to: Audience::All,
            event,
            log,
        }
    }
}

pub(super) struct Member {
    pub(super) identity: Identity,
    /// Effective role: the token's, changed by promotion or demotion.
    pub(super) role: Role,
    transport: Transport,
}

impl Member {
    pub(super) fn view(&self) -> UserView {
        UserView {
            id: self.identity.id.clone(),
            name: self.identity.name.clone(),
            role: self.role,
        }
    }
}

/// Someone who was in the room: name and token role.
pub(super) struct Known {
    pub(super) name: String,
    pub(super) role: Role,
}

/// A ban or timeout.
pub(super) struct Restricted {
    pub(super) name: String,
    pub(super) role: Role,
    pub(super) until: Option<u64>,
    pub(super) since: u64,
}

impl Restricted {
    pub(super) fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

struct Activity {
    chat: TokenBucket,
    reactions: TokenBucket,
    last_chat_ms: Option<u64>,
}

/// The chat of one room.
pub struct ChatRoom {
    pub(super) limits: ChatLimits,
    id_prefix: String,
    next_id: u64,
    pub(super) members: HashMap<ConnId, Member>,
    user_conns: HashMap<String, u32>,
    pub(super) history: VecDeque<ChatLine>,
    activity: HashMap<String, Activity>,
    pub(super) known: HashMap<String, Known>,
    known_order: VecDeque<String>,
    pub(super) bans: HashMap<String, Restricted>,
    pub(super) timeouts: HashMap<String, Restricted>,
    pub(super) promoted: BTreeMap<String, String>,
    pub(super) demoted: HashSet<String>,
    pub(super) slow_secs: u64,
    pub(super) guests_only: bool,
    pub(super) filter: WordFilter,
    presence: PresenceCoalescer,
    ws_members: u64,
    media_viewers: u64,
}

impl ChatRoom {
    /// An empty room; message ids are `<id_prefix>-<n>`.
    pub fn new(limits: ChatLimits, id_prefix: impl Into<String>) -> Self {
        Self {
            presence: PresenceCoalescer::new(limits.presence_ms),
            limits,
            id_prefix: id_prefix.into(),
            next_id: 1,
            members: HashMap::new(),
            user_conns: HashMap::new(),
            history: VecDeque::new(),
            activity: HashMap::new(),
            known: HashMap::new(),
            known_order: VecDeque::new(),
            bans: HashMap::new(),
            timeouts: HashMap::new(),
            promoted: BTreeMap::new(),
            demoted: HashSet::new(),
            slow_secs: 0,
            guests_only: false,
            filter: WordFilter::default(),
            ws_members: 0,
            media_viewers: 0,
        }
    }

    /// Connected chat connections.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Nothing to keep: nobody connected and no ban still running.
    pub fn is_idle(&self, now: u64) -> bool {
        self.members.is_empty() && !self.bans.values().any(|b| b.active(now))
    }

    /// Refuses a banned user (WHIP/WHEP/chat). The broadcaster is never locked out of their room.
    pub fn check_ban(&self, user: &str, role: Role, now: u64) -> Result<(), ChatError> {
        if role == Role::Broadcaster {
            return Ok(());
        }
        match self.bans.get(user) {
            Some(ban) if ban.active(now) => Err(ChatError::Banned {
                until: ban.until,
                retry_ms: ban.until.map(|u| u - now),
            }),
            _ => Ok(()),
        }
    }

    /// A connection joins: refused while the user is banned; otherwise the welcome is queued
    /// for it and presence updated.
    pub fn join(
        &mut self,
        conn: ConnId,
        identity: Identity,
        transport: Transport,
        media_viewers: u64,
        now: u64,
    ) -> Result<Vec<Output>, ChatError> {
        self.check_ban(&identity.id, identity.role, now)?;
        if self.members.contains_key(&conn) {
            return Err(ChatError::bad_request("this connection has already joined"));
        }
        let identity = Identity {
            name: clean_name(&identity.name, &identity.id),
            ..identity
        };
        self.remember(&identity);
        let role = self.effective_role(&identity.id, identity.role);
        let member = Member {
            identity,
            role,
            transport,
        };
        let count = self
            .user_conns
            .entry(member.identity.id.clone())
            .or_insert(0);
        *count += 1;
        if *count == 1 {
            self.presence.joined(member.view());
        }
        if transport == Transport::WebSocket {
            self.ws_members += 1;
        }
        self.media_viewers = media_viewers;
        self.members.insert(conn, member);
        let welcome = self
            .welcome(conn, now)
            .expect("the member was just inserted");
        let mut out = vec![Output::to_conns(vec![conn], welcome)];
        out.extend(self.poll_presence(now));
        Ok(out)
    }

    /// A connection left (or was closed). Unknown connections are ignored.
    pub fn leave(&mut self, conn: ConnId, media_viewers: u64, now: u64) -> Vec<Output> {
        self.media_viewers = media_viewers;
        if self.remove_member(conn) {
            self.poll_presence(now)
        } else {
            Vec::new()
        }
    }

    /// Handles a parsed message of `conn`.
    pub fn handle(&mut self, conn: ConnId, message: ClientMessage, now: u64) -> Vec<Output> {
        let result = match message {
            ClientMessage::Chat { text } => self.chat(conn, &text, now),
            ClientMessage::Reaction { emoji } => self.reaction(conn, &emoji, now),
            ClientMessage::Mod(command) => self.moderate(conn, command, now),
            ClientMessage::Stage(command) => self.stage_control(conn, command),
        };
        match result {
            Ok(out) => out,
            Err(e) => vec![Output::to_conns(vec![conn], ServerEvent::error(&e))],
        }
    }

    /// Periodic work: expired bans and timeouts, forgotten rate-limit state, presence.
    pub fn tick(&mut self, media_viewers: u64, now: u64) -> Vec<Output> {
        self.media_viewers = media_viewers;
        let before = self.bans.len() + self.timeouts.len();
        self.bans.retain(|_, b| b.active(now));
        self.timeouts.retain(|_, t| t.active(now));
        let expired = before != self.bans.len() + self.timeouts.len();
        let slow_ms = self.slow_secs * 1000;
        let user_conns = &self.user_conns;
        self.activity.retain(|user, a| {
            user_conns.contains_key(user)
                || !a.chat.is_full(now)
                || !a.reactions.is_full(now)
                || a.last_chat_ms.is_some_and(|t| t + slow_ms > now)
        });
        let mut out = Vec::new();
        if expired {
            out.extend(self.state_outputs(now, false));
        }
        out.extend(self.poll_presence(now));
        out
    }

    fn chat(&mut self, conn: ConnId, text: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let Some(member) = self.members.get(&conn) else {
            return Ok(Vec::new());
        };
        let (user, role) = (member.identity.id.clone(), member.role);
        self.may_write(member, now)?;
        let text = clean_text(text, self.limits.max_length)?;
        let slow_ms = self.slow_secs * 1000;
        let activity = self.activity_of(&user, now);
        if let Some(last) = activity.last_chat_ms.filter(|_| !role.moderates()) {
            let next = last + slow_ms;
            if now < next {
                return Err(ChatError::SlowMode {
                    retry_ms: next - now,
                });
            }
        }
        activity
            .chat
            .take(now)
            .map_err(|retry_ms| ChatError::RateLimited { retry_ms })?;
        activity.last_chat_ms = Some(now);
        let line = ChatLine {
            id: self.next_message_id(),
            user: self.members[&conn].view(),
            text: self.filter.mask(&text),
            ts: now,
        };
        self.history.push_back(line.clone());
        while self.history.len() > self.limits.history {
            self.history.pop_front();
        }
        Ok(vec![Output::to_all(ServerEvent::Chat(line), true)])
    }

    fn reaction(&mut self, conn: ConnId, emoji: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let Some(member) = self.members.get(&conn) else {
            return Ok(Vec::new());
        };
        let user = member.view();
        self.check_timeout(&user.id, now)?;
        if member.identity.anonymous && !self.limits.anonymous_chat {
            return Err(anonymous_forbidden());
        }
        let emoji = clean_emoji(emoji)?;
        self.activity_of(&user.id, now)
            .reactions
            .take(now)
            .map_err(|retry_ms| ChatError::RateLimited { retry_ms })?;
        let event = ServerEvent::Reaction {
            user,
            emoji,
            ts: now,
        };
        Ok(vec![Output::to_all(event, true)])
    }

    /// Timeouts, guests-only mode and anonymous writing.
    fn may_write(&self, member: &Member, now: u64) -> Result<(), ChatError> {
        self.check_timeout(&member.identity.id, now)?;
        if self.guests_only && !(member.role.on_stage() || member.role.moderates()) {
            return Err(ChatError::forbidden(
                "guests-only mode: only the broadcaster, guests and moderators can write now",
            ));
        }
        if member.identity.anonymous && !self.limits.anonymous_chat {
            return Err(anonymous_forbidden());
        }
        Ok(())
    }

    fn check_timeout(&self, user: &str, now: u64) -> Result<(), ChatError> {
        match self.timeouts.get(user).and_then(|t| t.until) {
            Some(until) if until > now => Err(ChatError::TimedOut {
                until,
                retry_ms: until - now,
            }),
            _ => Ok(()),
        }
    }

    fn activity_of(&mut self, user: &str, now: u64) -> &mut Activity {
        let limits = &self.limits;
        self.activity
            .entry(user.to_owned())
            .or_insert_with(|| Activity {
                chat: TokenBucket::new(limits.user_burst, limits.user_refill_ms, now),
                reactions: TokenBucket::new(limits.reaction_burst, limits.reaction_refill_ms, now),
                last_chat_ms: None,
            })
    }

    fn next_message_id(&mut self) -> String {
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// The role `id` has in this room, given its token role.
    pub(super) fn effective_role(&self, id: &str, base: Role) -> Role {
        match base {
            Role::Broadcaster => Role::Broadcaster,
            _ if self.promoted.contains_key(id) => Role::Moderator,
            Role::Moderator if self.demoted.contains(id) => Role::Viewer,
            other => other,
        }
    }

    /// Recomputes the role of every connection of `user` (after a promotion or demotion).
    pub(super) fn refresh_role(&mut self, user: &str) {
        let conns = self.conns_of(user);
        for conn in conns {
            let base = self.members[&conn].identity.role;
            let role = self.effective_role(user, base);
            if let Some(m) = self.members.get_mut(&conn) {
                m.role = role;
            }
        }
    }

    /// Every connection of `user`.
    pub(super) fn conns_of(&self, user: &str) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(_, m)| m.identity.id == user)
            .map(|(c, _)| *c)
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Removes a connection; true if it was a member.
    pub(super) fn remove_member(&mut self, conn: ConnId) -> bool {
        let Some(member) = self.members.remove(&conn) else {
            return false;
        };
        if member.transport == Transport::WebSocket {
            self.ws_members -= 1;
        }
        let id = &member.identity.id;
        let last = match self.user_conns.get_mut(id) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => true,
        };
        if last {
            self.user_conns.remove(id);
            self.presence.left(member.view());
        }
        true
    }

    fn remember(&mut self, identity: &Identity) {
        let known = Known {
            name: identity.name.clone(),
            role: identity.role,
        };
        if self.known.insert(identity.id.clone(), known).is_none() {
            self.known_order.push_back(identity.id.clone());
        }
        let mut budget = self.known_order.len();
        while self.known.len() > MAX_KNOWN && budget > 0 {
            budget -= 1;
            let Some(oldest) = self.known_order.pop_front() else {
                break;
            };
            if self.user_conns.contains_key(&oldest) {
                self.known_order.push_back(oldest);
            } else {
                self.known.remove(&oldest);
            }
        }
    }

    pub(super) fn viewers(&self) -> u64 {
        self.media_viewers + self.ws_members
    }

    pub(super) fn poll_presence(&mut self, now: u64) -> Vec<Output> {
        let chatters = self.members.len() as u64;
        self.presence
            .poll(now, self.viewers(), chatters)
            .map(|p| Output::to_all(ServerEvent::Presence(p), false))
            .into_iter()
            .collect()
    }
}

fn anonymous_forbidden() -> ChatError {
    ChatError::forbidden(
        "anonymous viewers can read but not write in this room; open the page with a token to chat",
    )
}

/// A display name without controls, trimmed and bounded; the id when nothing is left.
fn clean_name(name: &str, id: &str) -> String {
    match clean_text(name, usize::MAX) {
        Ok(name) => name.chars().take(MAX_NAME_CHARS).collect(),
        Err(_) => id.chars().take(MAX_NAME_CHARS).collect(),
    }
}
