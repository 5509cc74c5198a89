//! `RtcpDelivery`: an interceptor at the application end of a PeerConnection's chain that
//! hands chosen inbound RTCP to onair (webrtc 0.21 ends inbound RTCP inside the chain unless an
//! interceptor marks it for delivery). On a viewer (egress side) it delivers keyframe requests
//! (PLI, FIR) and Generic NACKs, which onair answers itself from the shared per-track cache and
//! the publisher instead of a per-viewer NACK responder buffer; on a publisher (ingest side) it
//! delivers RTCP sender reports, which the HLS tap aligns audio and video by (RFC 3550 §6.4.1).

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

/// Marks the inbound RTCP packets `wanted` picks for delivery to the application
/// (`TrackLocal::poll` on a viewer, `TrackRemote::poll` on a publisher); the rest stays in the
/// chain, where the report interceptors consumed it. One per PeerConnection, at the
/// application end of the chain.
pub struct RtcpDelivery {
    wanted: fn(&dyn rtc::rtcp::Packet) -> bool,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl RtcpDelivery {
    /// A viewer's keyframe requests and NACKs ([`wanted_by_onair`]).
    pub fn viewer_feedback() -> Self {
        Self::new(wanted_by_onair)
    }

    /// A publisher's sender reports ([`is_sender_report`]).
    pub fn publisher_reports() -> Self {
        Self::new(is_sender_report)
    }

    fn new(wanted: fn(&dyn rtc::rtcp::Packet) -> bool) -> Self {
        Self {
            wanted,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }
}

/// True for the RTCP onair answers itself (RFC 4585 §6.2.1 NACK, §6.3.1 PLI; RFC 5104 FIR).
pub fn wanted_by_onair(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<TransportLayerNack>()
}

/// True for a sender report (RFC 3550 §6.4.1), which the HLS tap aligns audio and video by.
pub fn is_sender_report(packet: &dyn rtc::rtcp::Packet) -> bool {
    packet.as_any().is::<SenderReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpDelivery {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            packets.retain(|p| (self.wanted)(p.as_ref()));
            if packets.is_empty() {
                return Ok(());
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for RtcpDelivery {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

    #[test]
    fn keeps_keyframe_requests_and_nacks_only() {
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        };
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![NackPair {
                packet_id: 7,
                lost_packets: 0,
            }],
        };
        assert!(wanted_by_onair(&pli));
        assert!(wanted_by_onair(&nack));
        assert!(!wanted_by_onair(&ReceiverReport::default()));
        assert!(is_sender_report(&SenderReport::default()));
        assert!(!is_sender_report(&pli));
        assert!(!is_sender_report(&ReceiverReport::default()));
    }
}
