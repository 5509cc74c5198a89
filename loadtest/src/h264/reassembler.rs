//! Test/load client: rebuilds H.264 access units from received RTP (RFC 6184 single NAL, STAP-A,
//! FU-A) for the decoding WHEP viewer. Pure state machine, no I/O.
//!
//! Rules:
//! - An access unit is all packets sharing one RTP timestamp; it ends at the marker bit
//!   (RFC 6184 §5.1). It is complete when every sequence number from the one after the previous
//!   frame's marker up to this frame's marker has arrived.
//! - Reordering inside a frame is repaired (packets are sorted by extended sequence number before
//!   depacketizing). A packet that arrives after a newer frame has started is *late*: its frame
//!   has already been given up.
//! - A frame that cannot be completed is dropped, never handed to the decoder, and after any drop
//!   the reassembler discards frames until the next complete IDR access unit, since P-frames
//!   referencing a lost picture would only decode to garbage. The stream start is treated the
//!   same way: output begins at the first complete IDR.

use bytes::Bytes;

use super::{NAL_FU_A, NAL_STAP_A, START_CODE, nal_type};

/// Packets buffered for one frame before it is given up as unterminated.
const MAX_PACKETS_PER_FRAME: usize = 8192;

/// One complete, decodable access unit.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// The access unit as an Annex-B byte stream (4-byte start codes).
    pub data: Bytes,
    /// Whether it contains an IDR slice.
    pub keyframe: bool,
    /// The RTP timestamp shared by its packets.
    pub rtp_timestamp: u32,
}

/// Running counts of what the reassembler did with the frames it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblerStats {
    /// Frames completed and returned.
    pub frames_complete: u64,
    /// Frames given up because a packet never arrived (or arrived too late).
    pub frames_incomplete: u64,
    /// Complete frames discarded while waiting for an IDR after a loss or at stream start.
    pub frames_skipped_waiting_idr: u64,
    /// Frames whose payloads broke RFC 6184 (bad FU-A sequence, truncated STAP-A, FU-B...).
    pub frames_malformed: u64,
    /// Packets that arrived after their frame had been finalized.
    pub late_packets: u64,
}

/// RTP-to-access-unit reassembler for one H.264 stream (one SSRC).
#[derive(Debug)]
pub struct Reassembler {
    pending: Vec<(u64, Bytes)>,
    pending_ts: Option<u32>,
    marker_seq: Option<u64>,
    last_end_seq: Option<u64>,
    waiting_for_idr: bool,
    stats: ReassemblerStats,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Reassembler {
    /// A reassembler waiting for the first IDR.
    pub fn new() -> Self {
        Self {
            pending: Vec::new(),
            pending_ts: None,
            marker_seq: None,
            last_end_seq: None,
            waiting_for_idr: true,
            stats: ReassemblerStats::default(),
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> ReassemblerStats {
        self.stats
    }

    /// Whether output is suspended until the next complete IDR access unit.
    pub fn waiting_for_idr(&self) -> bool {
        self.waiting_for_idr
    }

    /// Forgets all state (e.g. after an SSRC change): waits for the next IDR again.
    pub fn reset(&mut self) {
        let stats = self.stats;
        *self = Self::new();
        self.stats = stats;
    }

    /// Feeds one packet; `ext_seq` is its extended (wrap-free) sequence number. Returns an
    /// access unit when this packet completed one that may be decoded.
    pub fn push(
        &mut self,
        ext_seq: u64,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Option<AccessUnit> {
        if self.last_end_seq.is_some_and(|end| ext_seq <= end) {
            self.stats.late_packets += 1;
            return None;
        }
        match self.pending_ts {
            Some(ts) if ts == timestamp => {}
            Some(ts) if (timestamp.wrapping_sub(ts) as i32) < 0 => {
                self.stats.late_packets += 1;
                return None;
            }
            _ => {
                self.abandon_pending();
                self.pending_ts = Some(timestamp);
            }
        }
        if self.pending.iter().any(|(seq, _)| *seq == ext_seq) {
            return None; // duplicate
        }
        self.pending.push((ext_seq, payload));
        if marker {
            self.marker_seq = Some(ext_seq);
        }
        if self.pending.len() > MAX_PACKETS_PER_FRAME {
            self.abandon_pending();
            return None;
        }
        self.try_complete()
    }

    /// Gives up the frame being collected (if any) as incomplete.
    fn abandon_pending(&mut self) {
        if !self.pending.is_empty() {
            self.stats.frames_incomplete += 1;
            self.waiting_for_idr = true;
            // If its marker arrived we still know where the next frame starts; otherwise the
            // next frame must prove its start by beginning with a whole NAL unit.
            self.last_end_seq = self.marker_seq;
        }
        self.pending.clear();
        self.pending_ts = None;
        self.marker_seq = None;
    }

    fn try_complete(&mut self) -> Option<AccessUnit> {
        let marker = self.marker_seq?;
        self.pending.sort_unstable_by_key(|(seq, _)| *seq);
        self.pending.retain(|(seq, _)| *seq <= marker);
        let (first, first_payload) = self.pending.first()?;
        let starts_right = match self.last_end_seq {
            Some(end) => *first == end + 1,
            None => is_nal_start(first_payload),
        };
        let contiguous = (marker - first + 1) as usize == self.pending.len();
        if !(starts_right && contiguous) {
            return None; // a hole: wait for a late packet or the next frame
        }
        let timestamp = self.pending_ts.unwrap_or_default();
        let result = depacketize(&self.pending);
        self.pending.clear();
        self.pending_ts = None;
        self.marker_seq = None;
        self.last_end_seq = Some(marker);
        let Ok(data) = result else {
            self.stats.frames_malformed += 1;
            self.waiting_for_idr = true;
            return None;
        };
        let keyframe = super::contains_idr(&data);
        if self.waiting_for_idr && !keyframe {
            self.stats.frames_skipped_waiting_idr += 1;
            return None;
        }
        self.waiting_for_idr = false;
        self.stats.frames_complete += 1;
        Some(AccessUnit {
            data: Bytes::from(data),
            keyframe,
            rtp_timestamp: timestamp,
        })
    }
}

/// Whether a payload begins a NAL unit (anything but an FU-A continuation).
fn is_nal_start(payload: &[u8]) -> bool {
    match payload {
        [] => false,
        [h, rest @ ..] if nal_type(*h) == NAL_FU_A => rest.first().is_some_and(|fu| fu & 0x80 != 0),
        _ => true,
    }
}

/// Why a frame's payloads could not be turned into Annex-B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepacketizeError {
    /// An empty RTP payload.
    Empty,
    /// A STAP-A whose length fields overrun the payload (RFC 6184 §5.7.1).
    TruncatedStapA,
    /// FU-A fragments out of order: continuation without start, start inside a unit, or a unit
    /// never ended (RFC 6184 §5.8).
    BrokenFragmentation,
    /// A packet type packetization-mode 1 does not allow (STAP-B, MTAP, FU-B, reserved).
    Unsupported(u8),
}

/// Concatenates the payloads of one frame (sorted by sequence number) into Annex-B.
pub fn depacketize(packets: &[(u64, Bytes)]) -> Result<Vec<u8>, DepacketizeError> {
    let capacity = packets.iter().map(|(_, p)| p.len() + 8).sum();
    let mut out = Vec::with_capacity(capacity);
    let mut in_fragment = false;
    for (_, payload) in packets {
        let Some(&header) = payload.first() else {
            return Err(DepacketizeError::Empty);
        };
        match nal_type(header) {
            1..=23 => {
                if in_fragment {
                    return Err(DepacketizeError::BrokenFragmentation);
                }
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(payload);
            }
            NAL_STAP_A => {
                if in_fragment {
                    return Err(DepacketizeError::BrokenFragmentation);
                }
                let mut rest = &payload[1..];
                while !rest.is_empty() {
                    let [hi, lo, body @ ..] = rest else {
                        return Err(DepacketizeError::TruncatedStapA);
                    };
                    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                    let Some(nal) = body.get(..len).filter(|n| !n.is_empty()) else {
                        return Err(DepacketizeError::TruncatedStapA);
                    };
                    out.extend_from_slice(&START_CODE);
                    out.extend_from_slice(nal);
                    rest = &body[len..];
                }
            }
            NAL_FU_A => {
                let Some(&fu) = payload.get(1) else {
                    return Err(DepacketizeError::BrokenFragmentation);
                };
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start == in_fragment {
                    return Err(DepacketizeError::BrokenFragmentation);
                }
                if start {
                    out.extend_from_slice(&START_CODE);
                    out.push((header & 0xe0) | nal_type(fu));
                }
                out.extend_from_slice(&payload[2..]);
                in_fragment = !end;
            }
            other => return Err(DepacketizeError::Unsupported(other)),
        }
    }
    if in_fragment {
        return Err(DepacketizeError::BrokenFragmentation);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "reassembler_tests.rs"]
mod tests;
