//! Unit tests of the track hub: fan-out, drops, history, keyframe requests and fast starts.
use super::*;

fn config(queue: usize, cache: usize, pli_interval: Duration) -> HubConfig {
    HubConfig {
        queue,
        cache,
        pli_interval,
        keyframe_replay: Duration::ZERO,
    }
}

fn packet(seq: u16) -> MediaPacket {
    MediaPacket {
        source: 1,
        seq,
        ts: u32::from(seq) * 3000,
        marker: true,
        keyframe: seq == 0,
        payload: Bytes::from_static(&[0x65, 0x88, 0x84]),
    }
}

#[tokio::test]
async fn a_stalled_consumer_loses_packets_alone() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 64, Duration::from_millis(500)));
    let stalled = hub.subscribe();
    let mut live = hub.subscribe();
    for seq in 0..100 {
        hub.publish(packet(seq));
        // The live consumer keeps up.
        let got = live.rx.try_recv().expect("live consumer gets every packet");
        assert_eq!(got.seq, seq);
    }
    assert_eq!(stalled.dropped.load(Ordering::Relaxed), 100 - 16);
    assert_eq!(live.dropped.load(Ordering::Relaxed), 0);
    assert_eq!(hub.stats().dropped, 84);
    assert_eq!(hub.stats().packets_in, 100);
    // The payload is shared, not copied.
    let a = hub.cached(99).unwrap();
    assert!(Arc::ptr_eq(&a, &hub.cached(99).unwrap()));
}

/// Takes every other packet, remembering the sequence numbers it took.
struct HalfSink(Mutex<Vec<u16>>);

impl PacketSink for HalfSink {
    fn deliver(&self, hub: &TrackHub, packet: &Arc<MediaPacket>, _now: Instant) -> bool {
        if packet.seq % 2 == 1 {
            return false;
        }
        hub.count_sent(packet.payload.len());
        self.0.lock().unwrap().push(packet.seq);
        true
    }
}

#[test]
fn sinks_are_written_in_place_and_their_refusals_counted() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 64, Duration::from_millis(500)));
    let sink = Arc::new(HalfSink(Mutex::new(Vec::new())));
    let dropped = Arc::new(AtomicU64::new(0));
    let id = hub.subscribe_sink(sink.clone(), dropped.clone());
    let mut queue = hub.subscribe();
    for seq in 0..10 {
        hub.publish(packet(seq));
    }
    // Written synchronously by `publish`, with no task in between.
    assert_eq!(*sink.0.lock().unwrap(), vec![0, 2, 4, 6, 8]);
    assert_eq!(dropped.load(Ordering::Relaxed), 5);
    assert_eq!(hub.stats().dropped, 5);
    assert_eq!(hub.stats().packets_out, 5);
    // A queue consumer beside it misses nothing.
    for seq in 0..10 {
        assert_eq!(queue.rx.try_recv().unwrap().seq, seq);
    }
    hub.unsubscribe(id);
    hub.publish(packet(10));
    assert_eq!(sink.0.lock().unwrap().len(), 5, "no packets after leaving");
}

#[tokio::test]
async fn unsubscribe_and_cache_lookup() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 16, Duration::from_millis(500)));
    let s = hub.subscribe();
    assert_eq!(hub.subscriber_count(), 1);
    hub.unsubscribe(s.id);
    assert_eq!(hub.subscriber_count(), 0);
    for seq in 0..40 {
        hub.publish(packet(seq));
    }
    assert!(hub.cached(39).is_some());
    assert!(hub.cached(3).is_none(), "overwritten by newer packets");
    hub.clear_cache();
    assert!(hub.cached(39).is_none());
}

#[tokio::test]
async fn keyframe_requests_are_coalesced() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 16, Duration::from_secs(60)));
    for _ in 0..50 {
        hub.request_keyframe();
    }
    assert!(hub.take_keyframe_request());
    assert!(!hub.take_keyframe_request());
    assert!(
        hub.next_keyframe_deadline().is_some(),
        "one deferred request pending"
    );
    assert_eq!(hub.stats().keyframe_requests, 1);
}

#[tokio::test]
async fn a_keyframe_satisfies_waiting_requests() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 16, Duration::from_secs(60)));
    let _viewer = hub.subscribe();
    hub.request_keyframe();
    assert!(hub.take_keyframe_request());
    hub.request_keyframe();
    assert!(hub.next_keyframe_deadline().is_some(), "covered, waiting");
    hub.publish(packet(0)); // starts a keyframe
    assert!(
        hub.next_keyframe_deadline().is_none(),
        "served by the keyframe"
    );
    hub.publish(packet(1));
    hub.request_keyframe();
    assert!(
        hub.next_keyframe_deadline().is_some(),
        "a newcomer after the keyframe waits for the next step, not for ever"
    );
    assert!(!hub.take_keyframe_request(), "inside the interval");
}

#[test]
fn a_viewer_starts_from_the_newest_keyframe_while_it_is_recent_and_whole() {
    let window = Duration::from_secs(60);
    let hub = TrackHub::new(
        TrackKind::Video,
        HubConfig {
            keyframe_replay: window,
            ..config(16, 64, Duration::from_millis(300))
        },
    );
    let now = Instant::now();
    assert!(
        hub.keyframe_run(&packet(3), now).is_none(),
        "no keyframe yet"
    );
    for seq in 0..10 {
        hub.publish(packet(seq));
    }
    let run = hub.keyframe_run(&packet(10), now).expect("recent keyframe");
    let seqs: Vec<u16> = run.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    assert!(run[0].keyframe);
    assert!(
        hub.keyframe_run(&packet(10), now + window + Duration::from_secs(1))
            .is_none(),
        "too old: wait for a new keyframe"
    );
    let other_source = MediaPacket {
        source: 2,
        ..packet(10)
    };
    assert!(hub.keyframe_run(&other_source, now).is_none());
    hub.clear_cache();
    assert!(
        hub.keyframe_run(&packet(10), now).is_none(),
        "a new publisher"
    );
}

#[test]
fn a_fast_start_begins_with_the_parameter_sets_of_its_keyframe() {
    let hub = TrackHub::new(
        TrackKind::Video,
        HubConfig {
            keyframe_replay: Duration::from_secs(60),
            ..config(16, 64, Duration::from_millis(300))
        },
    );
    // SPS (flagged), PPS, then the IDR slice (flagged too), all of one access unit.
    hub.publish(packet(0));
    hub.publish(MediaPacket { ts: 0, ..packet(1) });
    hub.publish(MediaPacket {
        ts: 0,
        keyframe: true,
        ..packet(2)
    });
    for seq in 3..6 {
        hub.publish(packet(seq));
    }
    let run = hub.keyframe_run(&packet(6), Instant::now()).unwrap();
    assert_eq!(run.first().map(|p| p.seq), Some(0));
    assert_eq!(run.len(), 6);
}

#[test]
fn a_consumer_joining_between_the_sps_and_the_idr_slice_waits_for_the_next_keyframe() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 64, Duration::from_millis(300)));
    let mut early = hub.subscribe();
    // The SPS packet (flagged) goes out before this consumer arrives ...
    hub.publish(packet(0));
    let mut late = hub.subscribe();
    // ... then the IDR slice of the same access unit, flagged by the ingest too.
    hub.publish(MediaPacket {
        ts: 0,
        keyframe: true,
        ..packet(1)
    });
    hub.publish(MediaPacket {
        ts: 30_000,
        keyframe: true,
        ..packet(2)
    });
    let early: Vec<_> = std::iter::from_fn(|| early.rx.try_recv().ok()).collect();
    let late: Vec<_> = std::iter::from_fn(|| late.rx.try_recv().ok()).collect();
    assert_eq!(
        early.iter().map(|p| p.keyframe).collect::<Vec<_>>(),
        [true, false, true],
        "one start per access unit"
    );
    assert_eq!(
        late.iter().map(|p| (p.seq, p.keyframe)).collect::<Vec<_>>(),
        [(1, false), (2, true)],
        "the IDR slice without its parameter sets is no place to start"
    );
}

#[test]
fn no_fast_start_across_a_hole_in_the_history() {
    let hub = TrackHub::new(
        TrackKind::Video,
        HubConfig {
            keyframe_replay: Duration::from_secs(60),
            ..config(16, 64, Duration::from_millis(300))
        },
    );
    for seq in (0..10).filter(|&s| s != 4) {
        hub.publish(packet(seq));
    }
    assert!(hub.keyframe_run(&packet(10), Instant::now()).is_none());
}

#[test]
fn a_zero_window_never_replays() {
    let hub = TrackHub::new(TrackKind::Video, config(16, 64, Duration::from_millis(300)));
    for seq in 0..10 {
        hub.publish(packet(seq));
    }
    assert!(hub.keyframe_run(&packet(10), Instant::now()).is_none());
}
