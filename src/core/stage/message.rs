//! Stage JSON for pages (pure). These extend DESIGN.md §4's chat protocol with new server ->
//! client types on the same channel; existing types are unchanged:
//!
//! ```text
//! {"type":"stage","you":"<id>",
//!  "participants":[{"id","name","role","muted","slot":N|null,"video_mid","audio_mid"}]}
//! {"type":"speaker","user":"<id>"|null}
//! {"type":"system","event":"guest_joined"|"guest_left"|"guest_muted"|"guest_unmuted"
//!         |"guest_removed","user":{"id","name","role"}}
//! ```
//! `stage` goes to one WHEP session (its slots and mids are its own); the others go to the
//! whole room's chat.

use serde::Serialize;

/// The mids of one slot's video and audio m-sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlotMids {
    /// Video mid, if the slot has video.
    pub video_mid: Option<String>,
    /// Audio mid, if the slot has audio.
    pub audio_mid: Option<String>,
}

/// One participant in a `stage` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageEntry {
    /// Token `sub`.
    pub id: String,
    /// Display name (plain text; pages must not parse it as HTML).
    pub name: String,
    /// `broadcaster` or `guest`.
    pub role: &'static str,
    /// The broadcaster muted this guest: the server forwards none of their audio.
    pub muted: bool,
    /// The viewer's slot showing them (`null`: not shown to this viewer, e.g. themselves).
    pub slot: Option<usize>,
    /// Where that slot is in the viewer's SDP.
    #[serde(flatten)]
    pub mids: SlotMids,
}

/// A per-session `stage` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageMessage {
    /// The session's own user id.
    pub you: String,
    /// Everyone on stage, broadcaster first.
    pub participants: Vec<StageEntry>,
}

impl StageMessage {
    /// `{"type":"stage",...}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            body: &'a StageMessage,
        }
        serde_json::to_string(&Tagged {
            kind: "stage",
            body: self,
        })
        .expect("stage message serialises")
    }
}

/// `{"type":"speaker","user":...}`.
pub fn speaker_json(user: Option<&str>) -> String {
    serde_json::json!({"type": "speaker", "user": user}).to_string()
}

/// A stage change everyone in the room's chat sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemEvent {
    /// A guest's media is live on stage.
    GuestJoined,
    /// A guest left (button, closed tab, lost connection).
    GuestLeft,
    /// The broadcaster muted a guest.
    GuestMuted,
    /// The broadcaster unmuted a guest.
    GuestUnmuted,
    /// The broadcaster removed a guest from the stage.
    GuestRemoved,
}

impl SystemEvent {
    /// The `event` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemEvent::GuestJoined => "guest_joined",
            SystemEvent::GuestLeft => "guest_left",
            SystemEvent::GuestMuted => "guest_muted",
            SystemEvent::GuestUnmuted => "guest_unmuted",
            SystemEvent::GuestRemoved => "guest_removed",
        }
    }
}

/// `{"type":"system","event":...,"user":{"id","name","role"},"ts"}`.
pub fn system_json(event: SystemEvent, id: &str, name: &str, role: &str, ts: u64) -> String {
    serde_json::json!({
        "type": "system",
        "event": event.as_str(),
        "user": {"id": id, "name": name, "role": role},
        "ts": ts,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_message_shape() {
        let msg = StageMessage {
            you: "g1".into(),
            participants: vec![StageEntry {
                id: "b".into(),
                name: "<b>Bob</b>".into(),
                role: "broadcaster",
                muted: false,
                slot: Some(0),
                mids: SlotMids {
                    video_mid: Some("0".into()),
                    audio_mid: Some("1".into()),
                },
            }],
        };
        let v: serde_json::Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v["type"], "stage");
        assert_eq!(v["you"], "g1");
        assert_eq!(v["participants"][0]["video_mid"], "0");
        assert_eq!(v["participants"][0]["slot"], 0);
        assert_eq!(
            v["participants"][0]["name"], "<b>Bob</b>",
            "text stays text"
        );
    }

    #[test]
    fn system_and_speaker_shapes() {
        let v: serde_json::Value =
            serde_json::from_str(&system_json(SystemEvent::GuestMuted, "g", "G", "guest", 5))
                .unwrap();
        assert_eq!(v["event"], "guest_muted");
        assert_eq!(v["user"]["id"], "g");
        let s: serde_json::Value = serde_json::from_str(&speaker_json(Some("g"))).unwrap();
        assert_eq!(
            (s["type"].as_str(), s["user"].as_str()),
            (Some("speaker"), Some("g"))
        );
    }
}
