//! Test/load client: unit tests of the RTP H.264 reassembler against rtc's own H.264 payloader
//! and real openh264 frames.

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

use super::*;
use crate::h264::{NAL_FU_A, NAL_STAP_A};
use crate::media::{VideoConfig, VideoDecoder, VideoSource};

#[derive(Debug, Clone)]
struct Pkt {
    seq: u64,
    ts: u32,
    marker: bool,
    payload: Bytes,
    frame: usize,
}

/// Encodes `count` frames (IDRs at the given indices) and packetizes them like a sender with
/// `mtu`, starting at extended sequence number `first_seq`.
fn packets(count: usize, idrs: &[usize], mtu: usize, first_seq: u64) -> Vec<Pkt> {
    let mut source = VideoSource::new(VideoConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 300_000,
        keyframe_interval_frames: 0,
    })
    .expect("encoder");
    let mut payloader = H264Payloader::default();
    let mut seq = first_seq;
    let mut out = Vec::new();
    for frame in 0..count {
        if idrs.contains(&frame) {
            source.force_keyframe();
        }
        let encoded = source.next_frame().expect("encode");
        assert_eq!(encoded.keyframe, frame == 0 || idrs.contains(&frame));
        let payloads = payloader.payload(mtu, &encoded.data).expect("payload");
        let last = payloads.len() - 1;
        for (i, payload) in payloads.into_iter().enumerate() {
            out.push(Pkt {
                seq,
                ts: 3000 * frame as u32 + 1_000_000,
                marker: i == last,
                payload,
                frame,
            });
            seq += 1;
        }
    }
    out
}

/// Feeds packets; returns the frame numbers that came out and checks each decodes.
fn feed(reassembler: &mut Reassembler, pkts: &[Pkt]) -> Vec<usize> {
    let mut decoder = VideoDecoder::new().expect("decoder");
    let mut out = Vec::new();
    for p in pkts {
        if let Some(au) = reassembler.push(p.seq, p.ts, p.marker, p.payload.clone()) {
            assert_eq!(au.rtp_timestamp, p.ts);
            let frame = ((au.rtp_timestamp - 1_000_000) / 3000) as usize;
            let picture = decoder.decode(&au.data).expect("decodes").expect("picture");
            assert_eq!((picture.width, picture.height), (320, 180));
            out.push(frame);
        }
    }
    out
}

#[test]
fn in_order_stream_with_fu_a_and_stap_a_reassembles_every_frame() {
    let pkts = packets(12, &[], 200, 0);
    let types: Vec<u8> = pkts.iter().map(|p| p.payload[0] & 0x1f).collect();
    assert!(types.contains(&NAL_FU_A), "small MTU must fragment");
    assert_eq!(types[0], NAL_STAP_A, "SPS+PPS aggregated first");
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), (0..12).collect::<Vec<_>>());
    let o = r.stats();
    assert_eq!(o.frames_complete, 12);
    assert_eq!(o.frames_incomplete + o.frames_malformed + o.late_packets, 0);
}

#[test]
fn sequence_numbers_across_the_16_bit_wrap_are_fine() {
    // Extended numbers keep counting past 65535; the reassembler only sees those.
    let pkts = packets(6, &[], 150, 65_530);
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), (0..6).collect::<Vec<_>>());
}

#[test]
fn reordering_inside_a_frame_is_repaired() {
    let mut pkts = packets(6, &[], 150, 100);
    // Swap the marker packet of frame 2 with the packet before it, and reverse frame 4.
    let f2: Vec<usize> = (0..pkts.len()).filter(|&i| pkts[i].frame == 2).collect();
    assert!(f2.len() >= 2);
    pkts.swap(f2[f2.len() - 1], f2[f2.len() - 2]);
    let f4: Vec<usize> = (0..pkts.len()).filter(|&i| pkts[i].frame == 4).collect();
    pkts[f4[0]..=f4[f4.len() - 1]].reverse();
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), (0..6).collect::<Vec<_>>());
    assert_eq!(r.stats().frames_incomplete, 0);
}

#[test]
fn loss_drops_the_frame_and_waits_for_the_next_idr() {
    let mut pkts = packets(10, &[6], 150, 0);
    // Lose a middle packet of frame 3 (a P-frame).
    let victim = pkts
        .iter()
        .position(|p| p.frame == 3 && !p.marker)
        .expect("frame 3 has several packets");
    pkts.remove(victim);
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), vec![0, 1, 2, 6, 7, 8, 9]);
    let o = r.stats();
    assert_eq!(o.frames_incomplete, 1);
    assert_eq!(o.frames_skipped_waiting_idr, 2, "frames 4 and 5");
}

#[test]
fn losing_the_marker_packet_drops_the_frame() {
    let mut pkts = packets(8, &[5], 150, 0);
    let victim = pkts
        .iter()
        .position(|p| p.frame == 2 && p.marker)
        .expect("marker of frame 2");
    pkts.remove(victim);
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), vec![0, 1, 5, 6, 7]);
}

#[test]
fn a_packet_overtaken_by_the_next_frame_is_late_and_its_frame_lost() {
    let mut pkts = packets(8, &[5], 150, 0);
    let last_of_1 = pkts
        .iter()
        .position(|p| p.frame == 1 && p.marker)
        .expect("marker of frame 1");
    let first_of_2 = last_of_1 + 1;
    pkts.swap(last_of_1, first_of_2);
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts), vec![0, 5, 6, 7]);
    let o = r.stats();
    assert_eq!(o.late_packets, 1);
    assert_eq!(o.frames_incomplete, 1);
}

#[test]
fn joining_mid_stream_starts_at_the_first_idr() {
    let pkts = packets(9, &[4], 150, 0);
    // Start in the middle of frame 1.
    let start = pkts.iter().position(|p| p.frame == 1).expect("frame 1") + 1;
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &pkts[start..]), vec![4, 5, 6, 7, 8]);
    assert!(!r.waiting_for_idr());
}

#[test]
fn duplicates_are_ignored() {
    let pkts = packets(4, &[], 150, 0);
    let mut doubled = Vec::new();
    for p in &pkts {
        doubled.push(p.clone());
        if !p.marker {
            doubled.push(p.clone());
        }
    }
    let mut r = Reassembler::new();
    assert_eq!(feed(&mut r, &doubled), vec![0, 1, 2, 3]);
}

#[test]
fn malformed_fragmentation_is_rejected() {
    let fu_middle = Bytes::from_static(&[0x7c, 0x05, 1, 2, 3]);
    assert_eq!(
        depacketize(&[(0, fu_middle.clone())]),
        Err(DepacketizeError::BrokenFragmentation)
    );
    let fu_start = Bytes::from_static(&[0x7c, 0x85, 1]);
    assert_eq!(
        depacketize(&[(0, fu_start.clone())]),
        Err(DepacketizeError::BrokenFragmentation),
        "never ended"
    );
    let fu_end = Bytes::from_static(&[0x7c, 0x45, 2]);
    assert_eq!(
        depacketize(&[(0, fu_start), (1, fu_end)]),
        Ok(vec![0, 0, 0, 1, 0x65, 1, 2])
    );
    assert_eq!(
        depacketize(&[(0, Bytes::from_static(&[0x78, 0, 5, 0x67]))]),
        Err(DepacketizeError::TruncatedStapA)
    );
    assert_eq!(
        depacketize(&[(0, Bytes::from_static(&[0x7d, 0x85]))]),
        Err(DepacketizeError::Unsupported(29))
    );
    let mut r = Reassembler::new();
    assert!(r.push(0, 10, true, fu_middle).is_none());
    assert_eq!(r.stats().frames_incomplete + r.stats().frames_malformed, 0);
}
