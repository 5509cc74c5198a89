//! The permission matrix (control plane, pure): who — anonymous, a role from a room-scoped
//! token, or an admin — may do what on a public or a private room (DESIGN.md §4). Every route
//! asks [`decide`]; nothing else in onair decides access. Also the private-room patterns and
//! the ownership rule for WHIP/WHEP session resources (RFC 9725 §4.3: the session URL is
//! managed with the token that created it).

use serde::{Deserialize, Serialize};

use super::Role;

/// Who is asking, once the token (if any) is verified and its room checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// No token.
    Anonymous,
    /// A valid token for this room with this role.
    Role(Role),
    /// A token with the `admin` claim, or the server secret as Bearer.
    Admin,
}

impl Subject {
    /// Every subject, for tables and tests.
    pub const ALL: [Subject; 6] = [
        Subject::Anonymous,
        Subject::Role(Role::Viewer),
        Subject::Role(Role::Moderator),
        Subject::Role(Role::Guest),
        Subject::Role(Role::Broadcaster),
        Subject::Admin,
    ];

    /// Short name used in docs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Anonymous => "anonymous",
            Subject::Role(r) => r.as_str(),
            Subject::Admin => "admin",
        }
    }
}

/// What is asked for. Room-scoped except [`Action::Admin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /whip/{room}`.
    Publish,
    /// `POST /whep/{room}`.
    ViewWhep,
    /// `GET /hls/{room}/...`: playlists, init, parts, segments.
    ViewHls,
    /// Join the room's chat (`/ws/{room}` or a WHIP/WHEP data channel) and read it.
    ChatRead,
    /// Send chat messages and reactions (the chat core adds bans, slow and guests-only mode).
    ChatWrite,
    /// Run chat commands (ban, timeout, delete, ...). Enforced by `core::chat::moderation`,
    /// whose role rule this column must equal (unit-tested).
    Moderate,
    /// See the room in `GET /api/rooms`.
    ListRooms,
    /// `GET /api/rooms/{room}`.
    RoomDetail,
    /// See the room's recordings in `GET /api/recordings`.
    ListRecordings,
    /// `GET /recordings/{file}` and the VOD playlist of a recording.
    DownloadRecording,
    /// `POST /api/rooms/{room}/invites`: mint a guest invite link.
    Invite,
    /// Everything under the admin API: list with detail, end a room, kick, mint tokens.
    Admin,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 12] = [
        Action::Publish,
        Action::ViewWhep,
        Action::ViewHls,
        Action::ChatRead,
        Action::ChatWrite,
        Action::Moderate,
        Action::ListRooms,
        Action::RoomDetail,
        Action::ListRecordings,
        Action::DownloadRecording,
        Action::Invite,
        Action::Admin,
    ];

    /// Short name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::ViewWhep => "watch over WHEP",
            Action::ViewHls => "watch over LL-HLS",
            Action::ChatRead => "read the chat",
            Action::ChatWrite => "write in the chat",
            Action::Moderate => "moderate the chat",
            Action::ListRooms => "list the room",
            Action::RoomDetail => "see the room",
            Action::ListRecordings => "list the room's recordings",
            Action::DownloadRecording => "download a recording",
            Action::Invite => "invite guests",
            Action::Admin => "use the admin API",
        }
    }

    /// Actions any participant of a room has: everyone on a public room, token holders of the
    /// room on a private one.
    fn is_viewing(self) -> bool {
        matches!(
            self,
            Action::ViewWhep
                | Action::ViewHls
                | Action::ChatRead
                | Action::ChatWrite
                | Action::ListRooms
                | Action::RoomDetail
                | Action::ListRecordings
                | Action::DownloadRecording
        )
    }
}

/// Whether a room needs a token to be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Anyone may watch and chat.
    Public,
    /// Only holders of a token for the room (or admins).
    Private,
}

/// Why [`decide`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// Anonymous, and a token would help: 401 `missing_token`.
    NeedToken,
    /// The subject's role may not: 403 `forbidden`.
    Role,
}

/// The matrix. `Ok(())` when `who` may do `action` on a room of `visibility`.
///
/// | action | anonymous | viewer | moderator | guest | broadcaster | admin |
/// |---|---|---|---|---|---|---|
/// | publish | 401 | 403 | 403 | yes | yes | yes |
/// | view (WHEP, HLS), chat read/write, list/detail, recordings | public: yes, private: 401 | yes | yes | yes | yes | yes |
/// | moderate | no | no | yes | no | yes | yes |
/// | invite guests | 401 | 403 | 403 | 403 | yes | yes |
/// | admin API | 401 | 403 | 403 | 403 | 403 | yes |
pub fn decide(who: Subject, action: Action, visibility: Visibility) -> Result<(), Deny> {
    let role = match who {
        Subject::Admin => return Ok(()),
        Subject::Anonymous => None,
        Subject::Role(r) => Some(r),
    };
    let allowed = match action {
        a if a.is_viewing() => role.is_some() || visibility == Visibility::Public,
        Action::Publish => role.is_some_and(Role::may_publish),
        Action::Moderate => matches!(role, Some(Role::Broadcaster | Role::Moderator)),
        Action::Invite => role == Some(Role::Broadcaster),
        _ => false, // Action::Admin: admins returned above
    };
    match (allowed, role) {
        (true, _) => Ok(()),
        (false, None) => Err(Deny::NeedToken),
        (false, Some(_)) => Err(Deny::Role),
    }
}

/// Who may `PATCH`/`DELETE` a WHIP/WHEP session resource: an admin, or a token with the same
/// user id as the one that created it. A session created without a token (an anonymous
/// viewer of a public room) is managed by whoever holds its unguessable URL.
pub fn may_manage_session(
    who: Subject,
    caller_sub: Option<&str>,
    owner_sub: &str,
    owner_anonymous: bool,
) -> Result<(), Deny> {
    match who {
        Subject::Admin => Ok(()),
        _ if owner_anonymous => Ok(()),
        Subject::Anonymous => Err(Deny::NeedToken),
        Subject::Role(_) if caller_sub == Some(owner_sub) => Ok(()),
        Subject::Role(_) => Err(Deny::Role),
    }
}

/// `[access]` in `onair.toml`: which rooms are private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Every room is private: watching anything needs a token.
    pub all_private: bool,
    /// Room name patterns that are private; `*` matches any run of characters
    /// (`team-*`, `*-internal`, `exact`).
    pub private_rooms: Vec<String>,
}

impl AccessConfig {
    /// The visibility of `room`.
    pub fn visibility(&self, room: &str) -> Visibility {
        if self.all_private || self.private_rooms.iter().any(|p| glob(p, room)) {
            Visibility::Private
        } else {
            Visibility::Public
        }
    }

    /// An error message for an unusable pattern.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.private_rooms {
            let ok = !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'));
            if !ok {
                return Err(format!(
                    "access.private_rooms: `{p}` must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' and '*'"
                ));
            }
        }
        Ok(())
    }
}

/// `*`-only glob: `*` matches any (possibly empty) run; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty(); // no `*`: exact match
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The room of a recording file name `{room}-{YYYYMMDD}-{HHMMSS}[-n][.live].mp4`, or `None`
/// when the name does not have that shape.
pub fn recording_room(file: &str) -> Option<&str> {
    let stem = file
        .strip_suffix(".live.mp4")
        .or_else(|| file.strip_suffix(".mp4"))
        .unwrap_or(file);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let mut end = stem.len();
    // An optional `-n` counter after the time.
    if let Some((head, n)) = stem.rsplit_once('-')
        && !n.is_empty()
        && n.len() < 4
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        end = head.len();
    }
    let (head, time) = stem[..end].rsplit_once('-')?;
    let (room, date) = head.rsplit_once('-')?;
    (digits(time, 6) && digits(date, 8) && !room.is_empty()).then_some(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: Result<(), Deny> = Ok(());
    const T: Result<(), Deny> = Err(Deny::NeedToken);
    const R: Result<(), Deny> = Err(Deny::Role);

    /// The whole matrix, written out cell by cell: rows follow [`Action::ALL`], columns
    /// [`Subject::ALL`] (anonymous, viewer, moderator, guest, broadcaster, admin).
    fn expected(action: Action, vis: Visibility) -> [Result<(), Deny>; 6] {
        let view = match vis {
            Visibility::Public => [Y, Y, Y, Y, Y, Y],
            Visibility::Private => [T, Y, Y, Y, Y, Y],
        };
        match action {
            Action::Publish => [T, R, R, Y, Y, Y],
            Action::Moderate => [T, R, Y, R, Y, Y],
            Action::Invite => [T, R, R, R, Y, Y],
            Action::Admin => [T, R, R, R, R, Y],
            _ => view,
        }
    }

    #[test]
    fn every_cell_of_the_matrix() {
        for vis in [Visibility::Public, Visibility::Private] {
            for action in Action::ALL {
                let want = expected(action, vis);
                for (who, want) in Subject::ALL.into_iter().zip(want) {
                    assert_eq!(
                        decide(who, action, vis),
                        want,
                        "{} / {} / {vis:?}",
                        who.as_str(),
                        action.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn the_moderate_column_is_the_chat_cores_rule() {
        for role in [
            Role::Viewer,
            Role::Moderator,
            Role::Guest,
            Role::Broadcaster,
        ] {
            let chat = crate::chat::chat_role(role).moderates();
            let matrix = decide(Subject::Role(role), Action::Moderate, Visibility::Public).is_ok();
            assert_eq!(chat, matrix, "{role}");
        }
    }

    #[test]
    fn sessions_are_managed_by_their_owner_or_an_admin() {
        assert_eq!(may_manage_session(Subject::Admin, None, "u", false), Ok(()));
        let viewer = Subject::Role(Role::Viewer);
        assert_eq!(may_manage_session(viewer, Some("u"), "u", false), Ok(()));
        assert_eq!(
            may_manage_session(viewer, Some("x"), "u", false),
            Err(Deny::Role)
        );
        assert_eq!(
            may_manage_session(Subject::Anonymous, None, "u", false),
            Err(Deny::NeedToken)
        );
        assert_eq!(
            may_manage_session(Subject::Anonymous, None, "anon-1", true),
            Ok(())
        );
    }

    #[test]
    fn private_room_patterns() {
        let a = AccessConfig {
            all_private: false,
            private_rooms: vec![
                "team-*".into(),
                "*-internal".into(),
                "vip".into(),
                "a*b*c".into(),
            ],
        };
        for private in [
            "team-x",
            "team-",
            "ops-internal",
            "vip",
            "abc",
            "a-b-c",
            "axxbyyc",
        ] {
            assert_eq!(a.visibility(private), Visibility::Private, "{private}");
        }
        for public in [
            "team", "vipx", "xvip", "demo", "internal", "ab", "acb", "abcx",
        ] {
            assert_eq!(a.visibility(public), Visibility::Public, "{public}");
        }
        assert!(glob("*", ""));
        assert!(glob("a*a", "aa") && !glob("a*a", "a"));
        let all = AccessConfig {
            all_private: true,
            ..Default::default()
        };
        assert_eq!(all.visibility("demo"), Visibility::Private);
        assert!(a.validate().is_ok());
        let bad = AccessConfig {
            private_rooms: vec!["a/b".into()],
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("a/b"));
    }

    #[test]
    fn recording_names_give_their_room() {
        assert_eq!(recording_room("demo-20231114-221320.mp4"), Some("demo"));
        assert_eq!(
            recording_room("team-a-20231114-221320-2.live.mp4"),
            Some("team-a")
        );
        assert_eq!(recording_room("x-1-20231114-221320"), Some("x-1"));
        assert_eq!(recording_room("demo.mp4"), None);
        assert_eq!(recording_room("-20231114-221320.mp4"), None);
        assert_eq!(recording_room("demo-2023-221320.mp4"), None);
    }
}
