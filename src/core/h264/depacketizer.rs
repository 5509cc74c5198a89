//! RFC 6184 depacketizer on the HLS/recording path (`room::TrackHub` -> `egress::hls` tap ->
//! `core::fmp4`): reorders RTP packets, reassembles single NAL units, STAP-A and FU-A
//! (packetization-mode 1) into access units ended by the marker bit, in AVCC form. Loss drops
//! the damaged frame, never the stream; SPS/PPS are remembered and put before every IDR. Pure:
//! no I/O, no clock; bad input is counted, never a panic.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::nal::{AUD, FU_A, FU_B, IDR, PPS, SPS, STAP_A, STAP_B, forbidden_bit, nal_type};
use crate::core::rtp::{SeqUnwrapper, TimestampUnwrapper};

/// Packets held to put reordered packets back in sequence; a hole still open when this many
/// later packets have arrived is declared lost.
pub const REORDER_WINDOW: usize = 8;
/// Largest access unit accepted (bytes); a bigger one is treated as garbage and dropped.
pub const MAX_ACCESS_UNIT: usize = 8 * 1024 * 1024;

/// One coded picture: every NAL unit of one RTP timestamp (RFC 6184 §5.1), in AVCC form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Extended (unwrapped) RTP timestamp, 90 kHz.
    pub ts: u64,
    /// NAL units, each preceded by its 4-byte big-endian length (ISO/IEC 14496-15 §5.3.2).
    /// An IDR access unit always starts with the current SPS and PPS when they are known.
    pub data: Vec<u8>,
    /// The access unit holds an IDR slice: a decoder can start here.
    pub keyframe: bool,
    /// The SPS or PPS differs from the previous access unit's (a new `avcC` is needed).
    pub parameter_sets_changed: bool,
}

/// Counters of one depacketizer, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Access units produced.
    pub frames: u64,
    /// Frames dropped because a packet was lost or the payload was malformed.
    pub frames_dropped: u64,
    /// Sequence numbers never received.
    pub packets_lost: u64,
    /// Packets that arrived after their place was given up, or twice.
    pub packets_late: u64,
    /// Payloads that broke RFC 6184 (truncated STAP-A, FU-A without start, ...).
    pub malformed: u64,
}

#[derive(Debug)]
struct Packet {
    ts: u32,
    marker: bool,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct Frame {
    ts: u64,
    nals: Vec<Bytes>,
    size: usize,
    broken: bool,
    /// The FU-A NAL unit being reassembled (RFC 6184 §5.8).
    fu: Option<Vec<u8>>,
}

/// RTP payloads in, access units out (RFC 6184 §5.6-§5.8, packetization-mode 1).
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    seq: SeqUnwrapper,
    ts: TimestampUnwrapper,
    next: Option<u64>,
    pending: BTreeMap<u64, Packet>,
    frame: Option<Frame>,
    /// A hole was declared lost; the next frame to start cannot be trusted either.
    after_gap: bool,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    params_changed: bool,
    out: VecDeque<AccessUnit>,
    keyframe_wanted: bool,
    stats: DepacketizerStats,
}

impl H264Depacketizer {
    /// A depacketizer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one RTP packet: its sequence number, timestamp, marker bit and payload. Complete
    /// access units become available from [`H264Depacketizer::poll`].
    pub fn push(&mut self, seq: u16, ts: u32, marker: bool, payload: Bytes) {
        let ext = self.seq.unwrap(seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next || self.pending.contains_key(&ext) {
            self.stats.packets_late += 1;
            return;
        }
        self.pending.insert(
            ext,
            Packet {
                ts,
                marker,
                payload,
            },
        );
        self.drain(false);
    }

    /// Gives up on every hole and assembles what is buffered (end of stream).
    pub fn flush(&mut self) {
        self.drain(true);
        if let Some(frame) = self.frame.take() {
            // Without its marker the last frame may be incomplete: count it as dropped.
            self.drop_frame(frame);
        }
    }

    /// The next complete access unit, in decoding order.
    pub fn poll(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }

    /// True once since the last call when a frame was dropped: the decoder needs an IDR.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The last sequence parameter set seen (NAL header included).
    pub fn sps(&self) -> Option<&Bytes> {
        self.sps.as_ref()
    }

    /// The last picture parameter set seen (NAL header included).
    pub fn pps(&self) -> Option<&Bytes> {
        self.pps.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    fn drain(&mut self, give_up: bool) {
        loop {
            let Some(next) = self.next else { return };
            if let Some(packet) = self.pending.remove(&next) {
                self.next = Some(next + 1);
                self.assemble(packet);
                continue;
            }
            if self.pending.len() > REORDER_WINDOW || (give_up && !self.pending.is_empty()) {
                let first = *self.pending.keys().next().expect("pending is not empty");
                self.stats.packets_lost += first - next;
                self.next = Some(first);
                self.on_gap();
                continue;
            }
            return;
        }
    }

    fn on_gap(&mut self) {
        if let Some(frame) = self.frame.as_mut() {
            frame.broken = true;
        }
        self.after_gap = true;
    }

    fn assemble(&mut self, packet: Packet) {
        let ts = self.ts.unwrap(packet.ts);
        if self.frame.as_ref().is_some_and(|f| f.ts != ts) {
            // A new timestamp without the previous marker: RFC 6184 §5.1 allows a lost or
            // missing marker; the previous frame ends here.
            let frame = self.frame.take().expect("checked above");
            self.finish(frame);
        }
        let after_gap = std::mem::take(&mut self.after_gap);
        let frame = self.frame.get_or_insert_with(|| Frame {
            ts,
            broken: after_gap,
            ..Frame::default()
        });
        if !parse_payload(frame, &packet.payload) {
            frame.broken = true;
            self.stats.malformed += 1;
        }
        if frame.size > MAX_ACCESS_UNIT {
            frame.broken = true;
        }
        if packet.marker {
            let frame = self.frame.take().expect("inserted above");
            self.finish(frame);
        }
    }

    fn drop_frame(&mut self, frame: Frame) {
        if !frame.nals.is_empty() || frame.fu.is_some() || frame.broken {
            self.stats.frames_dropped += 1;
            self.keyframe_wanted = true;
        }
    }

    fn finish(&mut self, frame: Frame) {
        if frame.broken || frame.fu.is_some() {
            self.drop_frame(frame);
            return;
        }
        let mut keyframe = false;
        let mut has_sps = false;
        let mut has_pps = false;
        for nal in &frame.nals {
            match nal_type(nal[0]) {
                SPS => {
                    has_sps = true;
                    if self.sps.as_ref() != Some(nal) {
                        self.params_changed |= self.sps.is_some();
                        self.sps = Some(nal.clone());
                    }
                }
                PPS => {
                    has_pps = true;
                    if self.pps.as_ref() != Some(nal) {
                        self.params_changed |= self.pps.is_some();
                        self.pps = Some(nal.clone());
                    }
                }
                IDR => keyframe = true,
                _ => {}
            }
        }
        let mut data = Vec::with_capacity(frame.size + 4 * frame.nals.len() + 64);
        if keyframe {
            // RFC 6184 leaves parameter sets out of band; a decoder joining at this IDR needs them.
            if !has_sps && let Some(sps) = &self.sps {
                put_nal(&mut data, sps);
            }
            if !has_pps && let Some(pps) = &self.pps {
                put_nal(&mut data, pps);
            }
        }
        for nal in &frame.nals {
            let kind = nal_type(nal[0]);
            // Access unit delimiters carry nothing a sample needs; parameter sets only travel
            // in front of IDRs (and in the avcC).
            if kind == AUD || (!keyframe && (kind == SPS || kind == PPS)) {
                continue;
            }
            put_nal(&mut data, nal);
        }
        if data.is_empty() {
            return;
        }
        self.stats.frames += 1;
        let parameter_sets_changed = std::mem::take(&mut self.params_changed);
        self.out.push_back(AccessUnit {
            ts: frame.ts,
            data,
            keyframe,
            parameter_sets_changed,
        });
    }
}

fn put_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    out.extend_from_slice(nal);
}

/// Adds the NAL units of one payload to `frame`; false when the payload is malformed.
fn parse_payload(frame: &mut Frame, payload: &Bytes) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    if forbidden_bit(header) {
        // RFC 6184 §5.3: F=1 marks a NAL unit known to contain errors.
        return false;
    }
    match nal_type(header) {
        1..=23 => {
            if frame.fu.is_some() {
                return false;
            }
            add_nal(frame, payload.clone());
            true
        }
        STAP_A => {
            if frame.fu.is_some() {
                return false;
            }
            // RFC 6184 §5.7.1: 16-bit size, then the NAL unit, repeated.
            let mut offset = 1;
            let mut units = 0;
            while offset < payload.len() {
                let Some(size) = payload.get(offset..offset + 2) else {
                    return false;
                };
                let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
                let start = offset + 2;
                let end = start + size;
                if size == 0 || end > payload.len() || forbidden_bit(payload[start]) {
                    return false;
                }
                add_nal(frame, payload.slice(start..end));
                units += 1;
                offset = end;
            }
            units > 0
        }
        FU_A => {
            // RFC 6184 §5.8: FU indicator, FU header (S, E, R, type), fragment.
            let Some(&fu_header) = payload.get(1) else {
                return false;
            };
            let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
            let fragment = &payload[2..];
            if start {
                if frame.fu.is_some() || end {
                    return false;
                }
                let mut nal = Vec::with_capacity(fragment.len() * 4 + 1);
                nal.push((header & 0xe0) | nal_type(fu_header));
                nal.extend_from_slice(fragment);
                frame.size += nal.len();
                frame.fu = Some(nal);
                return true;
            }
            let Some(nal) = frame.fu.as_mut() else {
                // A middle or end fragment whose start was never seen.
                return false;
            };
            nal.extend_from_slice(fragment);
            frame.size += fragment.len();
            if end {
                let nal = frame.fu.take().expect("checked above");
                frame.size -= nal.len();
                add_nal(frame, Bytes::from(nal));
            }
            true
        }
        // Interleaved-mode types (STAP-B, MTAP16/24, FU-B) are not allowed in mode 1.
        STAP_B | 26 | 27 | FU_B => false,
        // Type 0 and 30-31 are unspecified: RFC 6184 §5.2 says to ignore them.
        _ => true,
    }
}

fn add_nal(frame: &mut Frame, nal: Bytes) {
    frame.size += nal.len();
    frame.nals.push(nal);
}

#[cfg(test)]
#[path = "depacketizer_tests.rs"]
mod tests;
