//! Unit tests of the room registry and the stage (no I/O).
use super::*;
use crate::auth::Role;

fn claims(sub: &str) -> Claims {
    claims_as(sub, Role::Broadcaster)
}

fn claims_as(sub: &str, role: Role) -> Claims {
    Claims {
        sub: sub.into(),
        name: sub.to_uppercase(),
        room: "r".into(),
        role,
        exp: u64::MAX,
    }
}

fn replaced(c: Result<Claimed, SlotError>) -> Result<Option<String>, SlotError> {
    c.map(|c| c.replaced)
}

#[test]
fn one_publisher_per_room_but_the_same_user_takes_over() {
    let rooms = Rooms::new(&Config::default());
    let room = rooms.get_or_create("r");
    assert_eq!(
        replaced(room.claim_publisher("s1", &claims("alice"), 1)),
        Ok(None)
    );
    let taken = room.claim_publisher("s2", &claims("bob"), 2).unwrap_err();
    assert!(taken.to_string().contains("ALICE"));
    assert_eq!(
        replaced(room.claim_publisher("s3", &claims("alice"), 3)),
        Ok(Some("s1".into()))
    );
    room.release_publisher("s1");
    assert_eq!(
        room.publisher().unwrap().session,
        "s3",
        "stale release ignored"
    );
    room.release_publisher("s3");
    assert!(room.publisher().is_none());
}

#[test]
fn guests_get_their_own_hubs_up_to_the_limit_and_the_stage_is_watched() {
    let config = Config {
        stage: StageConfig { max_guests: 2 },
        ..Config::default()
    };
    let rooms = Rooms::new(&config);
    let room = rooms.get_or_create("r");
    let mut watch = room.watch_stage();
    let b = room.claim_publisher("sb", &claims("b"), 1).unwrap().member;
    assert!(Arc::ptr_eq(&b.video, room.hub(TrackKind::Video)));
    let g1 = room
        .claim_publisher("s1", &claims_as("g1", Role::Guest), 2)
        .unwrap()
        .member;
    assert!(
        !Arc::ptr_eq(&g1.video, &b.video),
        "a guest has its own hubs"
    );
    room.claim_publisher("s2", &claims_as("g2", Role::Guest), 3)
        .unwrap();
    let full = room
        .claim_publisher("s3", &claims_as("g3", Role::Guest), 4)
        .unwrap_err();
    assert!(matches!(full, SlotError::StageFull { max: 2, .. }));
    // Nobody is on stage before they connect.
    assert!(room.stage().members.is_empty());
    room.set_publisher_connected("s1");
    room.set_publisher_connected("sb");
    assert!(watch.has_changed().unwrap());
    let view = watch.borrow_and_update().clone();
    let users: Vec<_> = view.members.iter().map(|m| m.user.as_str()).collect();
    assert_eq!(users, ["b", "g1"], "broadcaster first");
    assert_eq!(room.summary().publishers, 3);
    // Mute and remove.
    assert_eq!(room.set_guest_muted("g1", true), Ok(true));
    assert!(room.stage().member("g1").unwrap().is_muted());
    assert!(
        g1.muted.load(Ordering::Relaxed),
        "the publisher sees the flag"
    );
    assert!(
        room.set_guest_muted("b", true).is_err(),
        "only guests are muted"
    );
    assert_eq!(room.remove_guest("g1"), Ok("s1".into()));
    assert!(room.stage().member("g1").is_none());
    let again = room.claim_publisher("s4", &claims_as("g1", Role::Guest), 5);
    assert!(matches!(again, Err(SlotError::Removed { .. })));
    room.release_publisher("s2");
    room.release_publisher("sb");
    assert!(room.stage().members.is_empty());
    assert!(room.publisher().is_none());
}

#[test]
fn empty_rooms_are_reaped_after_grace_only() {
    let config = Config {
        room_grace_secs: 0,
        ..Config::default()
    };
    let rooms = Rooms::new(&config);
    let room = rooms.get_or_create("a");
    room.add_viewer(ViewerInfo::new("v".into(), "V".into(), vec![]));
    assert_eq!(rooms.reap(), 0);
    room.remove_viewer("v");
    assert_eq!(rooms.reap(), 1);
    assert!(rooms.get("a").is_none());

    let patient = Rooms::new(&Config::default());
    patient.get_or_create("b");
    assert_eq!(patient.reap(), 0, "30 s grace has not passed");
}

#[test]
fn room_names_are_path_safe() {
    assert!(is_valid_room_name("demo-1_A"));
    for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(65)] {
        assert!(!is_valid_room_name(bad), "{bad}");
    }
}
