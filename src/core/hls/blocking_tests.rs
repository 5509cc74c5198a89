//! Blocking playlist reload decisions on a fake clock: every `400` and the `503` of
//! RFC 8216bis §6.2.5.2, the rollover rule, and which parts are worth waiting for. Pure.

use super::*;

fn timing() -> HlsTiming {
    HlsTiming::default()
}

fn d(query: &str) -> Directives {
    parse_directives(Some(query)).unwrap()
}

/// Segments 0..=4 complete; segment 5 in progress with parts 0..=2 published; segment 4 had
/// parts 0..=8.
fn live() -> PlaylistPosition {
    PlaylistPosition {
        last_segment: Some(4),
        last_part: Some((5, 2)),
        ended: false,
    }
}

const NOW: Duration = Duration::ZERO;

#[test]
fn directives_parse() {
    assert_eq!(parse_directives(None), Ok(Directives::default()));
    assert_eq!(
        d("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"),
        Directives {
            msn: Some(5),
            part: Some(2),
            skip: Skip::Yes
        }
    );
    assert_eq!(d("_HLS_skip=v2").skip, Skip::V2);
    assert_eq!(d("token=abc&x&_HLS_msn=0").msn, Some(0), "others ignored");
}

#[test]
fn every_bad_directive_is_a_400() {
    let cases: &[(&str, HlsError)] = &[
        ("_HLS_part=1", HlsError::PartWithoutMsn),
        ("_HLS_msn=", HlsError::NotAnInteger("_HLS_msn")),
        ("_HLS_msn", HlsError::NotAnInteger("_HLS_msn")),
        ("_HLS_msn=-1", HlsError::NotAnInteger("_HLS_msn")),
        ("_HLS_msn=+1", HlsError::NotAnInteger("_HLS_msn")),
        ("_HLS_msn=1.5", HlsError::NotAnInteger("_HLS_msn")),
        ("_HLS_msn=abc", HlsError::NotAnInteger("_HLS_msn")),
        (
            "_HLS_msn=99999999999999999999",
            HlsError::NotAnInteger("_HLS_msn"),
        ),
        (
            "_HLS_msn=1&_HLS_part=x",
            HlsError::NotAnInteger("_HLS_part"),
        ),
        (
            "_HLS_msn=1&_HLS_part=-2",
            HlsError::NotAnInteger("_HLS_part"),
        ),
        ("_HLS_skip=yes", HlsError::BadSkip),
        ("_HLS_skip=", HlsError::BadSkip),
        ("_HLS_msn=1&_HLS_msn=2", HlsError::Repeated("_HLS_msn")),
        (
            "_HLS_msn=1&_HLS_part=1&_HLS_part=1",
            HlsError::Repeated("_HLS_part"),
        ),
        (
            "_HLS_skip=YES&_HLS_skip=YES",
            HlsError::Repeated("_HLS_skip"),
        ),
        (
            "_HLS_push=1",
            HlsError::UnknownDirective("_HLS_push".into()),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            parse_directives(Some(query)).as_ref(),
            Err(expected),
            "{query}"
        );
    }
    // Too far ahead: more than two segments past the last complete one.
    assert_eq!(
        decide(&d("_HLS_msn=7"), &live(), &timing(), NOW),
        Decision::BadRequest(HlsError::MsnTooFar {
            requested: 7,
            last: 4
        })
    );
    assert_eq!(
        decide(&d("_HLS_msn=6"), &live(), &timing(), NOW),
        Decision::Wait
    );
    // Before any segment, 0 and 1 may be asked for, 2 may not.
    let fresh = PlaylistPosition::default();
    assert_eq!(
        decide(&d("_HLS_msn=1"), &fresh, &timing(), NOW),
        Decision::Wait
    );
    assert!(matches!(
        decide(&d("_HLS_msn=2"), &fresh, &timing(), NOW),
        Decision::BadRequest(HlsError::MsnTooFar { last: -1, .. })
    ));
    // Past the Advance Part Limit: 3 / 0.22 s = 13 parts.
    assert_eq!(advance_part_limit(&timing()), 13);
    assert_eq!(
        decide(&d("_HLS_msn=5&_HLS_part=15"), &live(), &timing(), NOW),
        Decision::Wait
    );
    assert_eq!(
        decide(&d("_HLS_msn=5&_HLS_part=16"), &live(), &timing(), NOW),
        Decision::BadRequest(HlsError::PartTooFar { requested: 16 })
    );
    assert_eq!(
        decide(&d("_HLS_msn=6&_HLS_part=12"), &live(), &timing(), NOW),
        Decision::Wait
    );
    assert_eq!(
        decide(&d("_HLS_msn=6&_HLS_part=13"), &live(), &timing(), NOW),
        Decision::BadRequest(HlsError::PartTooFar { requested: 13 })
    );
    let slow = HlsTiming {
        part_target: Duration::from_secs(2),
        ..timing()
    };
    assert_eq!(advance_part_limit(&slow), 3);
}

#[test]
fn segments_and_parts_that_exist_answer_at_once() {
    let t = timing();
    assert_eq!(decide(&d(""), &live(), &t, NOW), Decision::Ready);
    assert_eq!(decide(&d("_HLS_msn=4"), &live(), &t, NOW), Decision::Ready);
    assert_eq!(
        decide(&d("_HLS_msn=0"), &live(), &t, NOW),
        Decision::Ready,
        "old"
    );
    assert_eq!(decide(&d("_HLS_msn=5"), &live(), &t, NOW), Decision::Wait);
    assert_eq!(
        decide(&d("_HLS_msn=5&_HLS_part=2"), &live(), &t, NOW),
        Decision::Ready
    );
    assert_eq!(
        decide(&d("_HLS_msn=5&_HLS_part=3"), &live(), &t, NOW),
        Decision::Wait
    );
    assert_eq!(
        decide(&d("_HLS_msn=4&_HLS_part=7"), &live(), &t, NOW),
        Decision::Ready
    );
}

#[test]
fn a_part_past_the_last_of_a_complete_segment_is_part_0_of_the_next() {
    let t = timing();
    // Segment 4 completed with parts 0..=8, nothing of segment 5 yet.
    let mut pos = PlaylistPosition {
        last_segment: Some(4),
        last_part: Some((4, 8)),
        ended: false,
    };
    let rollover = d("_HLS_msn=4&_HLS_part=9");
    assert_eq!(decide(&rollover, &pos, &t, NOW), Decision::Wait);
    pos.last_part = Some((5, 0));
    assert_eq!(decide(&rollover, &pos, &t, NOW), Decision::Ready);
}

#[test]
fn blocking_gives_up_after_three_target_durations() {
    let t = timing();
    let q = d("_HLS_msn=5&_HLS_part=3");
    assert_eq!(
        decide(&q, &live(), &t, Duration::from_millis(5_999)),
        Decision::Wait
    );
    assert_eq!(
        decide(&q, &live(), &t, Duration::from_secs(6)),
        Decision::Unavailable
    );
    // Ready wins over the clock.
    assert_eq!(
        decide(
            &d("_HLS_msn=5&_HLS_part=1"),
            &live(),
            &t,
            Duration::from_secs(60)
        ),
        Decision::Ready
    );
}

#[test]
fn an_ended_playlist_ignores_directives() {
    let ended = PlaylistPosition {
        ended: true,
        ..live()
    };
    assert_eq!(
        decide(&d("_HLS_msn=6&_HLS_part=3"), &ended, &timing(), NOW),
        Decision::Ready
    );
    assert_eq!(
        decide(&d("_HLS_msn=9"), &ended, &timing(), NOW),
        Decision::Ready
    );
}

#[test]
fn only_the_hinted_part_and_the_segment_in_progress_are_waited_for() {
    let t = timing();
    let pos = live();
    assert_eq!(
        decide_part(5, Some(3), &pos, &t, NOW),
        PartDecision::Wait,
        "hint"
    );
    assert_eq!(
        decide_part(6, Some(0), &pos, &t, NOW),
        PartDecision::Wait,
        "next segment"
    );
    assert_eq!(
        decide_part(5, Some(4), &pos, &t, NOW),
        PartDecision::NotFound
    );
    assert_eq!(
        decide_part(3, Some(0), &pos, &t, NOW),
        PartDecision::NotFound,
        "gone"
    );
    assert_eq!(
        decide_part(5, None, &pos, &t, NOW),
        PartDecision::Wait,
        "in progress"
    );
    assert_eq!(decide_part(6, None, &pos, &t, NOW), PartDecision::NotFound);
    assert_eq!(
        decide_part(5, Some(3), &pos, &t, Duration::from_secs(6)),
        PartDecision::NotFound,
        "never came"
    );
    // After a segment completes, its next part index is never coming.
    let done = PlaylistPosition {
        last_segment: Some(5),
        last_part: Some((5, 8)),
        ended: false,
    };
    assert_eq!(
        decide_part(5, Some(9), &done, &t, NOW),
        PartDecision::NotFound
    );
    assert_eq!(decide_part(6, Some(0), &done, &t, NOW), PartDecision::Wait);
    let ended = PlaylistPosition { ended: true, ..pos };
    assert_eq!(
        decide_part(5, Some(3), &ended, &t, NOW),
        PartDecision::NotFound
    );
    // Before the first part of the stream.
    let fresh = PlaylistPosition::default();
    assert_eq!(decide_part(0, Some(0), &fresh, &t, NOW), PartDecision::Wait);
    assert_eq!(
        decide_part(0, Some(1), &fresh, &t, NOW),
        PartDecision::NotFound
    );
}
