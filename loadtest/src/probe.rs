//! Test/load client: the forwarding-latency probe a publisher and its viewers share when they
//! run in one process. The publisher notes the instant it hands each video packet to its
//! WebRTC stack, keyed by a fingerprint of the RTP payload; a viewer looks the payload it
//! received up and gets the packet's trip through the server. Pure, no I/O, lock-free.
//!
//! Why the payload and not a header field: an SFU rewrites SSRC, sequence number and timestamp
//! per viewer (onair does, RFC 7667 §3.7), but it forwards the payload bytes untouched — that
//! is what makes it a *selective forwarding* unit — so a fingerprint of the payload names the
//! same packet on both sides of any SFU, with nothing added to the stream. The fingerprint
//! mixes the length, the first 64 bytes (FU-A indicator and header, then entropy-coded slice
//! data) and the last 16 bytes. Packets that repeat (SPS/PPS, a looped video coming round
//! again) are matched to their most recent send, which is right as long as the trip takes less
//! than the repeat period (seconds). A server that re-packetizes (other MTU, aggregation) has
//! other payloads: its packets show up as unmatched instead of giving wrong figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default table size: 2^18 slots (2 MiB), minutes of video at 2.5 Mbit/s before a slot is
/// reused by a different packet.
const DEFAULT_SLOTS_LOG2: u32 = 18;
/// Payload bytes hashed from the start.
const HEAD: usize = 64;
/// Payload bytes hashed from the end.
const TAIL: usize = 16;

/// 64-bit fingerprint of an RTP payload: length, first 64 and last 16 bytes.
pub fn fingerprint(payload: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(29);
    let mut h = mix(K, payload.len() as u64);
    let head = &payload[..payload.len().min(HEAD)];
    let tail = &payload[payload.len().saturating_sub(TAIL)..];
    for chunk in head.chunks(8).chain(tail.chunks(8)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(word));
    }
    h ^ (h >> 32)
}

/// The send log: a direct-mapped table of `tag << 32 | send instant in µs`, one atomic word
/// per slot, so the publisher's store and a viewer's load can never tear.
#[derive(Debug)]
pub struct LatencyProbe {
    slots: Box<[AtomicU64]>,
    mask: u64,
    epoch: Instant,
}

impl Default for LatencyProbe {
    fn default() -> Self {
        Self::with_slots_log2(DEFAULT_SLOTS_LOG2)
    }
}

impl LatencyProbe {
    /// A probe with the default table (2^18 slots).
    pub fn new() -> Self {
        Self::default()
    }

    /// A probe with `2^bits` slots (`bits` clamped to 8..=24).
    pub fn with_slots_log2(bits: u32) -> Self {
        let n = 1usize << bits.clamp(8, 24);
        Self {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n as u64 - 1,
            epoch: Instant::now(),
        }
    }

    /// Microseconds since the probe was made, modulo 2^32 (71 minutes; differences are taken
    /// with wrapping arithmetic).
    fn now_us(&self) -> u32 {
        self.epoch.elapsed().as_micros() as u32
    }

    fn slot_and_tag(&self, payload: &[u8]) -> (&AtomicU64, u64) {
        let fp = fingerprint(payload);
        let slot = &self.slots[(fp & self.mask) as usize];
        // The tag is never 0, so an empty slot never matches.
        let tag = (fp >> 32).max(1);
        (slot, tag)
    }

    /// Publisher side: `payload` is being sent now.
    pub fn record_send(&self, payload: &[u8]) {
        let (slot, tag) = self.slot_and_tag(payload);
        slot.store(tag << 32 | u64::from(self.now_us()), Ordering::Release);
    }

    /// Viewer side: how long ago `payload` was sent, if this probe saw it sent.
    pub fn elapsed_since_send(&self, payload: &[u8]) -> Option<Duration> {
        let (slot, tag) = self.slot_and_tag(payload);
        let entry = slot.load(Ordering::Acquire);
        if entry >> 32 != tag {
            return None;
        }
        let sent = entry as u32;
        Some(Duration::from_micros(u64::from(
            self.now_us().wrapping_sub(sent),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_packets_apart() {
        let a: Vec<u8> = (0..1200).map(|i| (i * 7 % 251) as u8).collect();
        let mut b = a.clone();
        b[1199] ^= 1; // last byte
        let mut c = a.clone();
        c[3] ^= 1; // early byte
        let d = &a[..1199]; // length
        let fps = [
            fingerprint(&a),
            fingerprint(&b),
            fingerprint(&c),
            fingerprint(d),
        ];
        for i in 0..fps.len() {
            for j in i + 1..fps.len() {
                assert_ne!(fps[i], fps[j], "{i} vs {j}");
            }
        }
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&[]), fingerprint(&[0]));
    }

    #[test]
    fn a_sent_payload_is_found_and_others_are_not() {
        let probe = LatencyProbe::with_slots_log2(8);
        let sent = [0x7c, 0x85, 1, 2, 3, 4];
        assert!(probe.elapsed_since_send(&sent).is_none());
        probe.record_send(&sent);
        std::thread::sleep(Duration::from_millis(2));
        let trip = probe.elapsed_since_send(&sent).expect("found");
        assert!(trip >= Duration::from_millis(2), "{trip:?}");
        assert!(trip < Duration::from_secs(5), "{trip:?}");
        assert!(probe.elapsed_since_send(&[0x7c, 0x05, 9]).is_none());
    }
}
