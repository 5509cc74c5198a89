//! Unit tests of the RFC 6184 depacketizer (HLS path): packetization modes, loss, reordering,
//! wrap-around and garbage. Pure.

use super::*;

const SPS_NAL: [u8; 10] = [0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x3d, 0xb0, 0x11];
const PPS_NAL: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

fn idr(len: usize) -> Vec<u8> {
    let mut v = vec![0x65];
    v.extend((0..len).map(|i| (i % 251) as u8 + 1));
    v
}

fn slice(len: usize) -> Vec<u8> {
    let mut v = vec![0x41];
    v.extend((0..len).map(|i| (i % 13) as u8 + 7));
    v
}

fn stap(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x78];
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Splits `nal` into FU-A payloads of at most `chunk` fragment bytes (RFC 6184 §5.8).
fn fu_a(nal: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let indicator = (nal[0] & 0xe0) | FU_A;
    let body = &nal[1..];
    let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut header = nal_type(nal[0]);
            if i == 0 {
                header |= 0x80;
            }
            if i == last {
                header |= 0x40;
            }
            let mut p = vec![indicator, header];
            p.extend_from_slice(piece);
            p
        })
        .collect()
}

fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Payloads of one frame: a STAP-A of parameter sets (keyframes), then the slice in FU-As.
fn frame_payloads(keyframe: bool, n: usize) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    if keyframe {
        payloads.push(stap(&[&SPS_NAL, &PPS_NAL]));
        payloads.extend(fu_a(&idr(3000 + n), 1000));
    } else {
        payloads.extend(fu_a(&slice(1500 + n), 1000));
    }
    payloads
}

struct Sender {
    seq: u16,
    ts: u32,
}

impl Sender {
    /// RTP packets (seq, ts, marker, payload) of one frame; the timestamp advances 3000.
    fn frame(&mut self, payloads: Vec<Vec<u8>>) -> Vec<(u16, u32, bool, Bytes)> {
        let last = payloads.len() - 1;
        let out = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let packet = (self.seq, self.ts, i == last, Bytes::from(p));
                self.seq = self.seq.wrapping_add(1);
                packet
            })
            .collect();
        self.ts = self.ts.wrapping_add(3000);
        out
    }
}

fn push_all(d: &mut H264Depacketizer, packets: &[(u16, u32, bool, Bytes)]) {
    for (seq, ts, marker, payload) in packets {
        d.push(*seq, *ts, *marker, payload.clone());
    }
}

fn drain(d: &mut H264Depacketizer) -> Vec<AccessUnit> {
    std::iter::from_fn(|| d.poll()).collect()
}

#[test]
fn single_nal_units_end_at_the_marker() {
    let mut d = H264Depacketizer::new();
    d.push(1, 90_000, false, Bytes::from_static(&SPS_NAL));
    d.push(2, 90_000, false, Bytes::from_static(&PPS_NAL));
    d.push(3, 90_000, true, Bytes::from(idr(20)));
    d.push(4, 93_000, true, Bytes::from(slice(10)));
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 2);
    assert!(aus[0].keyframe);
    assert_eq!(aus[0].ts, (1 << 32) + 90_000);
    assert_eq!(aus[0].data, avcc(&[&SPS_NAL, &PPS_NAL, &idr(20)]));
    assert!(!aus[1].keyframe);
    assert_eq!(aus[1].ts - aus[0].ts, 3000);
    assert_eq!(aus[1].data, avcc(&[&slice(10)]));
    assert_eq!(d.sps().map(|b| &b[..]), Some(&SPS_NAL[..]));
    assert_eq!(d.pps().map(|b| &b[..]), Some(&PPS_NAL[..]));
}

#[test]
fn stap_a_and_fu_a_reassemble() {
    let mut d = H264Depacketizer::new();
    let mut s = Sender { seq: 100, ts: 5 };
    push_all(&mut d, &s.frame(frame_payloads(true, 0)));
    push_all(&mut d, &s.frame(frame_payloads(false, 0)));
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 2);
    assert_eq!(aus[0].data, avcc(&[&SPS_NAL, &PPS_NAL, &idr(3000)]));
    assert_eq!(aus[1].data, avcc(&[&slice(1500)]));
    assert_eq!(d.stats().frames, 2);
    assert_eq!(d.stats().frames_dropped, 0);
}

#[test]
fn parameter_sets_go_before_every_idr_and_nowhere_else() {
    let mut d = H264Depacketizer::new();
    d.push(
        1,
        0,
        true,
        Bytes::from(stap(&[&SPS_NAL, &PPS_NAL, &idr(5)])),
    );
    // A later IDR sent without parameter sets, and a P-frame that repeats them.
    d.push(2, 3000, true, Bytes::from(idr(7)));
    d.push(
        3,
        6000,
        true,
        Bytes::from(stap(&[&SPS_NAL, &PPS_NAL, &slice(4)])),
    );
    // An access unit delimiter is dropped.
    d.push(4, 9000, false, Bytes::from_static(&[0x09, 0xf0]));
    d.push(5, 9000, true, Bytes::from(slice(3)));
    let aus = drain(&mut d);
    assert_eq!(aus[1].data, avcc(&[&SPS_NAL, &PPS_NAL, &idr(7)]));
    assert!(aus[1].keyframe);
    assert_eq!(aus[2].data, avcc(&[&slice(4)]));
    assert_eq!(aus[3].data, avcc(&[&slice(3)]));
    assert!(aus.iter().all(|au| !au.parameter_sets_changed));
}

#[test]
fn a_new_sps_is_reported_once() {
    let mut d = H264Depacketizer::new();
    d.push(
        1,
        0,
        true,
        Bytes::from(stap(&[&SPS_NAL, &PPS_NAL, &idr(5)])),
    );
    let mut sps2 = SPS_NAL;
    sps2[3] = 0x1f;
    d.push(
        2,
        3000,
        true,
        Bytes::from(stap(&[&sps2, &PPS_NAL, &idr(5)])),
    );
    d.push(3, 6000, true, Bytes::from(slice(5)));
    let aus = drain(&mut d);
    let changed: Vec<bool> = aus.iter().map(|a| a.parameter_sets_changed).collect();
    assert_eq!(changed, [false, true, false]);
    assert_eq!(d.sps().map(|b| b[3]), Some(0x1f));
}

#[test]
fn a_lost_fragment_drops_that_frame_only() {
    let mut d = H264Depacketizer::new();
    let mut s = Sender { seq: 7, ts: 0 };
    let key = s.frame(frame_payloads(true, 0));
    let mut p1 = s.frame(frame_payloads(false, 1));
    let p2 = s.frame(frame_payloads(false, 2));
    let p3 = s.frame(frame_payloads(false, 3));
    push_all(&mut d, &key);
    p1.remove(1); // a middle FU-A fragment
    push_all(&mut d, &p1);
    push_all(&mut d, &p2);
    push_all(&mut d, &p3);
    // More traffic pushes the hole out of the reorder window.
    let rest: Vec<_> = (4..10)
        .flat_map(|n| s.frame(frame_payloads(false, n)))
        .collect();
    push_all(&mut d, &rest);
    d.flush();
    let aus = drain(&mut d);
    assert!(aus[0].keyframe);
    // p1 lost its last fragment; p2 started right after the hole, so its head may be what was
    // lost: both are dropped. Everything from p3 on survives.
    assert!(!aus.iter().any(|a| a.data == avcc(&[&slice(1501)])));
    assert!(!aus.iter().any(|a| a.data == avcc(&[&slice(1502)])));
    for n in 3..10 {
        assert!(
            aus.iter().any(|a| a.data == avcc(&[&slice(1500 + n)])),
            "frame {n}"
        );
    }
    assert_eq!(aus.len(), 8);
    let stats = d.stats();
    assert_eq!(stats.packets_lost, 1);
    assert_eq!(stats.frames_dropped, 2);
    assert!(d.take_keyframe_request());
    assert!(!d.take_keyframe_request(), "asked once");
}

#[test]
fn reordering_inside_the_window_loses_nothing() {
    let mut d = H264Depacketizer::new();
    let mut s = Sender {
        seq: 65_530,
        ts: u32::MAX - 4000,
    };
    let mut packets: Vec<_> = s.frame(frame_payloads(true, 0));
    for n in 1..6 {
        packets.extend(s.frame(frame_payloads(false, n)));
    }
    // Swap neighbours and move one packet three places later.
    packets.swap(1, 2);
    packets.swap(5, 6);
    let moved = packets.remove(8);
    packets.insert(11, moved);
    push_all(&mut d, &packets);
    d.flush();
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 6);
    assert_eq!(d.stats().frames_dropped, 0);
    assert_eq!(d.stats().packets_lost, 0);
    // Timestamps across the 32-bit wrap stay monotonic.
    assert!(aus.windows(2).all(|w| w[1].ts == w[0].ts + 3000));
    assert_eq!(aus[5].data, avcc(&[&slice(1505)]));
}

#[test]
fn duplicates_and_late_packets_are_ignored() {
    let mut d = H264Depacketizer::new();
    let mut s = Sender { seq: 1, ts: 0 };
    let frame = s.frame(frame_payloads(true, 0));
    push_all(&mut d, &frame);
    push_all(&mut d, &frame[..2]);
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 1);
    assert_eq!(d.stats().packets_late, 2);
}

#[test]
fn a_missing_marker_ends_the_frame_at_the_next_timestamp() {
    let mut d = H264Depacketizer::new();
    d.push(
        1,
        0,
        false,
        Bytes::from(stap(&[&SPS_NAL, &PPS_NAL, &idr(5)])),
    );
    d.push(2, 3000, true, Bytes::from(slice(5)));
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 2);
    assert!(aus[0].keyframe);
}

#[test]
fn malformed_payloads_drop_the_frame() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],                                         // empty
        vec![0xe5, 0x88],                               // forbidden bit
        vec![0x78, 0x00, 0x09, 0x67],                   // STAP-A size past the end
        vec![0x78, 0x00],                               // STAP-A cut inside a size
        vec![0x7c, 0x05, 0x01, 0x02],                   // FU-A middle without a start
        vec![0x7c],                                     // FU-A without header
        vec![0x7c, 0xc5, 0x01],                         // FU-A with both S and E
        vec![0x79, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88], // STAP-B
        vec![0x7d, 0x85, 0x00, 0x00],                   // FU-B
    ];
    for bad in cases {
        let mut d = H264Depacketizer::new();
        d.push(1, 0, false, Bytes::from(bad.clone()));
        d.push(2, 0, true, Bytes::from(idr(4)));
        d.push(3, 3000, true, Bytes::from(slice(4)));
        let aus = drain(&mut d);
        assert_eq!(aus.len(), 1, "{bad:02x?}");
        assert_eq!(aus[0].data, avcc(&[&slice(4)]), "{bad:02x?}");
        assert_eq!(d.stats().frames_dropped, 1, "{bad:02x?}");
    }
    // Reserved types 30 and 31 (and 0) are ignored, not fatal (RFC 6184 §5.2).
    let mut d = H264Depacketizer::new();
    d.push(1, 0, false, Bytes::from_static(&[0x1e, 0x00]));
    d.push(2, 0, true, Bytes::from(idr(4)));
    assert_eq!(drain(&mut d).len(), 1);
}

#[test]
fn garbage_never_panics() {
    let mut d = H264Depacketizer::new();
    let mut state = 0x9e37_79b9_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for _ in 0..50_000 {
        let r = next();
        let len = (r % 40) as usize;
        let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = payload.first_mut() {
            *first = [0x78, 0x7c, 0x65, 0x41, 0x67, *first][(r >> 29) as usize % 6];
        }
        let seq = (next() % 64) as u16;
        let ts = next() % 9000;
        d.push(seq, ts, r & 1 == 0, Bytes::from(payload));
        while d.poll().is_some() {}
    }
    d.flush();
    let stats = d.stats();
    assert!(stats.malformed > 0 && stats.packets_late > 0, "{stats:?}");
}
