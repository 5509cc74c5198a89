//! Chat wire format (chat path, pure): the JSON objects of DESIGN.md §4, one per data-channel
//! message or WebSocket text frame. Client messages are parsed leniently (unknown fields are
//! ignored) and checked strictly (a wrong or missing field is a `bad_request`).

use serde::{Deserialize, Serialize};

use super::ChatError;

/// Longest user id or message id accepted in a command.
pub const MAX_ID_CHARS: usize = 128;

/// A participant's role in the room's chat (the token's role, or `moderator` after a promotion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owns the room: moderates, promotes and demotes.
    Broadcaster,
    /// On stage with the broadcaster.
    Guest,
    /// Runs chat commands.
    Moderator,
    /// Watches and chats.
    Viewer,
}

impl Role {
    /// Broadcaster and moderators run chat commands.
    pub fn moderates(self) -> bool {
        matches!(self, Role::Broadcaster | Role::Moderator)
    }

    /// Broadcaster and guests are on stage (they may write in guests-only mode).
    pub fn on_stage(self) -> bool {
        matches!(self, Role::Broadcaster | Role::Guest)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Broadcaster => "broadcaster",
            Role::Guest => "guest",
            Role::Moderator => "moderator",
            Role::Viewer => "viewer",
        }
    }
}

/// A user as shown to others: `{"id","name","role"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    /// Stable user id (token `sub`, or generated for anonymous viewers).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role in this room right now.
    pub role: Role,
}

/// One chat message as broadcast and kept in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatLine {
    /// Room-unique message id.
    pub id: String,
    /// The author.
    pub user: UserView,
    /// Trimmed, length-checked, filter-masked text. Plain text: never HTML.
    pub text: String,
    /// Server time, Unix milliseconds.
    pub ts: u64,
}

/// A ban or timeout as listed to moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restriction {
    /// Who.
    pub user: UserView,
    /// End, Unix milliseconds; `null` for a ban without end.
    pub until: Option<u64>,
}

/// The room's chat settings. Everyone gets `slow`, `guests_only` and `promoted`; moderators
/// also get the word filter, the bans and the timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateView {
    /// Slow mode interval in seconds; 0 is off.
    pub slow: u64,
    /// Only the broadcaster, guests and moderators may write.
    pub guests_only: bool,
    /// Users the broadcaster promoted to moderator in this room.
    pub promoted: Vec<UserView>,
    /// Filtered words (moderators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<String>>,
    /// Active bans, newest first, at most 50 (moderators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bans: Option<Vec<Restriction>>,
    /// Active timeouts, newest first, at most 50 (moderators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Vec<Restriction>>,
}

/// A coalesced presence update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceView {
    /// Viewers of the room: WHEP sessions plus WebSocket chat connections.
    pub viewers: u64,
    /// Chat connections (both transports).
    pub chatters: u64,
    /// Users who joined the chat since the last update (at most a few are listed).
    pub joined: Vec<UserView>,
    /// Users who left the chat since the last update (at most a few are listed).
    pub left: Vec<UserView>,
}

/// A server -> client message. Serialised once per event and shared by every recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First message on a connection (and again after the user's role changed).
    Welcome {
        /// The connection's identity.
        you: UserView,
        /// The last messages, oldest first, each a full `chat` object.
        #[serde(serialize_with = "chat_objects")]
        history: Vec<ChatLine>,
        /// The room's chat settings.
        state: StateView,
        /// Current viewer count.
        viewers: u64,
    },
    /// A chat message.
    Chat(ChatLine),
    /// A reaction (not kept in the history).
    Reaction {
        /// Who reacted.
        user: UserView,
        /// The emoji.
        emoji: String,
        /// Server time, Unix ms.
        ts: u64,
    },
    /// A message was deleted.
    Deleted {
        /// The message id.
        id: String,
        /// Server time, Unix ms.
        ts: u64,
    },
    /// The history was cleared.
    Cleared {
        /// Server time, Unix ms.
        ts: u64,
    },
    /// The chat settings changed.
    State {
        /// The settings.
        #[serde(flatten)]
        state: StateView,
        /// Server time, Unix ms.
        ts: u64,
    },
    /// Viewer count and joins/leaves, coalesced.
    Presence(PresenceView),
    /// A refused action.
    Error {
        /// Machine-readable code ([`ChatError::code`]).
        code: &'static str,
        /// Human text.
        message: String,
        /// When trying again can succeed, if known.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_ms: Option<u64>,
    },
}

/// A history entry serialised exactly like the live `chat` message.
#[derive(Serialize)]
struct TaggedLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    line: &'a ChatLine,
}

fn chat_objects<S: serde::Serializer>(lines: &[ChatLine], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(lines.iter().map(|line| TaggedLine { kind: "chat", line }))
}

impl ServerEvent {
    /// The `error` message for `e`.
    pub fn error(e: &ChatError) -> Self {
        ServerEvent::Error {
            code: e.code(),
            message: e.to_string(),
            retry_ms: e.retry_ms(),
        }
    }

    /// Serialises the event (infallible for these types).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("chat events serialise: plain strings and numbers")
    }
}

/// A moderator command (`{"type":"mod","action":...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModCommand {
    /// Ban `user` for `seconds` (absent or 0: until unbanned).
    Ban {
        /// User id (or a unique display name).
        user: String,
        /// Duration.
        seconds: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// User id (or a unique display name).
        user: String,
    },
    /// Mute `user` for `seconds` (absent: 600; 0 lifts the timeout).
    Timeout {
        /// User id (or a unique display name).
        user: String,
        /// Duration.
        seconds: Option<u64>,
    },
    /// Delete one message.
    Delete {
        /// Message id.
        id: String,
    },
    /// Delete every message.
    Clear,
    /// Slow mode: one message per `seconds` per user (0: off).
    Slow {
        /// Interval.
        seconds: u64,
    },
    /// Guests-only mode: `on`, or toggle when absent.
    GuestsOnly {
        /// The new setting; `None` toggles.
        on: Option<bool>,
    },
    /// Mask a word.
    FilterAdd {
        /// The word.
        word: String,
    },
    /// Stop masking a word.
    FilterRemove {
        /// The word.
        word: String,
    },
    /// Make `user` a moderator of this room (broadcaster only).
    Promote {
        /// User id (or a unique display name).
        user: String,
    },
    /// Take moderation away from `user` (broadcaster only).
    Demote {
        /// User id (or a unique display name).
        user: String,
    },
}

/// A parsed client -> server message. Text is not yet checked: the room does that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"type":"chat","text":"hi"}`
    Chat {
        /// Raw text.
        text: String,
    },
    /// `{"type":"reaction","emoji":"🎉"}`
    Reaction {
        /// Raw emoji.
        emoji: String,
    },
    /// `{"type":"mod",...}`
    Mod(ModCommand),
    /// `{"type":"stage","action":"mute"|"unmute"|"remove","user":"<id>"}` (broadcaster only).
    Stage(super::stage::StageCommand),
}

/// Every field any client message may carry; which are required depends on `type`/`action`.
#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    emoji: Option<String>,
    action: Option<String>,
    user: Option<String>,
    id: Option<String>,
    seconds: Option<u64>,
    word: Option<String>,
    on: Option<bool>,
}

/// Parses one client message. Malformed JSON, unknown types and actions, and missing or
/// mistyped fields are [`ChatError::BadRequest`] with a message saying what is wrong.
pub fn parse_client(json: &str) -> Result<ClientMessage, ChatError> {
    let raw: Raw = serde_json::from_str(json)
        .map_err(|e| ChatError::bad_request(format!("malformed message: {e}")))?;
    let kind = raw
        .kind
        .as_deref()
        .ok_or_else(|| ChatError::bad_request("a message needs a \"type\""))?;
    match kind {
        "chat" => Ok(ClientMessage::Chat {
            text: raw
                .text
                .ok_or_else(|| ChatError::bad_request("a chat message needs a \"text\" string"))?,
        }),
        "reaction" => Ok(ClientMessage::Reaction {
            emoji: raw
                .emoji
                .ok_or_else(|| ChatError::bad_request("a reaction needs an \"emoji\" string"))?,
        }),
        "mod" => parse_mod(raw).map(ClientMessage::Mod),
        "stage" => {
            super::stage::parse_stage(raw.action.as_deref(), &raw.user).map(ClientMessage::Stage)
        }
        other => Err(ChatError::bad_request(format!(
            "unknown message type `{}` (chat, reaction, mod or stage)",
            truncate(other, 32)
        ))),
    }
}

fn parse_mod(raw: Raw) -> Result<ModCommand, ChatError> {
    let action = raw
        .action
        .as_deref()
        .ok_or_else(|| ChatError::bad_request("a mod command needs an \"action\""))?;
    let user = || field(&raw.user, "user", action);
    let command = match action {
        "ban" => ModCommand::Ban {
            user: user()?,
            seconds: raw.seconds,
        },
        "unban" => ModCommand::Unban { user: user()? },
        "timeout" => ModCommand::Timeout {
            user: user()?,
            seconds: raw.seconds,
        },
        "delete" => ModCommand::Delete {
            id: field(&raw.id, "id", action)?,
        },
        "clear" => ModCommand::Clear,
        "slow" => ModCommand::Slow {
            seconds: raw.seconds.ok_or_else(|| {
                ChatError::bad_request("`slow` needs \"seconds\" (0 turns slow mode off)")
            })?,
        },
        "guests_only" => ModCommand::GuestsOnly { on: raw.on },
        "filter_add" => ModCommand::FilterAdd {
            word: field(&raw.word, "word", action)?,
        },
        "filter_remove" => ModCommand::FilterRemove {
            word: field(&raw.word, "word", action)?,
        },
        "promote" => ModCommand::Promote { user: user()? },
        "demote" => ModCommand::Demote { user: user()? },
        other => {
            return Err(ChatError::bad_request(format!(
                "unknown mod action `{}` (ban, unban, timeout, delete, clear, slow, guests_only, \
                 filter_add, filter_remove, promote, demote)",
                truncate(other, 32)
            )));
        }
    };
    Ok(command)
}

/// A required, trimmed, non-empty, bounded string field.
pub(super) fn field(value: &Option<String>, name: &str, action: &str) -> Result<String, ChatError> {
    let value = value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ChatError::bad_request(format!("`{action}` needs a \"{name}\"")))?;
    if value.chars().count() > MAX_ID_CHARS {
        return Err(ChatError::TooLong {
            max: MAX_ID_CHARS,
            unit: "characters",
        });
    }
    Ok(value.to_owned())
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_messages_parse_per_design() {
        assert_eq!(
            parse_client(r#"{"type":"chat","text":"hi"}"#),
            Ok(ClientMessage::Chat { text: "hi".into() })
        );
        assert_eq!(
            parse_client(r#"{"type":"reaction","emoji":"🎉","extra":1}"#),
            Ok(ClientMessage::Reaction {
                emoji: "🎉".into()
            })
        );
        assert_eq!(
            parse_client(r#"{"type":"mod","action":"ban","user":" bob ","seconds":600}"#),
            Ok(ClientMessage::Mod(ModCommand::Ban {
                user: "bob".into(),
                seconds: Some(600)
            }))
        );
        assert_eq!(
            parse_client(r#"{"type":"mod","action":"guests_only"}"#),
            Ok(ClientMessage::Mod(ModCommand::GuestsOnly { on: None }))
        );
        assert_eq!(
            parse_client(r#"{"type":"mod","action":"filter_add","word":"x"}"#),
            Ok(ClientMessage::Mod(ModCommand::FilterAdd {
                word: "x".into()
            }))
        );
    }

    #[test]
    fn bad_input_is_a_bad_request_never_a_panic() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            "42",
            r#"{"text":"no type"}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","text":5}"#,
            r#"{"type":"reaction"}"#,
            r#"{"type":"mod"}"#,
            r#"{"type":"mod","action":"ban"}"#,
            r#"{"type":"mod","action":"ban","user":"   "}"#,
            r#"{"type":"mod","action":"slow"}"#,
            r#"{"type":"mod","action":"slow","seconds":-1}"#,
            r#"{"type":"mod","action":"delete"}"#,
            r#"{"type":"mod","action":"nuke"}"#,
            r#"{"type":"dance"}"#,
        ] {
            let e = parse_client(bad).unwrap_err();
            assert_eq!(e.code(), "bad_request", "{bad}: {e}");
        }
        let long = format!(
            r#"{{"type":"mod","action":"unban","user":"{}"}}"#,
            "u".repeat(200)
        );
        assert_eq!(parse_client(&long).unwrap_err().code(), "too_long");
    }

    #[test]
    fn events_serialise_to_the_documented_shapes() {
        let user = UserView {
            id: "u1".into(),
            name: "Ann".into(),
            role: Role::Viewer,
        };
        let line = ChatLine {
            id: "m1".into(),
            user: user.clone(),
            text: "<b>hi</b>".into(),
            ts: 5,
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerEvent::Chat(line).to_json()).unwrap();
        assert_eq!(
            v,
            json!({"type":"chat","id":"m1","user":{"id":"u1","name":"Ann","role":"viewer"},"text":"<b>hi</b>","ts":5})
        );
        let state = StateView {
            slow: 10,
            guests_only: true,
            promoted: vec![],
            filter: None,
            bans: None,
            timeouts: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&ServerEvent::State { state, ts: 7 }.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"type":"state","slow":10,"guests_only":true,"promoted":[],"ts":7})
        );
        let e = ServerEvent::error(&ChatError::SlowMode { retry_ms: 1500 });
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "slow_mode");
        assert_eq!(v["retry_ms"], 1500);
        assert!(v["message"].as_str().unwrap().contains("2 s"));
        let v: serde_json::Value = serde_json::from_str(
            &ServerEvent::Deleted {
                id: "m1".into(),
                ts: 1,
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(v, json!({"type":"deleted","id":"m1","ts":1}));
        let v: serde_json::Value =
            serde_json::from_str(&ServerEvent::Cleared { ts: 1 }.to_json()).unwrap();
        assert_eq!(v, json!({"type":"cleared","ts":1}));
    }
}
