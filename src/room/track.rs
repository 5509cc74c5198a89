//! `TrackHub`: the fan-out point of one room track (hot path). The publisher's reader calls
//! [`TrackHub::publish`] once per RTP packet and the hub hands it to every consumer without
//! waiting: WHEP viewers' tracks are [`PacketSink`]s written to right there, on the
//! publisher's task (no queue, no task hop per packet per viewer); other consumers (the HLS
//! tap, the composite) have their own bounded queue. A consumer that cannot take a packet
//! loses that packet alone. Nothing here ever awaits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::core::rtp::{KeyframeMark, PliThrottle, ReplayWindow, RetransmitCache};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// Opus, 48 kHz.
    Audio,
    /// H.264, 90 kHz.
    Video,
}

impl TrackKind {
    /// RTP clock rate of the codec onair forwards for this kind.
    pub fn clock_rate(self) -> u32 {
        match self {
            TrackKind::Audio => 48_000,
            TrackKind::Video => 90_000,
        }
    }
}

/// One RTP packet as received from the publisher, shared (not copied) by every consumer.
#[derive(Debug)]
pub struct MediaPacket {
    /// The publisher session it came from; a new value means a new upstream stream.
    pub source: u64,
    /// Upstream sequence number.
    pub seq: u16,
    /// Upstream RTP timestamp.
    pub ts: u32,
    /// RTP marker bit (end of a video frame).
    pub marker: bool,
    /// True when a viewer may start decoding here (RFC 6184 SPS/IDR start). The ingest flags
    /// every packet that begins a parameter set or IDR slice; the hub keeps the flag on the
    /// first of each access unit only.
    pub keyframe: bool,
    /// The RTP payload.
    pub payload: Bytes,
}

/// A consumer the hub writes to directly from [`TrackHub::publish`], on the publisher's task:
/// a WHEP viewer's outgoing track. `deliver` must never block or await; it runs while the hub
/// holds its consumer list for reading, so it must not subscribe to or leave a hub.
pub trait PacketSink: Send + Sync {
    /// Takes one packet that arrived at `now`. False when it had to be dropped (the
    /// consumer's connection cannot take more right now).
    fn deliver(&self, hub: &TrackHub, packet: &Arc<MediaPacket>, now: Instant) -> bool;
}

enum Consumer {
    /// A bounded queue drained by the consumer's own task.
    Queue(mpsc::Sender<Arc<MediaPacket>>),
    /// Written to in place.
    Sink(Arc<dyn PacketSink>),
}

struct Subscriber {
    id: u64,
    consumer: Consumer,
    dropped: Arc<AtomicU64>,
}

/// A consumer's end of a hub: its queue and its drop counter.
pub struct Subscription {
    /// Packets for this consumer, in arrival order.
    pub rx: mpsc::Receiver<Arc<MediaPacket>>,
    /// Packets dropped for this consumer because its queue was full.
    pub dropped: Arc<AtomicU64>,
    /// Identifies the subscription for [`TrackHub::unsubscribe`].
    pub id: u64,
}

/// Counters of a hub, for the API and metrics.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct TrackStats {
    /// Packets received from publishers.
    pub packets_in: u64,
    /// Payload bytes received from publishers.
    pub bytes_in: u64,
    /// Packets written to viewers (retransmissions included).
    pub packets_out: u64,
    /// Payload bytes written to viewers.
    pub bytes_out: u64,
    /// Packets dropped for some consumer because its queue was full.
    pub dropped: u64,
    /// Keyframe requests sent upstream.
    pub keyframe_requests: u64,
    /// Generic NACK messages received from viewers.
    pub nacks: u64,
    /// Packets re-sent from the retransmission cache to answer them.
    pub retransmitted: u64,
    /// Viewers started at once from the hub's newest keyframe (fast start) instead of waiting
    /// for a requested one.
    pub fast_starts: u64,
}

/// How a hub buffers, remembers and asks for keyframes (from the server configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Packets each queued consumer (HLS tap, composite) may have waiting.
    pub queue: usize,
    /// Packets of video history kept for retransmissions and fast starts.
    pub cache: usize,
    /// At most one keyframe request per this interval.
    pub pli_interval: Duration,
    /// A joining viewer starts from a keyframe that began at most this long ago (zero: off).
    pub keyframe_replay: Duration,
}

/// The video history: recent packets by sequence number and where the newest keyframe began.
struct History {
    packets: RetransmitCache<Arc<MediaPacket>>,
    keyframe: Option<KeyframeMark>,
}

/// Fan-out of one track of a room to its consumers (viewers, and later the HLS tap).
pub struct TrackHub {
    kind: TrackKind,
    queue: usize,
    subscribers: RwLock<Vec<Subscriber>>,
    next_id: AtomicU64,
    history: Mutex<History>,
    replay: ReplayWindow,
    pli: Mutex<PliThrottle>,
    pli_now: AtomicBool,
    keyframe_wanted: Notify,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped: AtomicU64,
    keyframe_requests: AtomicU64,
    nacks: AtomicU64,
    retransmitted: AtomicU64,
    fast_starts: AtomicU64,
    /// Where the RTCP sender reports of the track publishing here go (the room's HLS tap).
    reports: Mutex<Option<mpsc::Sender<crate::ingest::sender_reports::SenderReportEvent>>>,
}

impl TrackHub {
    /// A hub whose consumers each queue up to `config.queue` packets, keeping `config.cache`
    /// packets for retransmission and fast starts and sending at most one keyframe request
    /// per `config.pli_interval` (requests while one is outstanding join it).
    pub fn new(kind: TrackKind, config: HubConfig) -> Self {
        Self {
            kind,
            queue: config.queue,
            subscribers: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
            history: Mutex::new(History {
                packets: RetransmitCache::new(config.cache),
                keyframe: None,
            }),
            replay: ReplayWindow::new(config.keyframe_replay),
            pli: Mutex::new(PliThrottle::new(config.pli_interval)),
            pli_now: AtomicBool::new(false),
            keyframe_wanted: Notify::new(),
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            retransmitted: AtomicU64::new(0),
            fast_starts: AtomicU64::new(0),
            reports: Mutex::new(None),
        }
    }

    /// The channel the sender reports of this hub's publisher go to (`ingest::sender_reports`).
    pub fn report_sink(
        &self,
    ) -> &Mutex<Option<mpsc::Sender<crate::ingest::sender_reports::SenderReportEvent>>> {
        &self.reports
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// Adds a consumer with its own bounded queue.
    pub fn subscribe(&self) -> Subscription {
        self.subscribe_counted(Arc::new(AtomicU64::new(0)))
    }

    /// Adds a consumer whose drops are counted on `dropped` (a viewer slot keeps one counter
    /// while it switches between participants' hubs).
    pub fn subscribe_counted(&self, dropped: Arc<AtomicU64>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.add(Consumer::Queue(tx), dropped.clone());
        Subscription { rx, dropped, id }
    }

    /// Adds a consumer written to directly by [`TrackHub::publish`]; its drops are counted on
    /// `dropped`. Returns the id for [`TrackHub::unsubscribe`].
    pub fn subscribe_sink(&self, sink: Arc<dyn PacketSink>, dropped: Arc<AtomicU64>) -> u64 {
        self.add(Consumer::Sink(sink), dropped)
    }

    fn add(&self, consumer: Consumer, dropped: Arc<AtomicU64>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscribers
            .write()
            .expect("hub lock poisoned")
            .push(Subscriber {
                id,
                consumer,
                dropped,
            });
        id
    }

    /// Removes a consumer.
    pub fn unsubscribe(&self, id: u64) {
        self.subscribers
            .write()
            .expect("hub lock poisoned")
            .retain(|s| s.id != id);
    }

    /// Number of consumers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.read().expect("hub lock poisoned").len()
    }

    /// Hands one packet to every consumer without waiting: one `Arc` per packet, then per
    /// consumer a direct write ([`PacketSink`]) or a refcount and a `try_send`. A consumer that
    /// cannot take it loses this packet alone.
    pub fn publish(&self, packet: MediaPacket) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        let packet = match self.kind {
            TrackKind::Video => self.remember(packet, now),
            TrackKind::Audio => Arc::new(packet),
        };
        if packet.keyframe {
            // Before the fan-out: a consumer asking from now on needs a newer keyframe.
            self.pli.lock().expect("pli lock poisoned").keyframe_seen();
        }
        let subscribers = self.subscribers.read().expect("hub lock poisoned");
        for s in subscribers.iter() {
            let delivered = match &s.consumer {
                Consumer::Queue(tx) => !matches!(
                    tx.try_send(packet.clone()),
                    Err(mpsc::error::TrySendError::Full(_))
                ),
                Consumer::Sink(sink) => sink.deliver(self, &packet, now),
            };
            if !delivered {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let n = s.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Rate-limited by construction: logs at 1, 2, 4, 8, ... drops.
                if n.is_power_of_two() {
                    tracing::warn!(kind = ?self.kind, subscriber = s.id, dropped = n, "slow consumer: queue full, dropping packets for it");
                }
            }
        }
    }

    /// Keeps a video packet in the history, notes where the newest keyframe began, and
    /// returns the packet shared. Only the first flagged packet of an access unit keeps its
    /// keyframe flag: a viewer whose gate opened on the IDR slice after the SPS/PPS packet
    /// would start without its parameter sets.
    fn remember(&self, mut packet: MediaPacket, now: Instant) -> Arc<MediaPacket> {
        let mut history = self.history();
        if packet.keyframe {
            let flagged = KeyframeMark {
                source: packet.source,
                seq: packet.seq,
                ts: packet.ts,
                at: now,
            };
            let mark = KeyframeMark::next(history.keyframe, flagged);
            packet.keyframe = mark.seq == packet.seq;
            history.keyframe = Some(mark);
        }
        let packet = Arc::new(packet);
        history.packets.insert(packet.seq, packet.clone());
        packet
    }

    fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().expect("history lock poisoned")
    }

    /// The cached packet with upstream sequence number `seq`, to answer a NACK.
    pub fn cached(&self, seq: u16) -> Option<Arc<MediaPacket>> {
        self.history().packets.get(seq).cloned()
    }

    /// For a viewer whose first video packet `current` would be: the packets from the
    /// newest keyframe up to `current` (excluded), when that keyframe began within the
    /// replay window and all of them are still in the history (see [`ReplayWindow`]). The
    /// viewer sends these, then `current`, and starts decoding at once. Allocates one `Vec`
    /// per viewer start, never per packet.
    pub fn keyframe_run(
        &self,
        current: &MediaPacket,
        now: Instant,
    ) -> Option<Vec<Arc<MediaPacket>>> {
        let history = self.history();
        let count =
            self.replay
                .packets_before(history.keyframe, current.source, current.seq, now)?;
        let first = history.keyframe?.seq;
        (0..count)
            .map(|i| {
                history
                    .packets
                    .get(first.wrapping_add(i))
                    .filter(|p| p.source == current.source)
                    .cloned()
            })
            .collect()
    }

    /// Whether a viewer starting now could begin at the newest keyframe (see
    /// [`TrackHub::keyframe_run`]); its keyframe request can then wait for the next packet.
    pub fn can_fast_start(&self, now: Instant) -> bool {
        self.replay.covers(self.history().keyframe, now)
    }

    /// Counts a viewer started from [`TrackHub::keyframe_run`].
    pub fn count_fast_start(&self) {
        self.fast_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets cached packets (a new publisher reuses sequence numbers).
    pub fn clear_cache(&self) {
        let mut history = self.history();
        history.packets.clear();
        history.keyframe = None;
    }

    /// Asks the publisher for a keyframe (RFC 4585 §6.3.1 PLI): joins an outstanding request
    /// if one is on its way, else sends within one `pli_interval` ([`PliThrottle`]).
    pub fn request_keyframe(&self) {
        let send_now = self
            .pli
            .lock()
            .expect("pli lock poisoned")
            .request(Instant::now());
        if send_now {
            self.pli_now.store(true, Ordering::Release);
        }
        // Wake the publisher either way so it re-arms its timer for a deferred request.
        self.keyframe_wanted.notify_one();
    }

    /// For the publisher: true when a keyframe request is due now. Call after
    /// [`TrackHub::keyframe_wanted`] fires or at [`TrackHub::next_keyframe_deadline`].
    pub fn take_keyframe_request(&self) -> bool {
        let due = self.pli_now.swap(false, Ordering::AcqRel)
            || self
                .pli
                .lock()
                .expect("pli lock poisoned")
                .poll(Instant::now());
        if due {
            self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        }
        due
    }

    /// When a deferred keyframe request becomes due, if one is pending.
    pub fn next_keyframe_deadline(&self) -> Option<Instant> {
        self.pli.lock().expect("pli lock poisoned").poll_timeout()
    }

    /// Resolves when a consumer asked for a keyframe.
    pub async fn keyframe_wanted(&self) {
        self.keyframe_wanted.notified().await;
    }

    /// Counts a NACK message from a viewer.
    pub fn count_nack(&self) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a packet of `bytes` payload written to a viewer (relaxed atomics, no lock).
    pub fn count_sent(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a packet re-sent from the cache.
    pub fn count_retransmit(&self) {
        self.retransmitted.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TrackStats {
        TrackStats {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            keyframe_requests: self.keyframe_requests.load(Ordering::Relaxed),
            nacks: self.nacks.load(Ordering::Relaxed),
            retransmitted: self.retransmitted.load(Ordering::Relaxed),
            fast_starts: self.fast_starts.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[path = "track_tests.rs"]
mod tests;
