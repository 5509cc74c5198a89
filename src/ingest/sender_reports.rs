//! Publisher RTCP sender reports -> the HLS tap (ingest side of the media path, I/O shell):
//! `peer::feedback::PublisherReports` lets a publisher's sender reports through to its tracks;
//! the track reader hands them here and they go, without waiting, to the tap reading the hub
//! the track publishes into (RFC 3550 §6.4.1: each pairs the sender's NTP wallclock with an
//! RTP timestamp). Taps register per hub, keyed by the hub's address, which is stable while
//! the tap holds the room.

use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

use crate::room::TrackHub;

/// Reports queued for a tap before new ones are dropped (one a second per track is normal).
const QUEUE: usize = 64;

/// One sender report as the tap needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReportEvent {
    /// The publisher session (`MediaPacket::source`).
    pub source: u64,
    /// From the audio track (else video).
    pub audio: bool,
    /// 64-bit NTP wallclock.
    pub ntp: u64,
    /// RTP timestamp of the same instant.
    pub rtp: u32,
}

fn taps() -> &'static DashMap<usize, mpsc::Sender<SenderReportEvent>> {
    static TAPS: OnceLock<DashMap<usize, mpsc::Sender<SenderReportEvent>>> = OnceLock::new();
    TAPS.get_or_init(DashMap::new)
}

fn key(hub: &TrackHub) -> usize {
    std::ptr::from_ref(hub) as usize
}

/// A tap's subscription to the reports of the tracks publishing into `video` and `audio`;
/// unsubscribes when dropped.
pub struct ReportSubscription {
    keys: [usize; 2],
    /// The reports.
    pub rx: mpsc::Receiver<SenderReportEvent>,
    _room: Arc<crate::room::Room>,
}

impl ReportSubscription {
    /// Subscribes to the reports of `room`'s broadcaster tracks.
    pub fn new(room: Arc<crate::room::Room>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let keys = [key(&room.video), key(&room.audio)];
        for k in keys {
            taps().insert(k, tx.clone());
        }
        Self {
            keys,
            rx,
            _room: room,
        }
    }
}

impl Drop for ReportSubscription {
    fn drop(&mut self) {
        for k in self.keys {
            taps().remove(&k);
        }
    }
}

/// The track reader's hook: hands the sender reports in `event` (RTCP of a track publishing
/// into `hub` for session `source`) to the hub's tap, if one listens.
pub fn observe(event: &TrackRemoteEvent, hub: &TrackHub, audio: bool, source: u64) {
    let TrackRemoteEvent::OnRtcpPacket(packets) = event else {
        return;
    };
    let Some(tx) = taps().get(&key(hub)).map(|t| t.clone()) else {
        return;
    };
    for packet in packets {
        if let Some(sr) = packet
            .as_any()
            .downcast_ref::<rtc::rtcp::sender_report::SenderReport>()
        {
            let _ = tx.try_send(SenderReportEvent {
                source,
                audio,
                ntp: sr.ntp_time,
                rtp: sr.rtp_time,
            });
        }
    }
}
