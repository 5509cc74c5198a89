//! The four fuzz targets (test tooling, pure): each decodes the fuzzer's bytes into the calls
//! the matching I/O shell makes and checks invariants that must hold for any input.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use onair::core::chat::{
    ChatLimits, ChatRoom, ConnGate, GateVerdict, Identity, Output, Role, Transport,
};
use onair::core::h264::H264Depacketizer;
use onair::core::hls::{
    Decision, HlsTiming, PlaylistPosition, Resource, Skip, decide, decide_part, parse_directives,
};
use onair::core::sdp::{advertise_host_address, parse_offer, parse_sdpfrag};
use onair::peer::offer::read_offer;

/// The WHIP/WHEP signalling input path (RFC 9725 §4.2-§4.3): the `POST` offer check the
/// handlers run (`peer::offer::read_offer`: UTF-8, RFC 8866 syntax, codecs), the offer parser
/// behind it, the `PATCH` trickle-ICE fragment parser (RFC 8840 §9) and the host-address
/// rewrite applied to SDP.
pub fn sdp(data: &[u8]) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    let checked = read_offer(&headers, &Bytes::copy_from_slice(data));
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(checked.is_err(), "a non-UTF-8 offer was accepted");
        return;
    };
    match parse_offer(text) {
        Ok(summary) => {
            // The handler accepts exactly the offers that parse and carry a codec onair forwards.
            assert_eq!(checked.is_ok(), summary.has_supported_codec());
            assert!(
                !summary.media.is_empty(),
                "an accepted offer has m= sections"
            );
            let h264 = summary.h264_in_offer_order();
            assert!(h264.iter().all(|c| c.is_h264_mode1()));
            if let Some(opus) = summary.first_opus() {
                assert!(opus.is_opus());
            }
            let _ = summary.has_data_channel();
        }
        Err(e) => {
            assert!(
                checked.is_err(),
                "read_offer accepted what parse_offer refused"
            );
            assert!(!e.to_string().is_empty());
        }
    }
    if let Ok(frag) = parse_sdpfrag(text) {
        let total: usize = frag.media.iter().map(|m| m.candidates.len()).sum();
        assert_eq!(frag.candidates().count(), total);
        if let Some(ufrag) = frag.ice_ufrag.as_deref() {
            assert!(!frag.is_ice_restart(ufrag));
        }
    }
    let rewritten = advertise_host_address(text, [203, 0, 113, 7].into());
    assert!(rewritten.lines().count() <= text.lines().count() + 1);
}

/// The RFC 6184 depacketizer of the HLS/recording tap. The input is a sequence of packets, each
/// `[control][length][timestamp step][payload; length]`: control bit 0 is the marker bit, bits
/// 1-3 choose the sequence number (next, skip one, one back, repeat, far jump, three back),
/// bit 4 flushes after the packet. Every access unit out must be well-formed AVCC.
pub fn h264(data: &[u8]) {
    let mut depacketizer = H264Depacketizer::new();
    let mut seq: u16 = data.first().map_or(0, |b| u16::from(*b) << 8 | 0xf0);
    let mut ts: u32 = 0xffff_0000;
    let mut produced = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let (control, length, ts_step) = (rest[0], usize::from(rest[1]), rest[2]);
        rest = &rest[3..];
        let (payload, tail) = rest.split_at(length.min(rest.len()));
        rest = tail;
        seq = match (control >> 1) & 7 {
            0 | 6 | 7 => seq.wrapping_add(1),
            1 => seq.wrapping_add(2),
            2 => seq.wrapping_sub(1),
            3 => seq,
            4 => seq.wrapping_add(0x8000),
            _ => seq.wrapping_sub(3),
        };
        ts = ts.wrapping_add(u32::from(ts_step) * 375);
        depacketizer.push(seq, ts, control & 1 == 1, Bytes::copy_from_slice(payload));
        if control & 0x10 != 0 {
            depacketizer.flush();
        }
        produced += drain_access_units(&mut depacketizer);
        let _ = depacketizer.take_keyframe_request();
    }
    depacketizer.flush();
    produced += drain_access_units(&mut depacketizer);
    assert_eq!(depacketizer.stats().frames, produced);
    if let Some(sps) = depacketizer.sps() {
        assert!(!sps.is_empty());
    }
}

/// Pops every access unit and checks its AVCC framing (ISO/IEC 14496-15 §5.3.2): 4-byte lengths
/// that exactly tile the data, no empty NAL unit.
fn drain_access_units(d: &mut H264Depacketizer) -> u64 {
    let mut n = 0;
    while let Some(au) = d.poll() {
        n += 1;
        assert!(!au.data.is_empty(), "an empty access unit");
        let mut rest = au.data.as_slice();
        while !rest.is_empty() {
            assert!(rest.len() >= 4, "a truncated AVCC length");
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(len > 0, "an empty NAL unit in AVCC");
            assert!(rest.len() - 4 >= len, "an AVCC length past the end");
            rest = &rest[4 + len..];
        }
    }
    n
}

/// Chat JSON as the shells handle it: every frame passes the connection gate (rate limit,
/// size, UTF-8, JSON, `core::chat::parse_client`), then the room (moderation, filters, history).
/// The input is a sequence of `[control][length][frame; length]`: control bits 0-1 pick the
/// sender (broadcaster, moderator, viewer over WebSocket, guest), bits 2-5 advance the clock,
/// bit 6 runs the periodic tick, bit 7 makes the sender leave and join again. Every event the
/// room emits must serialise to a JSON object with a `type`.
pub fn chat(data: &[u8]) {
    let limits = ChatLimits::default();
    let mut now: u64 = 1_700_000_000_000;
    let mut room = ChatRoom::new(limits.clone(), "fz");
    let people = [
        ("bob", Role::Broadcaster, Transport::DataChannel),
        ("mia", Role::Moderator, Transport::DataChannel),
        ("vic", Role::Viewer, Transport::WebSocket),
        ("gus", Role::Guest, Transport::DataChannel),
    ];
    let identity = |i: usize| Identity {
        id: people[i].0.to_owned(),
        name: people[i].0.to_uppercase(),
        role: people[i].1,
        anonymous: false,
    };
    let mut gates: Vec<ConnGate> = Vec::new();
    let mut joined = [false; 4];
    for (i, person) in people.iter().enumerate() {
        let out = room
            .join(i as u64, identity(i), person.2, 3, now)
            .expect("nobody is banned in a new room");
        check_outputs(&out, &mut joined);
        joined[i] = true;
        gates.push(ConnGate::new(&limits, now));
    }
    let mut rest = data;
    while rest.len() >= 2 {
        let (control, length) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let (frame, tail) = rest.split_at(length.min(rest.len()));
        rest = tail;
        let conn = usize::from(control & 3);
        now += u64::from((control >> 2) & 15) * 250;
        if control & 0x40 != 0 {
            check_outputs(&room.tick(3, now), &mut joined);
        }
        if control & 0x80 != 0 {
            check_outputs(&room.leave(conn as u64, 3, now), &mut joined);
            joined[conn] = false;
            if let Ok(out) = room.join(conn as u64, identity(conn), people[conn].2, 3, now) {
                joined[conn] = true;
                check_outputs(&out, &mut joined);
            }
        }
        if !joined[conn] {
            continue;
        }
        match gates[conn].inbound(frame, now) {
            GateVerdict::Pass(message) => {
                let out = room.handle(conn as u64, message, now);
                check_outputs(&out, &mut joined);
                for (i, j) in joined.iter().enumerate() {
                    if !j {
                        // The shell closes disconnected (banned) connections.
                        let _ = room.leave(i as u64, 3, now);
                    }
                }
            }
            GateVerdict::Reply(e) => assert!(!e.code().is_empty()),
            GateVerdict::Silent => {}
        }
    }
    assert!(room.member_count() <= 4);
}

fn check_outputs(out: &[Output], joined: &mut [bool; 4]) {
    for o in out {
        match o {
            Output::Send { event, .. } => {
                let json = event.to_json();
                assert!(
                    json.starts_with("{\"type\":\""),
                    "an event without a type: {json}"
                );
            }
            Output::Disconnect { conns, .. } => {
                for c in conns {
                    if let Some(j) = joined.get_mut(*c as usize) {
                        *j = false;
                    }
                }
            }
            // A stage control the shell runs: only the broadcaster's connection asks.
            Output::Stage { conn, user, .. } => {
                assert!(
                    (*conn as usize) < joined.len(),
                    "stage control from nowhere"
                );
                assert!(
                    !user.is_empty() && user.len() <= 128,
                    "stage target {user:?}"
                );
            }
        }
    }
}

/// LL-HLS request parsing (RFC 8216bis §6.2.5-§6.2.6): the playlist query's delivery directives
/// against a playlist position, and resource names under `/hls/{room}/`. The first 6 bytes set
/// the position, wait and timing; the rest is the query string (the first `/` splits off a
/// resource name). Decisions must be consistent: a ready playlist stays ready however long
/// the request waited, and directives re-encoded parse to the same value.
pub fn hls(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let (head, tail) = data.split_at(6);
    let text = String::from_utf8_lossy(tail);
    let (query, name) = text.split_once('/').unwrap_or((&text, ""));
    let last_segment = u64::from(u16::from_be_bytes([head[0], head[1]]));
    let pos = PlaylistPosition {
        last_segment: (head[2] & 1 == 1).then_some(last_segment),
        last_part: (head[2] & 2 == 2).then_some((
            last_segment + u64::from(head[2] >> 7),
            u64::from(head[3] & 15),
        )),
        ended: head[2] & 4 == 4,
    };
    let timing = HlsTiming {
        part_target: Duration::from_millis(50 + u64::from(head[5]) * 10),
        target_duration: u64::from(head[2] >> 3 & 7) + 1,
        ..HlsTiming::default()
    };
    let waited = Duration::from_millis(u64::from(head[4]) * 100);

    if let Some(resource) = Resource::parse(name) {
        assert_eq!(Resource::parse(&resource.name()), Some(resource));
    }
    let directives = match parse_directives(Some(query)) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut canonical = Vec::new();
    if let Some(msn) = directives.msn {
        canonical.push(format!("_HLS_msn={msn}"));
    }
    if let Some(part) = directives.part {
        canonical.push(format!("_HLS_part={part}"));
    }
    match directives.skip {
        Skip::No => {}
        Skip::Yes => canonical.push("_HLS_skip=YES".into()),
        Skip::V2 => canonical.push("_HLS_skip=v2".into()),
    }
    assert_eq!(
        parse_directives(Some(&canonical.join("&"))).ok(),
        Some(directives)
    );
    let now = decide(&directives, &pos, &timing, waited);
    let later = decide(&directives, &pos, &timing, waited + timing.block_limit());
    match now {
        Decision::Ready => assert_eq!(later, Decision::Ready),
        Decision::BadRequest(_) => assert_eq!(later, now),
        Decision::Wait => {
            assert!(waited < timing.block_limit());
            assert_eq!(later, Decision::Unavailable);
        }
        Decision::Unavailable => assert!(waited >= timing.block_limit()),
    }
    if let Some(msn) = directives.msn {
        let index = directives.part;
        let _ = decide_part(msn, index, &pos, &timing, waited);
    }
}
