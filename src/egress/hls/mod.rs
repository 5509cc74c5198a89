//! LL-HLS egress (egress path: `room::TrackHub` -> tap -> `HlsStream` -> HTTP): a tap per room
//! that starts with its first publisher and follows every later one, the registry of the
//! rooms' streams, and `GET /hls/{room}/...`. Does I/O (tasks, HTTP).
//!
//! Renditions follow DESIGN.md §5: video is the variant stream (`video.m3u8`), Opus an
//! `EXT-X-MEDIA` audio rendition (`audio.m3u8`), each with its own init segment, so each
//! playlist can carry an `EXT-X-RENDITION-REPORT` for the other.

mod http;
mod store;
mod tap;

pub use http::routes;
pub use store::{HlsStream, NewPart, StreamInfo};

use std::sync::Arc;

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::core::hls::HlsTiming;
use crate::http::App;
use crate::room::Room;

/// Every room's LL-HLS stream and tap.
pub struct HlsRegistry {
    streams: DashMap<String, Arc<HlsStream>>,
    /// Rooms with a running tap, with the address of the `Room` it follows.
    taps: DashMap<String, usize>,
    shutdown: CancellationToken,
    timing: HlsTiming,
}

impl Default for HlsRegistry {
    fn default() -> Self {
        Self {
            streams: DashMap::new(),
            taps: DashMap::new(),
            shutdown: CancellationToken::new(),
            timing: HlsTiming::default(),
        }
    }
}

impl HlsRegistry {
    /// The stream of `room`, if it has one.
    pub fn get(&self, room: &str) -> Option<Arc<HlsStream>> {
        self.streams.get(room).map(|s| s.clone())
    }

    /// The timing rules of every stream.
    pub fn timing(&self) -> HlsTiming {
        self.timing
    }

    /// Rooms with a stream.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True without any stream.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    fn publish(&self, room: &str, stream: Arc<HlsStream>) {
        self.streams.insert(room.to_owned(), stream);
    }

    fn remove(&self, room: &str, stream_id: u32) {
        self.streams
            .remove_if(room, |_, s| s.stream_id() == stream_id);
    }

    /// Stops every tap: each finishes its recording and ends its playlists.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Starts the tap of `room` unless one already runs (called when a publisher connects). The
/// tap is one more consumer of the room's hubs, with its own bounded queues. With neither
/// `hls` nor `recordings` on, there is no tap.
pub fn start_tap(app: &App, room: &Arc<Room>) {
    if !app.config.hls && !app.config.recordings {
        return;
    }
    let key = Arc::as_ptr(room) as usize;
    let mut started = false;
    app.hls
        .taps
        .entry(room.name().to_owned())
        .and_modify(|k| {
            if *k != key {
                // The room was dropped and made again: the old tap is on its way out.
                *k = key;
                started = true;
            }
        })
        .or_insert_with(|| {
            started = true;
            key
        });
    if started {
        tracing::info!(room = room.name(), "LL-HLS tap started");
        app.tasks.spawn(tap::run(app.clone(), room.clone()));
    }
}
