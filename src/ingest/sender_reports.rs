//! Publisher RTCP sender reports -> the HLS tap (ingest side of the media path, I/O shell):
//! `peer::feedback::RtcpDelivery::publisher_reports` lets a publisher's sender reports through to its tracks;
//! the track reader hands them here and they go, without waiting, to the tap reading the hub
//! the track publishes into (RFC 3550 §6.4.1: each pairs the sender's NTP wallclock with an
//! RTP timestamp). Each hub holds the sending end of its tap's report channel.

use std::sync::Arc;

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

/// A tap's subscription to the reports of the tracks publishing into its room's hubs;
/// unsubscribes when dropped.
pub struct ReportSubscription {
    tx: mpsc::Sender<SenderReportEvent>,
    /// The reports.
    pub rx: mpsc::Receiver<SenderReportEvent>,
    room: Arc<crate::room::Room>,
}

impl ReportSubscription {
    /// Subscribes to the reports of `room`'s broadcaster tracks.
    pub fn new(room: Arc<crate::room::Room>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        for hub in [&room.video, &room.audio] {
            *lock(hub) = Some(tx.clone());
        }
        Self { tx, rx, room }
    }
}

impl Drop for ReportSubscription {
    fn drop(&mut self) {
        for hub in [&self.room.video, &self.room.audio] {
            let mut sink = lock(hub);
            if sink.as_ref().is_some_and(|s| s.same_channel(&self.tx)) {
                *sink = None;
            }
        }
    }
}

fn lock(hub: &TrackHub) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<SenderReportEvent>>> {
    hub.report_sink()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The track reader's hook: hands the sender reports in `event` (RTCP of a track publishing
/// into `hub` for session `source`) to the hub's tap, if one listens.
pub fn observe(event: &TrackRemoteEvent, hub: &TrackHub, audio: bool, source: u64) {
    let TrackRemoteEvent::OnRtcpPacket(packets) = event else {
        return;
    };
    let Some(tx) = lock(hub).clone() else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::Rooms;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::sender_report::SenderReport;

    fn reports(ntp: u64) -> TrackRemoteEvent {
        TrackRemoteEvent::OnRtcpPacket(vec![
            Box::new(ReceiverReport::default()),
            Box::new(SenderReport {
                ntp_time: ntp,
                rtp_time: 1234,
                ..Default::default()
            }),
        ])
    }

    #[test]
    fn reports_reach_the_tap_of_the_hub_and_stop_when_it_goes() {
        let rooms = Rooms::new(&crate::config::Config::default());
        let room = rooms.get_or_create("sr");
        // Nobody listens: nothing happens.
        observe(&reports(1), &room.audio, true, 7);
        let mut first = ReportSubscription::new(room.clone());
        observe(&reports(2), &room.audio, true, 7);
        observe(&reports(3), &room.video, false, 7);
        let got = [first.rx.try_recv().unwrap(), first.rx.try_recv().unwrap()];
        assert_eq!(
            got,
            [
                SenderReportEvent {
                    source: 7,
                    audio: true,
                    ntp: 2,
                    rtp: 1234
                },
                SenderReportEvent {
                    source: 7,
                    audio: false,
                    ntp: 3,
                    rtp: 1234
                },
            ]
        );
        assert!(
            first.rx.try_recv().is_err(),
            "receiver reports are not passed on"
        );
        // A newer tap of the same room takes over; the old one leaving does not unhook it.
        let mut second = ReportSubscription::new(room.clone());
        drop(first);
        observe(&reports(4), &room.video, false, 8);
        assert_eq!(second.rx.try_recv().unwrap().ntp, 4);
        drop(second);
        assert!(lock(&room.video).is_none() && lock(&room.audio).is_none());
    }
}
