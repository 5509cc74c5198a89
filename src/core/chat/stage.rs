//! Stage controls over chat (chat path, pure): `{"type":"stage","action":"mute"|"unmute"|
//! "remove","user":"<id>"}` from the room's broadcaster. The room checks who asks and names the
//! guest; carrying the control out on the media side is the shell's job ([`Output::Stage`]), and
//! its visible effect is the stage's own `system` event. Everyone else gets `forbidden`.

use super::ChatError;
use super::message::{Role, field, truncate};
use super::room::{ChatRoom, ConnId, Output};

/// What the broadcaster does to a guest on stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageAction {
    /// Stop forwarding the guest's audio (to everyone, LL-HLS and recordings included).
    Mute,
    /// Forward the guest's audio again.
    Unmute,
    /// Take the guest off stage, refuse them for the room's lifetime and end their sessions.
    Remove,
}

impl StageAction {
    /// Every action, in the order the protocol lists them.
    pub const ALL: [StageAction; 3] = [StageAction::Mute, StageAction::Unmute, StageAction::Remove];

    /// The wire name (`mute`, `unmute`, `remove`).
    pub fn as_str(self) -> &'static str {
        match self {
            StageAction::Mute => "mute",
            StageAction::Unmute => "unmute",
            StageAction::Remove => "remove",
        }
    }

    /// The action named `name` (exact, lowercase), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// A parsed stage control: `action` on the guest `user` (an id, or a unique display name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCommand {
    /// What to do.
    pub action: StageAction,
    /// Whom to do it to, as the client wrote it (trimmed).
    pub user: String,
}

/// Parses the fields of a `stage` message: a known `action` and a `user`; anything else is a
/// `bad_request` (a too long `user` is `too_long`).
pub(super) fn parse_stage(
    action: Option<&str>,
    user: &Option<String>,
) -> Result<StageCommand, ChatError> {
    let name = action.ok_or_else(|| {
        ChatError::bad_request("a stage command needs an \"action\" (mute, unmute or remove)")
    })?;
    let action = StageAction::parse(name).ok_or_else(|| {
        ChatError::bad_request(format!(
            "unknown stage action `{}` (mute, unmute or remove)",
            truncate(name, 32)
        ))
    })?;
    Ok(StageCommand {
        action,
        user: field(user, "user", name)?,
    })
}

impl ChatRoom {
    /// A stage control from `conn`: only the room's broadcaster may (an admin's token carries
    /// the broadcaster role); the target is resolved to an id among those who have been in the
    /// room (an unknown name is passed on as an id, and the stage says whether it is a guest).
    pub(super) fn stage_control(
        &self,
        conn: ConnId,
        command: StageCommand,
    ) -> Result<Vec<Output>, ChatError> {
        let Some(member) = self.members.get(&conn) else {
            return Ok(Vec::new());
        };
        if member.role != Role::Broadcaster {
            return Err(ChatError::forbidden(
                "only the room's broadcaster controls the stage",
            ));
        }
        let user = self
            .resolve(&command.user)?
            .map_or(command.user, |target| target.id);
        Ok(vec![Output::Stage {
            conn,
            action: command.action,
            user,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::super::room_tests::{Fx, error_code};
    use super::super::*;
    use super::*;

    fn stage(action: &str, user: &str) -> String {
        format!(r#"{{"type":"stage","action":"{action}","user":"{user}"}}"#)
    }

    #[test]
    fn stage_messages_parse_and_bad_ones_are_bad_requests() {
        for action in StageAction::ALL {
            assert_eq!(
                parse_client(&stage(action.as_str(), " g1 ")),
                Ok(ClientMessage::Stage(StageCommand {
                    action,
                    user: "g1".into()
                }))
            );
        }
        for bad in [
            r#"{"type":"stage"}"#.to_owned(),
            r#"{"type":"stage","user":"g1"}"#.to_owned(),
            r#"{"type":"stage","action":"mute"}"#.to_owned(),
            r#"{"type":"stage","action":"mute","user":"  "}"#.to_owned(),
            r#"{"type":"stage","action":5,"user":"g1"}"#.to_owned(),
            stage("jump", "g1"),
            stage("MUTE", "g1"),
            stage("end", "g1"),
        ] {
            let e = parse_client(&bad).unwrap_err();
            assert_eq!(e.code(), "bad_request", "{bad}: {e}");
        }
        let e = parse_client(&stage("kick", "g1")).unwrap_err();
        assert!(e.to_string().contains("mute, unmute or remove"), "{e}");
        let long = stage("remove", &"u".repeat(200));
        assert_eq!(parse_client(&long).unwrap_err().code(), "too_long");
    }

    #[test]
    fn only_the_broadcaster_controls_the_stage() {
        let mut fx = Fx::new();
        let g = fx.join("g1", Role::Guest);
        let v = fx.join("ann", Role::Viewer);
        let m = fx.join("mod", Role::Moderator);
        let b = fx.join("host", Role::Broadcaster);
        // A promoted moderator moderates the chat but does not control the stage.
        fx.cmd(b, r#"{"type":"mod","action":"promote","user":"ann"}"#);
        for conn in [g, v, m] {
            for action in StageAction::ALL {
                let out = fx.cmd(conn, &stage(action.as_str(), "g1"));
                assert_eq!(error_code(&out), Some("forbidden"), "{conn} {action:?}");
            }
        }
        for action in StageAction::ALL {
            let out = fx.cmd(b, &stage(action.as_str(), "g1"));
            assert_eq!(
                out,
                vec![Output::Stage {
                    conn: b,
                    action,
                    user: "g1".into()
                }]
            );
        }
    }

    #[test]
    fn the_guest_is_named_by_id_or_unique_display_name() {
        let mut fx = Fx::new();
        let b = fx.join("host", Role::Broadcaster);
        fx.join("g1", Role::Guest); // display name "G1"
        let target = |out: Vec<Output>| match out.as_slice() {
            [Output::Stage { user, .. }] => user.clone(),
            other => panic!("expected a stage output, got {other:?}"),
        };
        assert_eq!(target(fx.cmd(b, &stage("mute", "g1"))), "g1");
        assert_eq!(target(fx.cmd(b, &stage("mute", "G1"))), "g1");
        // Never seen: passed on as an id; the stage decides whether it is a guest.
        assert_eq!(target(fx.cmd(b, &stage("remove", "zed"))), "zed");
        // Two users share a display name: ask for the id.
        let mut two = identity_named("a1", "Sam");
        fx.join_as(two.clone(), Transport::DataChannel);
        two.id = "a2".into();
        fx.join_as(two, Transport::DataChannel);
        let out = fx.cmd(b, &stage("mute", "sam"));
        assert_eq!(error_code(&out), Some("bad_request"));
    }

    fn identity_named(id: &str, name: &str) -> Identity {
        Identity {
            id: id.into(),
            name: name.into(),
            role: Role::Guest,
            anonymous: false,
        }
    }
}
