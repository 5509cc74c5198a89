//! Scenario tests of `ChatRoom` (chat path, pure) on a fake clock: welcome, history, ids and
//! timestamps, validation, per-user rate limits, slow mode, guests-only mode, anonymous
//! writing, reactions and presence. Moderation is in `moderation_tests.rs`.

use super::*;

/// A room, a fake clock and connection ids.
pub(super) struct Fx {
    pub room: ChatRoom,
    pub now: u64,
    next_conn: ConnId,
    pub media_viewers: u64,
}

pub(super) fn identity(id: &str, role: Role) -> Identity {
    Identity {
        id: id.into(),
        name: id.to_uppercase(),
        role,
        anonymous: false,
    }
}

impl Fx {
    pub fn new() -> Self {
        Self::with(ChatLimits::default())
    }

    pub fn with(limits: ChatLimits) -> Self {
        Self {
            room: ChatRoom::new(limits, "t"),
            now: 1_000_000,
            next_conn: 1,
            media_viewers: 0,
        }
    }

    pub fn join_as(&mut self, identity: Identity, transport: Transport) -> (ConnId, Vec<Output>) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let out = self
            .room
            .join(conn, identity, transport, self.media_viewers, self.now)
            .expect("join accepted");
        (conn, out)
    }

    pub fn join(&mut self, id: &str, role: Role) -> ConnId {
        self.join_as(identity(id, role), Transport::DataChannel).0
    }

    pub fn try_join(&mut self, id: &str, role: Role) -> Result<Vec<Output>, ChatError> {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.room.join(
            conn,
            identity(id, role),
            Transport::DataChannel,
            self.media_viewers,
            self.now,
        )
    }

    pub fn chat(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        self.room
            .handle(conn, ClientMessage::Chat { text: text.into() }, self.now)
    }

    pub fn cmd(&mut self, conn: ConnId, json: &str) -> Vec<Output> {
        let message = parse_client(json).expect("test commands are well-formed");
        self.room.handle(conn, message, self.now)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }
}

/// The code of the refusal in `out`: a refused action yields exactly one output, the error
/// for the sender.
pub(super) fn error_code(out: &[Output]) -> Option<&'static str> {
    match out {
        [
            Output::Send {
                to: Audience::Conns(_),
                event: ServerEvent::Error { code, .. },
                log: false,
            },
        ] => Some(*code),
        _ => None,
    }
}

/// The code of the first error anywhere in `out` (notices to the target of a command).
pub(super) fn notice_code(out: &[Output]) -> Option<&'static str> {
    out.iter().find_map(|o| match o {
        Output::Send {
            event: ServerEvent::Error { code, .. },
            ..
        } => Some(*code),
        _ => None,
    })
}

/// The chat lines broadcast in `out`.
pub(super) fn lines(out: &[Output]) -> Vec<ChatLine> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: Audience::All,
                event: ServerEvent::Chat(line),
                log: true,
            } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// The one chat line of `out` (panics with `out` otherwise).
pub(super) fn line(out: &[Output]) -> ChatLine {
    let l = lines(out);
    assert_eq!(l.len(), 1, "{out:?}");
    l[0].clone()
}

fn welcome(out: &[Output]) -> (UserView, Vec<ChatLine>, StateView, u64) {
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                event:
                    ServerEvent::Welcome {
                        you,
                        history,
                        state,
                        viewers,
                    },
                ..
            } => Some((you.clone(), history.clone(), state.clone(), *viewers)),
            _ => None,
        })
        .expect("a welcome")
}

fn presence(out: &[Output]) -> Option<PresenceView> {
    out.iter().find_map(|o| match o {
        Output::Send {
            event: ServerEvent::Presence(p),
            ..
        } => Some(p.clone()),
        _ => None,
    })
}

#[test]
fn welcome_carries_identity_history_state_and_viewers() {
    let mut fx = Fx::new();
    fx.media_viewers = 3;
    let a = fx.join("ann", Role::Viewer);
    fx.chat(a, "first");
    fx.advance(2000);
    fx.chat(a, "second");
    let (conn, out) = fx.join_as(identity("bob", Role::Moderator), Transport::WebSocket);
    let Output::Send { to, .. } = &out[0] else {
        panic!("welcome first: {out:?}");
    };
    assert_eq!(to, &Audience::Conns(vec![conn]));
    let (you, history, state, viewers) = welcome(&out);
    assert_eq!(
        you,
        UserView {
            id: "bob".into(),
            name: "BOB".into(),
            role: Role::Moderator
        }
    );
    let texts: Vec<_> = history.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(viewers, 4, "3 WHEP viewers + 1 WebSocket member");
    assert_eq!(state.slow, 0);
    assert!(state.filter.is_some(), "moderators see the filter");
    let (_, out) = fx.join_as(identity("cy", Role::Viewer), Transport::DataChannel);
    assert!(welcome(&out).2.filter.is_none(), "viewers do not");
}

#[test]
fn messages_get_ids_and_server_timestamps_and_reach_everyone() {
    let mut fx = Fx::new();
    let a = fx.join("ann", Role::Viewer);
    let one = line(&fx.chat(a, "  hello  "));
    assert_eq!(one.text, "hello");
    assert_eq!(one.ts, fx.now);
    assert_eq!(one.user.role, Role::Viewer);
    fx.advance(1500);
    let two = line(&fx.chat(a, "<script>x</script>"));
    assert_eq!(two.text, "<script>x</script>", "kept as plain text");
    assert_ne!(one.id, two.id);
    assert_eq!(two.ts, one.ts + 1500);
    assert!(one.id.starts_with("t-"));
}

#[test]
fn history_is_bounded_and_the_welcome_sends_the_newest() {
    let limits = ChatLimits {
        history: 5,
        welcome_history: 3,
        user_refill_ms: 0,
        ..ChatLimits::default()
    };
    let mut fx = Fx::with(limits);
    let a = fx.join("ann", Role::Viewer);
    for i in 0..8 {
        fx.chat(a, &format!("m{i}"));
    }
    assert_eq!(fx.room.history.len(), 5);
    let (_, out) = fx.join_as(identity("bob", Role::Viewer), Transport::DataChannel);
    let texts: Vec<_> = welcome(&out).1.into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["m5", "m6", "m7"]);
}

#[test]
fn bad_text_is_refused_with_a_code_and_nothing_is_sent() {
    let mut fx = Fx::with(ChatLimits {
        max_length: 5,
        ..ChatLimits::default()
    });
    let a = fx.join("ann", Role::Viewer);
    let out = fx.chat(a, "toolong");
    assert_eq!(error_code(&out), Some("too_long"));
    assert!(lines(&out).is_empty());
    let Output::Send { to, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(
        to,
        &Audience::Conns(vec![a]),
        "errors go to the sender only"
    );
    assert_eq!(error_code(&fx.chat(a, "   ")), Some("bad_request"));
    assert_eq!(line(&fx.chat(a, " five ")).text, "five");
}

#[test]
fn per_user_rate_limit_spans_connections_and_refills() {
    let mut fx = Fx::with(ChatLimits {
        user_burst: 2,
        user_refill_ms: 1000,
        ..ChatLimits::default()
    });
    let a1 = fx.join("ann", Role::Viewer);
    let a2 = fx.join("ann", Role::Viewer);
    let b = fx.join("bob", Role::Viewer);
    assert_eq!(lines(&fx.chat(a1, "1")).len(), 1);
    assert_eq!(lines(&fx.chat(a2, "2")).len(), 1);
    let out = fx.chat(a1, "3");
    assert_eq!(error_code(&out), Some("rate_limited"));
    let Some(Output::Send {
        event: ServerEvent::Error { retry_ms, .. },
        ..
    }) = out.first()
    else {
        panic!()
    };
    assert_eq!(*retry_ms, Some(1000));
    assert_eq!(lines(&fx.chat(b, "bob is not limited by ann")).len(), 1);
    fx.advance(1000);
    assert_eq!(lines(&fx.chat(a2, "4")).len(), 1);
    assert_eq!(error_code(&fx.chat(a2, "5")), Some("rate_limited"));
}

#[test]
fn slow_mode_spaces_each_users_messages_but_not_moderators() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let m = fx.join("mod", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    fx.cmd(host, r#"{"type":"mod","action":"slow","seconds":10}"#);
    assert_eq!(lines(&fx.chat(a, "one")).len(), 1);
    fx.advance(4000);
    let out = fx.chat(a, "two");
    assert_eq!(error_code(&out), Some("slow_mode"));
    assert!(
        matches!(
            &out[0],
            Output::Send {
                event: ServerEvent::Error {
                    retry_ms: Some(6000),
                    ..
                },
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(lines(&fx.chat(m, "mods are exempt")).len(), 1);
    assert_eq!(lines(&fx.chat(m, "twice")).len(), 1);
    fx.advance(6000);
    assert_eq!(lines(&fx.chat(a, "two")).len(), 1);
    fx.cmd(host, r#"{"type":"mod","action":"slow","seconds":0}"#);
    fx.advance(1000);
    assert_eq!(lines(&fx.chat(a, "off")).len(), 1);
}

#[test]
fn guests_only_mode_lets_the_stage_and_moderators_write() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let guest = fx.join("guest", Role::Guest);
    let m = fx.join("mod", Role::Moderator);
    let v = fx.join("ann", Role::Viewer);
    fx.cmd(m, r#"{"type":"mod","action":"guests_only"}"#);
    assert!(fx.room.guests_only, "toggled on");
    assert_eq!(error_code(&fx.chat(v, "hi")), Some("forbidden"));
    for c in [host, guest, m] {
        assert_eq!(lines(&fx.chat(c, "hi")).len(), 1);
    }
    let out = fx.cmd(v, r#"{"type":"reaction","emoji":"👏"}"#);
    assert_eq!(error_code(&out), None, "reactions stay open: {out:?}");
    fx.cmd(m, r#"{"type":"mod","action":"guests_only","on":false}"#);
    assert_eq!(lines(&fx.chat(v, "back")).len(), 1);
}

#[test]
fn anonymous_viewers_read_and_write_unless_configured_otherwise() {
    let anon = Identity {
        id: "anon-1".into(),
        name: "viewer-1".into(),
        role: Role::Viewer,
        anonymous: true,
    };
    let mut open = Fx::new();
    let (c, _) = open.join_as(anon.clone(), Transport::WebSocket);
    assert_eq!(lines(&open.chat(c, "hello")).len(), 1);

    let mut closed = Fx::with(ChatLimits {
        anonymous_chat: false,
        ..ChatLimits::default()
    });
    let (c, out) = closed.join_as(anon, Transport::WebSocket);
    assert_eq!(welcome(&out).0.id, "anon-1", "joins and reads");
    assert_eq!(error_code(&closed.chat(c, "hello")), Some("forbidden"));
    assert_eq!(
        error_code(&closed.cmd(c, r#"{"type":"reaction","emoji":"🎉"}"#)),
        Some("forbidden")
    );
}

#[test]
fn reactions_are_broadcast_checked_and_rate_limited() {
    let mut fx = Fx::with(ChatLimits {
        reaction_burst: 2,
        reaction_refill_ms: 500,
        ..ChatLimits::default()
    });
    let a = fx.join("ann", Role::Viewer);
    let out = fx.cmd(a, r#"{"type":"reaction","emoji":"🎉"}"#);
    assert!(matches!(
        &out[..],
        [Output::Send { to: Audience::All, event: ServerEvent::Reaction { emoji, .. }, log: true }] if emoji == "🎉"
    ));
    assert_eq!(
        error_code(&fx.cmd(a, r#"{"type":"reaction","emoji":"hello"}"#)),
        Some("bad_request")
    );
    fx.cmd(a, r#"{"type":"reaction","emoji":"🔥"}"#);
    assert_eq!(
        error_code(&fx.cmd(a, r#"{"type":"reaction","emoji":"🔥"}"#)),
        Some("rate_limited")
    );
    assert!(fx.room.history.is_empty(), "reactions are not history");
}

#[test]
fn presence_is_coalesced_and_counts_viewers() {
    let mut fx = Fx::with(ChatLimits {
        presence_ms: 500,
        ..ChatLimits::default()
    });
    fx.media_viewers = 2;
    let (_, out) = fx.join_as(identity("ann", Role::Viewer), Transport::WebSocket);
    let p = presence(&out).expect("first join is news at once");
    assert_eq!((p.viewers, p.chatters), (3, 1));
    assert_eq!(p.joined[0].id, "ann");
    let mut quiet = Vec::new();
    for i in 0..50 {
        let (_, out) = fx.join_as(
            identity(&format!("u{i}"), Role::Viewer),
            Transport::DataChannel,
        );
        quiet.extend(out);
    }
    assert!(presence(&quiet).is_none(), "nothing within the interval");
    fx.advance(500);
    let p = presence(&fx.room.tick(2, fx.now)).expect("one coalesced update");
    assert_eq!((p.viewers, p.chatters), (3, 51));
    assert_eq!(p.joined.len(), presence::MAX_LISTED);
    fx.advance(500);
    assert!(presence(&fx.room.tick(2, fx.now)).is_none(), "no change");
    fx.advance(500);
    let p = presence(&fx.room.tick(7, fx.now)).expect("media viewers changed");
    assert_eq!(p.viewers, 8);
}

#[test]
fn a_second_connection_of_a_user_is_not_a_join_and_leaving_is_reported_once() {
    let mut fx = Fx::with(ChatLimits {
        presence_ms: 100,
        ..ChatLimits::default()
    });
    let a1 = fx.join("ann", Role::Viewer);
    fx.advance(100);
    let (a2, out) = fx.join_as(identity("ann", Role::Viewer), Transport::DataChannel);
    assert!(presence(&out).is_some_and(|p| p.joined.is_empty()));
    fx.advance(100);
    let out = fx.room.leave(a1, 0, fx.now);
    assert!(presence(&out).is_some_and(|p| p.left.is_empty()));
    fx.advance(100);
    let out = fx.room.leave(a2, 0, fx.now);
    assert_eq!(presence(&out).expect("update").left[0].id, "ann");
    assert!(
        fx.room.leave(a2, 0, fx.now).is_empty(),
        "unknown connections are ignored"
    );
    assert!(fx.chat(a2, "ghost").is_empty());
    assert!(fx.room.is_idle(fx.now));
}

#[test]
fn names_are_cleaned_and_bounded() {
    let mut fx = Fx::new();
    let (_, out) = fx.join_as(
        Identity {
            id: "x".into(),
            name: format!("\u{202E}{}\n", "n".repeat(100)),
            role: Role::Viewer,
            anonymous: false,
        },
        Transport::DataChannel,
    );
    assert_eq!(welcome(&out).0.name, "n".repeat(64));
    let (_, out) = fx.join_as(
        Identity {
            id: "y".into(),
            name: "  ".into(),
            role: Role::Viewer,
            anonymous: false,
        },
        Transport::DataChannel,
    );
    assert_eq!(welcome(&out).0.name, "y");
}
