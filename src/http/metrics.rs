//! `GET /metrics` in the Prometheus text format (control plane, reads counters the media path
//! keeps in atomics; nothing here touches a packet). Room labels are bounded: totals are always
//! exact, per-room series are emitted for the busiest rooms only. Media totals stay monotonic
//! when idle rooms are reaped (see `ops::totals`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::ops::prom::{Exposition, Kind};
use crate::peer::session::SessionKind;
use crate::room::TrackStats;

/// Per-room series are emitted for at most this many rooms (the ones with most viewers).
pub const MAX_ROOM_LABELS: usize = 50;

/// A counter's name, help text and how to read it from a track's stats.
type TrackCounter = (&'static str, &'static str, fn(&TrackStats) -> u64);

const TRACK_COUNTERS: [TrackCounter; 8] = [
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
        "onair_packets_out_total",
        "RTP packets written to WHEP viewers (retransmissions included).",
        |s| s.packets_out,
    ),
    (
        "onair_bytes_out_total",
        "RTP payload bytes written to WHEP viewers.",
        |s| s.bytes_out,
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
    (
        "onair_fast_starts_total",
        "Viewers started from the newest keyframe in the history instead of a requested one.",
        |s| s.fast_starts,
    ),
];

/// The metrics of this server.
pub async fn metrics(State(app): State<App>) -> Response {
    let mut response = render(&app).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn render(app: &App) -> String {
    let mut rooms: Vec<_> = app.rooms.all();
    rooms.sort_by(|a, b| {
        b.viewer_count()
            .cmp(&a.viewer_count())
            .then_with(|| a.name().cmp(b.name()))
    });
    let live: Vec<bool> = rooms.iter().map(|r| r.summary().live).collect();
    let c = &app.ops.counters;
    let mut e = Exposition::new();

    e.single(
        "onair_rooms",
        Kind::Gauge,
        "Rooms that exist now.",
        rooms.len() as u64,
    );
    e.single(
        "onair_rooms_live",
        Kind::Gauge,
        "Rooms with a connected publisher now.",
        live.iter().filter(|l| **l).count() as u64,
    );
    let kinds = [SessionKind::Whip, SessionKind::Whep];
    e.family(
        "onair_sessions",
        Kind::Gauge,
        "WHIP and WHEP sessions by kind.",
    );
    for kind in kinds {
        let n = app.sessions.count(kind) as u64;
        e.sample("onair_sessions", &[("kind", kind.path())], n);
    }
    let name = "onair_sessions_started_total";
    e.family(name, Kind::Counter, "WHIP and WHEP sessions started.");
    for kind in kinds {
        e.sample(name, &[("kind", kind.path())], c.sessions_started(kind));
    }

    let totals = {
        let live_stats = rooms.iter().map(|r| {
            let identity = Arc::as_ptr(r) as usize;
            (r.name(), identity, [r.video.stats(), r.audio.stats()])
        });
        app.ops
            .totals
            .lock()
            .expect("totals lock poisoned")
            .update(live_stats)
    };
    let track_kinds = ["video", "audio"];
    for (name, help, get) in TRACK_COUNTERS {
        e.family(name, Kind::Counter, help);
        for (kind, stats) in track_kinds.iter().zip(&totals) {
            e.sample(name, &[("kind", kind)], get(stats));
        }
    }
    let name = "onair_dropped_total";
    e.family(
        name,
        Kind::Counter,
        "RTP packets dropped for a consumer (viewer, HLS tap) by reason: queue_full = its queue was full.",
    );
    for (kind, stats) in track_kinds.iter().zip(&totals) {
        e.sample(
            name,
            &[("kind", kind), ("reason", "queue_full")],
            stats.dropped,
        );
    }

    hls(&mut e, app, &rooms);
    recordings(&mut e, app);
    composite(&mut e);
    chat(&mut e, app);
    webhooks(&mut e, app);
    turn(&mut e, app);

    let name = "onair_room_viewers";
    e.family(
        name,
        Kind::Gauge,
        &format!("WHEP viewers per room (busiest {MAX_ROOM_LABELS} rooms)."),
    );
    for room in rooms.iter().take(MAX_ROOM_LABELS) {
        e.sample(name, &[("room", room.name())], room.viewer_count() as u64);
    }
    let name = "onair_room_live";
    e.family(
        name,
        Kind::Gauge,
        &format!("1 when a publisher is connected (busiest {MAX_ROOM_LABELS} rooms)."),
    );
    for (room, live) in rooms.iter().zip(&live).take(MAX_ROOM_LABELS) {
        e.sample(name, &[("room", room.name())], u64::from(*live));
    }
    e.finish()
}

fn hls(e: &mut Exposition, app: &App, rooms: &[Arc<crate::room::Room>]) {
    let streams: Vec<_> = rooms.iter().filter_map(|r| app.hls.get(r.name())).collect();
    e.single(
        "onair_hls_streams",
        Kind::Gauge,
        "Rooms served as LL-HLS now.",
        streams.len() as u64,
    );
    e.single(
        "onair_hls_blocked_requests",
        Kind::Gauge,
        "LL-HLS requests waiting now for a part, segment or playlist update (blocking reload).",
        streams.iter().map(|s| s.waiters() as u64).sum(),
    );
    let name = "onair_hls_requests_total";
    e.family(
        name,
        Kind::Counter,
        "LL-HLS requests by kind (multivariant, playlist, part, segment, init, other) and status.",
    );
    for (kind, status, n) in app.ops.counters.hls_requests() {
        e.sample(name, &[("kind", kind), ("status", &status)], n);
    }
}

fn recordings(e: &mut Exposition, app: &App) {
    let r = &app.recordings;
    let c = &app.ops.counters;
    e.single(
        "onair_recordings_active",
        Kind::Gauge,
        "Recordings being written now.",
        r.active().len() as u64,
    );
    e.single(
        "onair_recording_bytes_total",
        Kind::Counter,
        "Bytes written to recording files.",
        c.recording_bytes.load(Ordering::Relaxed),
    );
    e.single(
        "onair_recordings_ready_total",
        Kind::Counter,
        "Recordings finalised into progressive MP4 files.",
        c.recordings_ready.load(Ordering::Relaxed),
    );
    e.single(
        "onair_recording_errors_total",
        Kind::Counter,
        "Recording write or finalise errors (each stopped a recording).",
        r.write_errors(),
    );
    e.single(
        "onair_recording_dropped_fragments_total",
        Kind::Counter,
        "Recording fragments dropped because the writer fell behind.",
        r.dropped_fragments(),
    );
}

/// The room composites (guests on stage composed for LL-HLS and the recording).
fn composite(e: &mut Exposition) {
    let t = crate::egress::composite::totals();
    e.single(
        "onair_composites_active",
        Kind::Gauge,
        "Room composites (codec threads) running now.",
        t.active,
    );
    e.single(
        "onair_composite_frames_total",
        Kind::Counter,
        "Pictures composed and encoded by room composites.",
        t.frames,
    );
    e.single(
        "onair_composite_frames_skipped_total",
        Kind::Counter,
        "Composite output frames skipped because the codec thread was late.",
        t.frames_skipped,
    );
    e.single(
        "onair_composite_output_dropped_total",
        Kind::Counter,
        "Composite outputs dropped because the LL-HLS tap's queue was full.",
        t.output_dropped,
    );
    e.single(
        "onair_composite_decode_errors_total",
        Kind::Counter,
        "Participants' access units or Opus packets the composite failed to decode.",
        t.decode_errors,
    );
}

fn chat(e: &mut Exposition, app: &App) {
    let c = &app.ops.counters;
    let (messages, reactions) = c.chat();
    let name = "onair_chat_messages_total";
    e.family(
        name,
        Kind::Counter,
        "Chat messages and reactions sent to rooms.",
    );
    e.sample(name, &[("type", "chat")], messages);
    e.sample(name, &[("type", "reaction")], reactions);
    e.single(
        "onair_chat_dropped_total",
        Kind::Counter,
        "Chat frames dropped for readers that fell behind.",
        c.chat_dropped_total(),
    );
    let (actions, refused) = c.moderation_totals();
    let name = "onair_chat_moderation_total";
    e.family(
        name,
        Kind::Counter,
        "Moderation commands carried out, by action.",
    );
    for (action, n) in actions {
        e.sample(name, &[("action", action)], n);
    }
    e.single(
        "onair_chat_moderation_refused_total",
        Kind::Counter,
        "Moderation commands refused (not allowed, unknown user, ...).",
        refused,
    );
}

fn webhooks(e: &mut Exposition, app: &App) {
    let c = &app.ops.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let name = "onair_webhook_deliveries_total";
    e.family(
        name,
        Kind::Counter,
        "Webhook events delivered (2xx) or failed (refused, or retries exhausted).",
    );
    e.sample(
        name,
        &[("result", "delivered")],
        load(&c.webhooks_delivered),
    );
    e.sample(name, &[("result", "failed")], load(&c.webhooks_failed));
    e.single(
        "onair_webhook_retries_total",
        Kind::Counter,
        "Webhook attempts repeated after a network error or 5xx.",
        load(&c.webhooks_retried),
    );
    e.single(
        "onair_webhook_dropped_total",
        Kind::Counter,
        "Webhook events dropped (oldest first) because the queue was full.",
        load(&c.webhooks_dropped),
    );
    e.single(
        "onair_webhook_queued",
        Kind::Gauge,
        "Webhook events waiting to be sent.",
        load(&c.webhooks_queued),
    );
}

/// The embedded TURN server's counters (all zero while it is off).
fn turn(e: &mut Exposition, app: &App) {
    let t = app
        .turn
        .get()
        .map(|t| t.stats().snapshot())
        .unwrap_or_default();
    e.single(
        "onair_turn_allocations",
        Kind::Gauge,
        "TURN relay allocations that exist now.",
        t.active_allocations,
    );
    e.single(
        "onair_turn_allocations_total",
        Kind::Counter,
        "TURN relay allocations created.",
        t.total_allocations,
    );
    let name = "onair_turn_refused_total";
    e.family(
        name,
        Kind::Counter,
        "TURN requests refused, by reason (auth, quota, forbidden_peer).",
    );
    e.sample(name, &[("reason", "auth")], t.auth_failures);
    e.sample(name, &[("reason", "quota")], t.quota_rejections);
    e.sample(name, &[("reason", "forbidden_peer")], t.forbidden_peers);
    let name = "onair_turn_relayed_bytes_total";
    e.family(
        name,
        Kind::Counter,
        "Payload bytes relayed by TURN, by direction.",
    );
    e.sample(name, &[("direction", "to_peer")], t.bytes_to_peers);
    e.sample(name, &[("direction", "to_client")], t.bytes_to_clients);
    e.single(
        "onair_turn_dropped_total",
        Kind::Counter,
        "TURN packets dropped (no permission, full queue, failed send).",
        t.dropped_packets,
    );
}
