//! What a room's chat looks like to a client (chat path, pure): the welcome (identity, the
//! newest history within count and size limits, settings, viewer count) and the `state`
//! message in its public and moderator versions.

use std::collections::HashMap;

use super::message::{ChatLine, Restriction, Role, ServerEvent, StateView, UserView};
use super::room::{Audience, ChatRoom, ConnId, Output, Restricted};

/// Bans or timeouts listed in a moderator's `state`.
const LISTED_RESTRICTIONS: usize = 50;
/// Upper bound of the history sent in a welcome (serialised size, roughly).
const WELCOME_BYTES: usize = 48 * 1024;

impl ChatRoom {
    /// The `state` message: the public one, or the moderators' one with filter, bans and
    /// timeouts.
    pub fn state_event(&self, now: u64, for_moderators: bool) -> ServerEvent {
        ServerEvent::State {
            state: self.state_view(now, for_moderators),
            ts: now,
        }
    }

    /// The welcome for `conn` (also sent again when its role changes).
    pub(super) fn welcome(&self, conn: ConnId, now: u64) -> Option<ServerEvent> {
        let member = self.members.get(&conn)?;
        Some(ServerEvent::Welcome {
            you: member.view(),
            history: self.welcome_history(),
            state: self.state_view(now, member.role.moderates()),
            viewers: self.viewers(),
        })
    }

    /// The newest messages, oldest first, within the count and size limits.
    fn welcome_history(&self) -> Vec<ChatLine> {
        let mut budget = WELCOME_BYTES;
        let mut lines: Vec<ChatLine> = Vec::new();
        for line in self.history.iter().rev().take(self.limits.welcome_history) {
            let cost = 2 * (line.text.len() + line.user.name.len() + line.user.id.len()) + 96;
            if cost > budget {
                break;
            }
            budget -= cost;
            lines.push(line.clone());
        }
        lines.reverse();
        lines
    }

    fn state_view(&self, now: u64, for_moderators: bool) -> StateView {
        let listed = |map: &HashMap<String, Restricted>| {
            let mut list: Vec<(&String, &Restricted)> =
                map.iter().filter(|(_, r)| r.active(now)).collect();
            list.sort_by(|a, b| b.1.since.cmp(&a.1.since).then(a.0.cmp(b.0)));
            list.into_iter()
                .take(LISTED_RESTRICTIONS)
                .map(|(id, r)| Restriction {
                    user: UserView {
                        id: id.clone(),
                        name: r.name.clone(),
                        role: r.role,
                    },
                    until: r.until,
                })
                .collect()
        };
        StateView {
            slow: self.slow_secs,
            guests_only: self.guests_only,
            promoted: self
                .promoted
                .iter()
                .map(|(id, name)| UserView {
                    id: id.clone(),
                    name: name.clone(),
                    role: Role::Moderator,
                })
                .collect(),
            filter: for_moderators.then(|| self.filter.words()),
            bans: for_moderators.then(|| listed(&self.bans)),
            timeouts: for_moderators.then(|| listed(&self.timeouts)),
        }
    }

    /// `state` for the moderators, and (when a public setting changed) for everyone else and
    /// the log.
    pub(super) fn state_outputs(&self, now: u64, public_changed: bool) -> Vec<Output> {
        let (mods, others): (Vec<ConnId>, Vec<ConnId>) = {
            let mut mods = Vec::new();
            let mut others = Vec::new();
            for (conn, m) in &self.members {
                if m.role.moderates() {
                    mods.push(*conn);
                } else {
                    others.push(*conn);
                }
            }
            mods.sort_unstable();
            others.sort_unstable();
            (mods, others)
        };
        let mut out = Vec::new();
        if !mods.is_empty() {
            out.push(Output::to_conns(mods, self.state_event(now, true)));
        }
        if public_changed {
            out.push(Output::Send {
                to: Audience::Conns(others),
                event: self.state_event(now, false),
                log: true,
            });
        }
        out
    }
}
