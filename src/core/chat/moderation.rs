//! Moderator commands (chat path, pure): who may run what, and what each command does to the
//! room. The broadcaster and moderators moderate; only the broadcaster promotes and demotes;
//! nobody acts on the broadcaster, and moderators do not act on each other (the broadcaster
//! does). Everyone else gets `forbidden`.

use super::ChatError;
use super::message::{ModCommand, Role, ServerEvent};
use super::room::{ChatRoom, ConnId, MAX_RESTRICTIONS, Output, Restricted};
use super::text::WordFilter;

/// Longest ban or timeout: 30 days.
pub const MAX_MOD_SECONDS: u64 = 30 * 24 * 3600;
/// Longest slow-mode interval: one hour.
pub const MAX_SLOW_SECONDS: u64 = 3600;
/// A timeout without `seconds` lasts this long.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;
/// Words in one room's filter.
pub const MAX_FILTER_WORDS: usize = 200;
/// Promotions (and demotions) per room.
const MAX_PROMOTED: usize = 100;

/// Who runs the command.
struct Actor {
    id: String,
    role: Role,
}

/// Whom a command is about.
pub(super) struct Target {
    pub(super) id: String,
    name: String,
    role: Role,
    known: bool,
}

impl ChatRoom {
    /// Runs a moderator command for `conn`.
    pub(super) fn moderate(
        &mut self,
        conn: ConnId,
        command: ModCommand,
        now: u64,
    ) -> Result<Vec<Output>, ChatError> {
        let Some(member) = self.members.get(&conn) else {
            return Ok(Vec::new());
        };
        let actor = Actor {
            id: member.identity.id.clone(),
            role: member.role,
        };
        if !actor.role.moderates() {
            return Err(ChatError::forbidden(
                "only the broadcaster and moderators can run chat commands",
            ));
        }
        match command {
            ModCommand::Ban { user, seconds } => self.ban(&actor, &user, seconds, now),
            ModCommand::Unban { user } => self.unban(&user, now),
            ModCommand::Timeout { user, seconds } => self.timeout(&actor, &user, seconds, now),
            ModCommand::Delete { id } => self.delete(&actor, &id, now),
            ModCommand::Clear => {
                self.history.clear();
                Ok(vec![Output::to_all(ServerEvent::Cleared { ts: now }, true)])
            }
            ModCommand::Slow { seconds } => {
                if seconds > MAX_SLOW_SECONDS {
                    return Err(ChatError::bad_request(format!(
                        "slow mode is at most {MAX_SLOW_SECONDS} seconds"
                    )));
                }
                self.slow_secs = seconds;
                Ok(self.state_outputs(now, true))
            }
            ModCommand::GuestsOnly { on } => {
                self.guests_only = on.unwrap_or(!self.guests_only);
                Ok(self.state_outputs(now, true))
            }
            ModCommand::FilterAdd { word } => {
                self.filter.add(&word, MAX_FILTER_WORDS)?;
                Ok(self.state_outputs(now, false))
            }
            ModCommand::FilterRemove { word } => {
                if !self.filter.remove(&word)? {
                    return Err(ChatError::bad_request(format!(
                        "`{}` is not in the word filter",
                        WordFilter::normalise(&word)?
                    )));
                }
                Ok(self.state_outputs(now, false))
            }
            ModCommand::Promote { user } => self.promote(&actor, &user, now),
            ModCommand::Demote { user } => self.demote(&actor, &user, now),
        }
    }

    /// The user `user` names: an id, or else a unique display name, among those who have been
    /// in the room. `None` when nobody matches.
    pub(super) fn resolve(&self, user: &str) -> Result<Option<Target>, ChatError> {
        if let Some(k) = self.known.get(user) {
            return Ok(Some(Target {
                id: user.to_owned(),
                name: k.name.clone(),
                role: self.effective_role(user, k.role),
                known: true,
            }));
        }
        let wanted = user.to_lowercase();
        let mut matches = self
            .known
            .iter()
            .filter(|(_, k)| k.name.to_lowercase() == wanted);
        match (matches.next(), matches.next()) {
            (Some((id, k)), None) => Ok(Some(Target {
                id: id.clone(),
                name: k.name.clone(),
                role: self.effective_role(id, k.role),
                known: true,
            })),
            (Some(_), Some(_)) => Err(ChatError::bad_request(format!(
                "several users are called `{user}`; use their id"
            ))),
            (None, _) => Ok(None),
        }
    }

    /// A target for ban and timeout: someone known, or an id never seen (banned in advance).
    fn resolve_or_id(&self, user: &str) -> Result<Target, ChatError> {
        Ok(self.resolve(user)?.unwrap_or_else(|| Target {
            id: user.to_owned(),
            name: user.to_owned(),
            role: Role::Viewer,
            known: false,
        }))
    }

    fn ban(
        &mut self,
        actor: &Actor,
        user: &str,
        seconds: Option<u64>,
        now: u64,
    ) -> Result<Vec<Output>, ChatError> {
        let seconds = seconds.filter(|s| *s > 0);
        check_duration(seconds)?;
        let target = self.resolve_or_id(user)?;
        may_act_on(actor, &target, "ban")?;
        if !self.bans.contains_key(&target.id) && self.bans.len() >= MAX_RESTRICTIONS {
            return Err(ChatError::bad_request("this room has too many bans"));
        }
        let until = seconds.map(|s| now + s * 1000);
        self.bans
            .insert(target.id.clone(), restricted(&target, until, now));
        self.timeouts.remove(&target.id);
        let was_promoted = self.promoted.remove(&target.id).is_some();
        let conns = self.conns_of(&target.id);
        let mut out = Vec::new();
        if !conns.is_empty() {
            let error = ChatError::Banned {
                until,
                retry_ms: seconds.map(|s| s * 1000),
            };
            out.push(Output::to_conns(conns.clone(), ServerEvent::error(&error)));
        }
        for conn in &conns {
            self.remove_member(*conn);
        }
        out.push(Output::Disconnect {
            user: target.id.clone(),
            conns,
        });
        let purged: Vec<String> = self
            .history
            .iter()
            .filter(|line| line.user.id == target.id)
            .map(|line| line.id.clone())
            .collect();
        self.history.retain(|line| line.user.id != target.id);
        for id in purged {
            out.push(Output::to_all(ServerEvent::Deleted { id, ts: now }, true));
        }
        out.extend(self.state_outputs(now, was_promoted));
        out.extend(self.poll_presence(now));
        Ok(out)
    }

    fn unban(&mut self, user: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let id = if self.bans.contains_key(user) {
            user.to_owned()
        } else {
            let wanted = user.to_lowercase();
            let mut named = self
                .bans
                .iter()
                .filter(|(_, b)| b.name.to_lowercase() == wanted);
            match (named.next(), named.next()) {
                (Some((id, _)), None) => id.clone(),
                (Some(_), Some(_)) => {
                    return Err(ChatError::bad_request(format!(
                        "several banned users are called `{user}`; use their id"
                    )));
                }
                (None, _) => {
                    return Err(ChatError::bad_request(format!("`{user}` is not banned")));
                }
            }
        };
        self.bans.remove(&id);
        Ok(self.state_outputs(now, false))
    }

    fn timeout(
        &mut self,
        actor: &Actor,
        user: &str,
        seconds: Option<u64>,
        now: u64,
    ) -> Result<Vec<Output>, ChatError> {
        let seconds = seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        check_duration(Some(seconds))?;
        let target = self.resolve_or_id(user)?;
        may_act_on(actor, &target, "time out")?;
        if seconds == 0 {
            if self.timeouts.remove(&target.id).is_none() {
                return Err(ChatError::bad_request(format!(
                    "`{}` is not timed out",
                    target.name
                )));
            }
            return Ok(self.state_outputs(now, false));
        }
        if !self.timeouts.contains_key(&target.id) && self.timeouts.len() >= MAX_RESTRICTIONS {
            return Err(ChatError::bad_request("this room has too many timeouts"));
        }
        let until = now + seconds * 1000;
        self.timeouts
            .insert(target.id.clone(), restricted(&target, Some(until), now));
        let mut out = Vec::new();
        let conns = self.conns_of(&target.id);
        if !conns.is_empty() {
            let error = ChatError::TimedOut {
                until,
                retry_ms: seconds * 1000,
            };
            out.push(Output::to_conns(conns, ServerEvent::error(&error)));
        }
        out.extend(self.state_outputs(now, false));
        Ok(out)
    }

    fn delete(&mut self, actor: &Actor, id: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let index = self
            .history
            .iter()
            .position(|line| line.id == id)
            .ok_or_else(|| {
                ChatError::bad_request(format!("no message `{id}` in the room's history"))
            })?;
        let author = &self.history[index].user;
        if author.id != actor.id {
            let target = Target {
                id: author.id.clone(),
                name: author.name.clone(),
                role: self
                    .known
                    .get(&author.id)
                    .map(|k| self.effective_role(&author.id, k.role))
                    .unwrap_or(author.role),
                known: true,
            };
            may_act_on(actor, &target, "delete messages of")?;
        }
        self.history.remove(index);
        let event = ServerEvent::Deleted {
            id: id.to_owned(),
            ts: now,
        };
        Ok(vec![Output::to_all(event, true)])
    }

    fn promote(&mut self, actor: &Actor, user: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let target = self.role_target(actor, user, "promote")?;
        if target.role == Role::Broadcaster {
            return Err(ChatError::bad_request("the broadcaster already moderates"));
        }
        if target.role != Role::Moderator {
            if self.demoted.remove(&target.id) {
                // A moderator by token, demoted earlier: their token role applies again.
            } else if self.promoted.len() >= MAX_PROMOTED {
                return Err(ChatError::bad_request(
                    "this room has too many promoted moderators",
                ));
            } else {
                self.promoted.insert(target.id.clone(), target.name.clone());
            }
        }
        Ok(self.role_changed(&target.id, now))
    }

    fn demote(&mut self, actor: &Actor, user: &str, now: u64) -> Result<Vec<Output>, ChatError> {
        let target = self.role_target(actor, user, "demote")?;
        if target.role != Role::Moderator {
            return Err(ChatError::bad_request(format!(
                "`{}` is not a moderator",
                target.name
            )));
        }
        if self.promoted.remove(&target.id).is_none() {
            if self.demoted.len() >= MAX_PROMOTED {
                return Err(ChatError::bad_request(
                    "this room has too many demoted moderators",
                ));
            }
            self.demoted.insert(target.id.clone());
        }
        Ok(self.role_changed(&target.id, now))
    }

    /// Promotion and demotion: broadcaster only, on someone who has been in the room.
    fn role_target(&self, actor: &Actor, user: &str, verb: &str) -> Result<Target, ChatError> {
        if actor.role != Role::Broadcaster {
            return Err(ChatError::forbidden(format!(
                "only the broadcaster can {verb} moderators"
            )));
        }
        let target = self.resolve(user)?.filter(|t| t.known).ok_or_else(|| {
            ChatError::bad_request(format!("nobody called `{user}` has been in this room"))
        })?;
        if target.id == actor.id {
            return Err(ChatError::forbidden(format!("you cannot {verb} yourself")));
        }
        Ok(target)
    }

    /// After a promotion or demotion: the user's connections get a new welcome (their role,
    /// and for moderators the full state); everyone gets the new `promoted` list.
    fn role_changed(&mut self, user: &str, now: u64) -> Vec<Output> {
        self.refresh_role(user);
        let mut out: Vec<Output> = self
            .conns_of(user)
            .into_iter()
            .filter_map(|conn| {
                self.welcome(conn, now)
                    .map(|w| Output::to_conns(vec![conn], w))
            })
            .collect();
        out.extend(self.state_outputs(now, true));
        out
    }
}

fn check_duration(seconds: Option<u64>) -> Result<(), ChatError> {
    match seconds {
        Some(s) if s > MAX_MOD_SECONDS => Err(ChatError::bad_request(format!(
            "at most {MAX_MOD_SECONDS} seconds (30 days)"
        ))),
        _ => Ok(()),
    }
}

fn restricted(target: &Target, until: Option<u64>, now: u64) -> Restricted {
    Restricted {
        name: target.name.clone(),
        role: target.role,
        until,
        since: now,
    }
}

/// The rule for acting on a user: not yourself, never the broadcaster, and a moderator only
/// when you are the broadcaster.
fn may_act_on(actor: &Actor, target: &Target, verb: &str) -> Result<(), ChatError> {
    if target.id == actor.id {
        return Err(ChatError::forbidden(format!("you cannot {verb} yourself")));
    }
    if target.role == Role::Broadcaster {
        return Err(ChatError::forbidden(format!(
            "nobody can {verb} the broadcaster"
        )));
    }
    if target.role == Role::Moderator && actor.role != Role::Broadcaster {
        return Err(ChatError::forbidden(format!(
            "moderators cannot {verb} each other; only the broadcaster can"
        )));
    }
    Ok(())
}
