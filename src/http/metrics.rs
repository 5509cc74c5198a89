//! `GET /metrics` in the Prometheus text format (control plane, reads counters the media path
//! keeps in atomics; nothing here touches a packet). Room labels are bounded: totals are always
//! exact, per-room series are emitted for the busiest rooms only.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::peer::session::SessionKind;
use crate::room::TrackStats;

/// Per-room series are emitted for at most this many rooms (the ones with most viewers).
pub const MAX_ROOM_LABELS: usize = 50;

/// The metrics of this server.
pub async fn metrics(State(app): State<App>) -> Response {
    let mut rooms: Vec<_> = app.rooms.all();
    rooms.sort_by(|a, b| {
        b.viewer_count()
            .cmp(&a.viewer_count())
            .then_with(|| a.name().cmp(b.name()))
    });
    let mut out = String::with_capacity(4096);
    gauge(
        &mut out,
        "onair_rooms",
        "Rooms that exist now.",
        rooms.len() as u64,
    );
    let _ = writeln!(out, "# HELP onair_sessions WHIP and WHEP sessions by kind.");
    let _ = writeln!(out, "# TYPE onair_sessions gauge");
    for kind in [SessionKind::Whip, SessionKind::Whep] {
        let _ = writeln!(
            out,
            "onair_sessions{{kind=\"{}\"}} {}",
            kind.path(),
            app.sessions.count(kind)
        );
    }

    let mut totals = [TrackStats::default(), TrackStats::default()];
    for room in &rooms {
        add(&mut totals[0], &room.video.stats());
        add(&mut totals[1], &room.audio.stats());
    }
    let counters: [Counter; 6] = [
        (
            "onair_packets_in_total",
            "RTP packets received from publishers.",
            |s| s.packets_in,
        ),
        (
            "onair_bytes_in_total",
            "RTP payload bytes received from publishers.",
            |s| s.bytes_in,
        ),
        (
            "onair_dropped_total",
            "Packets dropped for a consumer whose queue was full.",
            |s| s.dropped,
        ),
        (
            "onair_keyframe_requests_total",
            "Keyframe requests (PLI) sent to publishers.",
            |s| s.keyframe_requests,
        ),
        (
            "onair_nacks_total",
            "Generic NACK messages received from viewers.",
            |s| s.nacks,
        ),
        (
            "onair_retransmitted_total",
            "Packets re-sent from the retransmission cache.",
            |s| s.retransmitted,
        ),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (kind, stats) in ["video", "audio"].iter().zip(&totals) {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", get(stats));
        }
    }

    let _ = writeln!(
        out,
        "# HELP onair_room_viewers WHEP viewers per room (busiest {MAX_ROOM_LABELS} rooms)."
    );
    let _ = writeln!(out, "# TYPE onair_room_viewers gauge");
    for room in rooms.iter().take(MAX_ROOM_LABELS) {
        let _ = writeln!(
            out,
            "onair_room_viewers{{room=\"{}\"}} {}",
            room.name(),
            room.viewer_count()
        );
    }
    let _ = writeln!(
        out,
        "# HELP onair_room_live 1 when a publisher is connected (busiest {MAX_ROOM_LABELS} rooms)."
    );
    let _ = writeln!(out, "# TYPE onair_room_live gauge");
    for room in rooms.iter().take(MAX_ROOM_LABELS) {
        let live = u8::from(room.summary().live);
        let _ = writeln!(out, "onair_room_live{{room=\"{}\"}} {live}", room.name());
    }

    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A counter's name, help text and how to read it from a track's stats.
type Counter = (&'static str, &'static str, fn(&TrackStats) -> u64);

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn add(total: &mut TrackStats, s: &TrackStats) {
    total.packets_in += s.packets_in;
    total.bytes_in += s.bytes_in;
    total.dropped += s.dropped;
    total.keyframe_requests += s.keyframe_requests;
    total.nacks += s.nacks;
    total.retransmitted += s.retransmitted;
}
