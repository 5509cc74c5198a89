//! Scenario tests of the moderator commands (chat path, pure) on a fake clock: every command,
//! every permission rule, durations and their expiry.

use super::room_tests::{Fx, error_code, line, lines, notice_code};
use super::*;

fn state_sends(out: &[Output]) -> Vec<(Audience, StateView, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                event: ServerEvent::State { state, .. },
                log,
            } => Some((to.clone(), state.clone(), *log)),
            _ => None,
        })
        .collect()
}

fn disconnects(out: &[Output]) -> Vec<(String, Vec<ConnId>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Disconnect { user, conns } => Some((user.clone(), conns.clone())),
            _ => None,
        })
        .collect()
}

fn deleted(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: Audience::All,
                event: ServerEvent::Deleted { id, .. },
                log: true,
            } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn ban(user: &str, seconds: u64) -> String {
    format!(r#"{{"type":"mod","action":"ban","user":"{user}","seconds":{seconds}}}"#)
}

fn timeout(user: &str, seconds: u64) -> String {
    format!(r#"{{"type":"mod","action":"timeout","user":"{user}","seconds":{seconds}}}"#)
}

#[test]
fn viewers_and_guests_get_forbidden_for_every_command() {
    let mut fx = Fx::new();
    let v = fx.join("ann", Role::Viewer);
    let g = fx.join("gus", Role::Guest);
    let a = fx.join("bob", Role::Viewer);
    let id = line(&fx.chat(a, "hi")).id;
    for conn in [v, g] {
        for cmd in [
            ban("bob", 60),
            r#"{"type":"mod","action":"unban","user":"bob"}"#.into(),
            timeout("bob", 60),
            format!(r#"{{"type":"mod","action":"delete","id":"{id}"}}"#),
            r#"{"type":"mod","action":"clear"}"#.into(),
            r#"{"type":"mod","action":"slow","seconds":5}"#.into(),
            r#"{"type":"mod","action":"guests_only"}"#.into(),
            r#"{"type":"mod","action":"filter_add","word":"x"}"#.into(),
            r#"{"type":"mod","action":"filter_remove","word":"x"}"#.into(),
            r#"{"type":"mod","action":"promote","user":"bob"}"#.into(),
            r#"{"type":"mod","action":"demote","user":"bob"}"#.into(),
        ] {
            assert_eq!(error_code(&fx.cmd(conn, &cmd)), Some("forbidden"), "{cmd}");
        }
    }
    assert_eq!(fx.room.history.len(), 1, "nothing happened");
}

#[test]
fn a_ban_disconnects_purges_and_refuses_rejoin_until_it_ends() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    let b1 = fx.join("bob", Role::Viewer);
    let b2 = fx.join("bob", Role::Viewer);
    let a = fx.join("ann", Role::Viewer);
    let bob_line = line(&fx.chat(b1, "spam")).id;
    let ann_line = line(&fx.chat(a, "fine")).id;
    let out = fx.cmd(m, &ban("bob", 600));
    assert_eq!(notice_code(&out), Some("banned"));
    assert!(matches!(&out[0], Output::Send { to: Audience::Conns(c), .. } if c == &vec![b1, b2]));
    assert_eq!(disconnects(&out), vec![("bob".to_owned(), vec![b1, b2])]);
    assert_eq!(deleted(&out), vec![bob_line]);
    assert_eq!(
        fx.room
            .history
            .iter()
            .map(|l| l.id.clone())
            .collect::<Vec<_>>(),
        vec![ann_line]
    );
    let states = state_sends(&out);
    assert_eq!(
        states.len(),
        1,
        "only moderators hear about bans: {states:?}"
    );
    assert_eq!(states[0].0, Audience::Conns(vec![m]));
    let bans = states[0]
        .1
        .bans
        .clone()
        .expect("moderator state lists bans");
    assert_eq!(bans[0].user.id, "bob");
    assert_eq!(bans[0].until, Some(fx.now + 600_000));
    assert!(fx.chat(b1, "still here?").is_empty(), "no longer a member");

    let refused = fx.try_join("bob", Role::Viewer).unwrap_err();
    assert_eq!(refused.code(), "banned");
    assert_eq!(refused.retry_ms(), Some(600_000));
    assert!(fx.room.check_ban("bob", Role::Viewer, fx.now).is_err());
    assert!(!fx.room.is_idle(fx.now), "a running ban keeps the room");
    fx.advance(599_999);
    assert!(fx.try_join("bob", Role::Viewer).is_err());
    fx.advance(1);
    let out = fx.room.tick(0, fx.now);
    assert!(
        state_sends(&out)
            .iter()
            .any(|(_, s, _)| s.bans == Some(vec![]))
    );
    assert!(fx.try_join("bob", Role::Viewer).is_ok(), "the ban ended");
}

#[test]
fn bans_without_end_hold_until_unbanned_by_id_or_name() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    fx.join("bob", Role::Viewer);
    let out = fx.cmd(host, r#"{"type":"mod","action":"ban","user":"BOB"}"#);
    assert_eq!(disconnects(&out)[0].0, "bob", "resolved by display name");
    fx.advance(40 * 24 * 3600 * 1000);
    fx.room.tick(0, fx.now);
    assert_eq!(
        fx.try_join("bob", Role::Viewer).unwrap_err().retry_ms(),
        None
    );
    let out = fx.cmd(host, r#"{"type":"mod","action":"unban","user":"Bob"}"#);
    assert_eq!(error_code(&out), None, "{out:?}");
    assert!(fx.try_join("bob", Role::Viewer).is_ok());
    let out = fx.cmd(host, r#"{"type":"mod","action":"unban","user":"bob"}"#);
    assert_eq!(error_code(&out), Some("bad_request"), "not banned any more");
}

#[test]
fn a_ban_reaches_users_who_are_not_connected() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    let out = fx.cmd(m, &ban("stranger", 60));
    assert_eq!(error_code(&out), None);
    assert_eq!(
        disconnects(&out),
        vec![("stranger".to_owned(), vec![])],
        "media sessions end too"
    );
    assert_eq!(
        fx.try_join("stranger", Role::Guest).unwrap_err().code(),
        "banned"
    );
}

#[test]
fn nobody_bans_the_broadcaster_and_moderators_do_not_act_on_each_other() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let m1 = fx.join("m1", Role::Moderator);
    fx.join("m2", Role::Moderator);
    fx.join("gus", Role::Guest);
    for cmd in [ban("host", 60), timeout("host", 60)] {
        assert_eq!(error_code(&fx.cmd(m1, &cmd)), Some("forbidden"), "{cmd}");
    }
    for cmd in [ban("m2", 60), timeout("m2", 60), ban("m1", 60)] {
        assert_eq!(error_code(&fx.cmd(m1, &cmd)), Some("forbidden"), "{cmd}");
    }
    assert_eq!(
        error_code(&fx.cmd(host, &ban("host", 60))),
        Some("forbidden")
    );
    assert_eq!(
        error_code(&fx.cmd(m1, &timeout("gus", 60))),
        None,
        "guests are fair game"
    );
    let out = fx.cmd(host, &ban("m2", 60));
    assert_eq!(error_code(&out), None, "the broadcaster can: {out:?}");
    assert_eq!(disconnects(&out)[0].0, "m2");
    assert!(
        fx.room.check_ban("host", Role::Broadcaster, fx.now).is_ok(),
        "a broadcaster is never locked out"
    );
}

#[test]
fn moderators_who_left_keep_their_protection() {
    let mut fx = Fx::new();
    let m1 = fx.join("m1", Role::Moderator);
    let m2 = fx.join("m2", Role::Moderator);
    fx.room.leave(m2, 0, fx.now);
    assert_eq!(error_code(&fx.cmd(m1, &ban("m2", 60))), Some("forbidden"));
}

#[test]
fn a_timeout_mutes_until_it_ends_and_zero_lifts_it() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    let out = fx.cmd(m, &timeout("ann", 30));
    assert_eq!(
        notice_code(&out),
        Some("timed_out"),
        "the muted user is told"
    );
    assert!(
        disconnects(&out).is_empty(),
        "a timeout does not disconnect"
    );
    let out = fx.chat(a, "let me speak");
    assert_eq!(error_code(&out), Some("timed_out"));
    assert!(matches!(
        &out[0],
        Output::Send {
            event: ServerEvent::Error {
                retry_ms: Some(30_000),
                ..
            },
            ..
        }
    ));
    assert_eq!(
        error_code(&fx.cmd(a, r#"{"type":"reaction","emoji":"😢"}"#)),
        Some("timed_out")
    );
    fx.advance(30_000);
    assert_eq!(lines(&fx.chat(a, "back")).len(), 1);

    fx.cmd(m, r#"{"type":"mod","action":"timeout","user":"ann"}"#);
    assert_eq!(
        fx.room.timeouts["ann"].until,
        Some(fx.now + 600_000),
        "600 s by default"
    );
    fx.advance(1000);
    assert_eq!(error_code(&fx.cmd(m, &timeout("ann", 0))), None);
    assert_eq!(lines(&fx.chat(a, "lifted")).len(), 1);
    assert_eq!(
        error_code(&fx.cmd(m, &timeout("ann", 0))),
        Some("bad_request")
    );
}

#[test]
fn durations_are_bounded() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    fx.join("ann", Role::Viewer);
    let too_long = 30 * 24 * 3600 + 1;
    assert_eq!(
        error_code(&fx.cmd(m, &ban("ann", too_long))),
        Some("bad_request")
    );
    assert_eq!(
        error_code(&fx.cmd(m, &timeout("ann", too_long))),
        Some("bad_request")
    );
    assert_eq!(
        error_code(&fx.cmd(m, r#"{"type":"mod","action":"slow","seconds":3601}"#)),
        Some("bad_request")
    );
}

#[test]
fn delete_removes_one_message_for_everyone_within_the_rules() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let m1 = fx.join("m1", Role::Moderator);
    let m2 = fx.join("m2", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    let ann = line(&fx.chat(a, "oops")).id;
    let host_line = line(&fx.chat(host, "welcome all")).id;
    let m2_line = line(&fx.chat(m2, "mod speaking")).id;
    let m1_line = line(&fx.chat(m1, "mine")).id;
    let del = |id: &str| format!(r#"{{"type":"mod","action":"delete","id":"{id}"}}"#);
    assert_eq!(deleted(&fx.cmd(m1, &del(&ann))), vec![ann.clone()]);
    assert_eq!(
        error_code(&fx.cmd(m1, &del(&ann))),
        Some("bad_request"),
        "gone"
    );
    assert_eq!(error_code(&fx.cmd(m1, &del(&host_line))), Some("forbidden"));
    assert_eq!(error_code(&fx.cmd(m1, &del(&m2_line))), Some("forbidden"));
    assert_eq!(
        deleted(&fx.cmd(m1, &del(&m1_line))),
        vec![m1_line],
        "own message"
    );
    assert_eq!(deleted(&fx.cmd(host, &del(&m2_line))), vec![m2_line]);
    assert_eq!(error_code(&fx.cmd(a, &del(&host_line))), Some("forbidden"));
    assert_eq!(fx.room.history.len(), 1);
}

#[test]
fn clear_empties_the_history_for_everyone() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    fx.chat(a, "one");
    let out = fx.cmd(m, r#"{"type":"mod","action":"clear"}"#);
    assert!(matches!(
        &out[..],
        [Output::Send {
            to: Audience::All,
            event: ServerEvent::Cleared { .. },
            log: true
        }]
    ));
    assert!(fx.room.history.is_empty());
}

#[test]
fn settings_reach_everyone_and_the_filter_only_moderators() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    let out = fx.cmd(m, r#"{"type":"mod","action":"slow","seconds":5}"#);
    let states = state_sends(&out);
    assert_eq!(states.len(), 2, "{states:?}");
    let (mods, public) = (&states[0], &states[1]);
    assert_eq!(mods.0, Audience::Conns(vec![m]));
    assert!(!mods.2 && mods.1.filter.is_some());
    assert_eq!(public.0, Audience::Conns(vec![a]));
    assert!(public.2, "public state is logged");
    assert_eq!((public.1.slow, public.1.filter.clone()), (5, None));

    let out = fx.cmd(m, r#"{"type":"mod","action":"filter_add","word":"Darn"}"#);
    let states = state_sends(&out);
    assert_eq!(states.len(), 1, "filter changes go to moderators only");
    assert_eq!(states[0].1.filter, Some(vec!["darn".to_owned()]));
    fx.advance(10_000);
    assert_eq!(line(&fx.chat(a, "darn it")).text, "**** it");
    fx.cmd(
        m,
        r#"{"type":"mod","action":"filter_remove","word":"darn"}"#,
    );
    fx.advance(10_000);
    assert_eq!(line(&fx.chat(a, "darn it")).text, "darn it");
    assert_eq!(
        error_code(&fx.cmd(
            m,
            r#"{"type":"mod","action":"filter_remove","word":"darn"}"#
        )),
        Some("bad_request")
    );
    assert_eq!(
        error_code(&fx.cmd(
            m,
            r#"{"type":"mod","action":"filter_add","word":"two words"}"#
        )),
        Some("bad_request")
    );
}

#[test]
fn only_the_broadcaster_promotes_and_demotes() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let m = fx.join("mod", Role::Moderator);
    let a = fx.join("ann", Role::Viewer);
    fx.join("bob", Role::Viewer);
    let promote = r#"{"type":"mod","action":"promote","user":"ann"}"#;
    assert_eq!(error_code(&fx.cmd(m, promote)), Some("forbidden"));
    let out = fx.cmd(host, promote);
    assert_eq!(error_code(&out), None, "{out:?}");
    let rewelcome = out.iter().find_map(|o| match o {
        Output::Send {
            to,
            event: ServerEvent::Welcome { you, state, .. },
            ..
        } => Some((to.clone(), you.role, state.filter.is_some())),
        _ => None,
    });
    assert_eq!(
        rewelcome,
        Some((Audience::Conns(vec![a]), Role::Moderator, true))
    );
    let public = state_sends(&out)
        .into_iter()
        .find(|s| s.2)
        .expect("public state");
    assert_eq!(public.1.promoted[0].id, "ann");
    assert_eq!(line(&fx.chat(a, "I moderate")).user.role, Role::Moderator);
    assert_eq!(
        error_code(&fx.cmd(a, &timeout("bob", 10))),
        None,
        "ann moderates"
    );
    assert_eq!(
        error_code(&fx.cmd(m, &ban("ann", 10))),
        Some("forbidden"),
        "a moderator now"
    );

    let out = fx.cmd(host, r#"{"type":"mod","action":"demote","user":"ann"}"#);
    assert_eq!(error_code(&out), None);
    assert_eq!(
        error_code(&fx.cmd(a, &timeout("bob", 10))),
        Some("forbidden")
    );
    assert_eq!(
        error_code(&fx.cmd(host, r#"{"type":"mod","action":"demote","user":"ann"}"#)),
        Some("bad_request"),
        "not a moderator any more"
    );
    // A moderator by token can be demoted in this room, then promoted back.
    fx.cmd(host, r#"{"type":"mod","action":"demote","user":"mod"}"#);
    assert_eq!(
        error_code(&fx.cmd(m, r#"{"type":"mod","action":"clear"}"#)),
        Some("forbidden")
    );
    fx.cmd(host, r#"{"type":"mod","action":"promote","user":"mod"}"#);
    assert_eq!(
        error_code(&fx.cmd(m, r#"{"type":"mod","action":"clear"}"#)),
        None
    );
    assert_eq!(
        error_code(&fx.cmd(host, r#"{"type":"mod","action":"promote","user":"nobody"}"#)),
        Some("bad_request")
    );
    for yourself in [
        r#"{"type":"mod","action":"promote","user":"host"}"#,
        r#"{"type":"mod","action":"demote","user":"host"}"#,
    ] {
        assert_eq!(
            error_code(&fx.cmd(host, yourself)),
            Some("forbidden"),
            "{yourself}"
        );
    }
}

#[test]
fn a_promoted_user_stays_promoted_across_reconnects_and_a_ban_ends_it() {
    let mut fx = Fx::new();
    let host = fx.join("host", Role::Broadcaster);
    let a = fx.join("ann", Role::Viewer);
    fx.cmd(host, r#"{"type":"mod","action":"promote","user":"ann"}"#);
    fx.room.leave(a, 0, fx.now);
    let a = fx.join("ann", Role::Viewer);
    assert_eq!(line(&fx.chat(a, "still")).user.role, Role::Moderator);
    let out = fx.cmd(host, &ban("ann", 60));
    let public = state_sends(&out)
        .into_iter()
        .find(|s| s.2)
        .expect("promoted list changed");
    assert!(public.1.promoted.is_empty());
}

#[test]
fn ambiguous_names_ask_for_an_id() {
    let mut fx = Fx::new();
    let m = fx.join("mod", Role::Moderator);
    fx.join_as(
        Identity {
            id: "u1".into(),
            name: "Sam".into(),
            role: Role::Viewer,
            anonymous: false,
        },
        Transport::DataChannel,
    );
    fx.join_as(
        Identity {
            id: "u2".into(),
            name: "sam".into(),
            role: Role::Viewer,
            anonymous: false,
        },
        Transport::WebSocket,
    );
    assert_eq!(
        error_code(&fx.cmd(m, &timeout("Sam", 10))),
        Some("bad_request")
    );
    assert_eq!(error_code(&fx.cmd(m, &timeout("u2", 10))), None);
    assert!(fx.room.timeouts.contains_key("u2"));
}
