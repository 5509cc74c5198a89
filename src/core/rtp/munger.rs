//! Per-viewer, per-track RTP header rewriting on the egress path (`room::Track` ->
//! `egress::Viewer` -> WHEP PeerConnection): one continuous SSRC/seq/timestamp space across
//! publisher changes. Pure: no I/O, time is passed in, no allocation per packet.

use std::time::Instant;

use super::seq::SeqUnwrapper;
use super::sources::{SourceEvent, SourceTracker};

/// Fixed output parameters of one viewer's track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MungerConfig {
    /// SSRC the viewer sees (RFC 3550 §5.1), constant for the life of the viewer.
    pub out_ssrc: u32,
    /// Payload type negotiated on the viewer's connection.
    pub out_pt: u8,
    /// RTP clock rate of the track (90000 for video, 48000 for Opus).
    pub clock_rate: u32,
    /// Output sequence number of the first forwarded packet (RFC 3550 §5.1: random).
    pub first_seq: u16,
    /// Output timestamp of the first forwarded packet (RFC 3550 §5.1: random).
    pub first_ts: u32,
}

/// The header fields to write on a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Output SSRC.
    pub ssrc: u32,
    /// Output sequence number.
    pub seq: u16,
    /// Output RTP timestamp.
    pub ts: u32,
    /// Output payload type.
    pub pt: u8,
}

/// Offset mapping from the current source's numbering to the output numbering.
#[derive(Debug, Clone)]
struct Mapping {
    seq: SeqUnwrapper,
    first_in_ext: u64,
    first_out_ext: u64,
    /// `out_seq = in_seq + seq_offset` (mod 2^16).
    seq_offset: u16,
    /// `out_ts = in_ts + ts_offset` (mod 2^32).
    ts_offset: u32,
}

/// The newest (highest sequence) packet forwarded so far, across all sources.
#[derive(Debug, Clone, Copy)]
struct Newest {
    out_ext: u64,
    ts: u32,
    at: Instant,
}

/// Rewrites SSRC, sequence number, timestamp and payload type so that a viewer sees one
/// continuous RTP stream even when the upstream publisher changes (RFC 3550 §5.1 header fields,
/// rewritten as a Selective Forwarding Middlebox does, RFC 7667 §3.7).
///
/// Within one source the mapping is a constant offset, so reordering, gaps (loss) and equal
/// timestamps of one frame pass through unchanged in shape and the viewer's NACKs stay
/// meaningful. A new source continues the output: next seq = newest seq + 1, and the timestamp
/// advances by the wall time since the newest packet was forwarded (at least one tick).
#[derive(Debug, Clone)]
pub struct RtpMunger {
    cfg: MungerConfig,
    sources: SourceTracker,
    mapping: Option<Mapping>,
    newest: Option<Newest>,
}

impl RtpMunger {
    /// A munger that has forwarded nothing yet.
    pub fn new(cfg: MungerConfig) -> Self {
        Self {
            cfg,
            sources: SourceTracker::default(),
            mapping: None,
            newest: None,
        }
    }

    /// Rewrite one packet from upstream `source` (e.g. a per-publisher-session id).
    ///
    /// A change of source starts a new mapping that continues the output. Returns `None` to
    /// drop: packets older than the first packet of the current source (by extended sequence
    /// number), and packets from a source that has been replaced by a newer one.
    pub fn rewrite(&mut self, source: u64, seq: u16, ts: u32, now: Instant) -> Option<Rewritten> {
        match self.sources.observe(source) {
            SourceEvent::Retired => return None,
            SourceEvent::New => self.start_mapping(seq, ts, now),
            SourceEvent::Current => {}
        }
        let mapping = self.mapping.as_mut()?;
        let in_ext = mapping.seq.unwrap(seq);
        let rel = in_ext.checked_sub(mapping.first_in_ext)?;
        let out_ext = mapping.first_out_ext.saturating_add(rel);
        let out_ts = ts.wrapping_add(mapping.ts_offset);
        if self.newest.is_none_or(|n| out_ext > n.out_ext) {
            self.newest = Some(Newest {
                out_ext,
                ts: out_ts,
                at: now,
            });
        }
        Some(Rewritten {
            ssrc: self.cfg.out_ssrc,
            seq: seq.wrapping_add(mapping.seq_offset),
            ts: out_ts,
            pt: self.cfg.out_pt,
        })
    }

    /// Map an output sequence number back to the current source's input sequence number, to
    /// answer a viewer's NACK (RFC 4585 §6.2.1) from the track's retransmission cache.
    ///
    /// `None` if `out_seq` belongs to an earlier source, is newer than anything forwarded, or
    /// lies more than half the sequence space back. Sequence numbers lost upstream inside the
    /// current source's range do map (an upstream retransmission may have filled the cache).
    pub fn source_seq(&self, out_seq: u16) -> Option<u16> {
        let mapping = self.mapping.as_ref()?;
        let newest = self.newest?;
        let back = u64::from((newest.out_ext as u16).wrapping_sub(out_seq));
        let span = newest.out_ext.checked_sub(mapping.first_out_ext)?;
        if back > span || back >= 1 << 15 {
            return None;
        }
        Some(out_seq.wrapping_sub(mapping.seq_offset))
    }

    /// The newest forwarded packet's output `(seq, ts)`: the highest sequence number so far.
    pub fn last_out(&self) -> Option<(u16, u32)> {
        self.newest.map(|n| (n.out_ext as u16, n.ts))
    }

    /// The upstream source currently mapped, if any packet has been seen.
    pub fn current_source(&self) -> Option<u64> {
        self.sources.current()
    }

    /// The configuration this munger was created with.
    pub fn config(&self) -> &MungerConfig {
        &self.cfg
    }

    fn start_mapping(&mut self, seq: u16, ts: u32, now: Instant) {
        let (first_out_ext, first_out_ts) = match self.newest {
            None => (
                (1u64 << 16) + u64::from(self.cfg.first_seq),
                self.cfg.first_ts,
            ),
            Some(n) => {
                let ticks = ticks_since(n.at, now, self.cfg.clock_rate).max(1);
                (n.out_ext.saturating_add(1), n.ts.wrapping_add(ticks))
            }
        };
        let mut unwrapper = SeqUnwrapper::new();
        let first_in_ext = unwrapper.unwrap(seq);
        self.mapping = Some(Mapping {
            seq: unwrapper,
            first_in_ext,
            first_out_ext,
            seq_offset: (first_out_ext as u16).wrapping_sub(seq),
            ts_offset: first_out_ts.wrapping_sub(ts),
        });
    }
}

/// Wall time from `from` to `to` in RTP clock ticks, modulo 2^32 (RFC 3550 §5.1: timestamps
/// advance with the sampling clock). Zero if `to` is not after `from`.
fn ticks_since(from: Instant, to: Instant, clock_rate: u32) -> u32 {
    let nanos = to.saturating_duration_since(from).as_nanos();
    let ticks = nanos.saturating_mul(u128::from(clock_rate)) / 1_000_000_000;
    ticks as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rtp::TimestampUnwrapper;
    use std::time::Duration;

    const CFG: MungerConfig = MungerConfig {
        out_ssrc: 0xdead_beef,
        out_pt: 102,
        clock_rate: 90_000,
        first_seq: 65_533,
        first_ts: u32::MAX - 4000,
    };

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Deterministic pseudo-random numbers (64-bit LCG) for randomised bases.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn first_packet_uses_configured_bases_and_identity() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        assert_eq!(m.last_out(), None);
        let r = m.rewrite(1, 1234, 777, t0).expect("forwarded");
        assert_eq!(
            r,
            Rewritten {
                ssrc: 0xdead_beef,
                seq: 65_533,
                ts: u32::MAX - 4000,
                pt: 102
            }
        );
        assert_eq!(m.last_out(), Some((65_533, u32::MAX - 4000)));
        assert_eq!(m.current_source(), Some(1));
    }

    #[test]
    fn gaps_reordering_and_frame_timestamps_keep_their_shape() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        let a = m.rewrite(9, 65_534, 1000, t0).expect("a");
        let b = m.rewrite(9, 65_535, 1000, t0).expect("b"); // same frame
        let d = m.rewrite(9, 3, 4000, at(t0, 33)).expect("d"); // 0, 1, 2 lost
        let late = m
            .rewrite(9, 1, 4000, at(t0, 34))
            .expect("late one is forwarded");
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(b.ts, a.ts, "packets of one frame keep one timestamp");
        assert_eq!(d.seq, a.seq.wrapping_add(5), "a gap of 3 stays a gap of 3");
        assert_eq!(d.ts, a.ts.wrapping_add(3000));
        assert_eq!(late.seq, a.seq.wrapping_add(3));
        assert_eq!(
            m.last_out(),
            Some((d.seq, d.ts)),
            "a late packet is not the newest"
        );
    }

    #[test]
    fn switches_continue_the_output_and_advance_by_wall_time() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        let mut seqs = SeqUnwrapper::new();
        let mut tss = TimestampUnwrapper::new();
        // (source, seq base, ts base, start ms): bases near the wrap points and far apart.
        let plan = [
            (10u64, 65_530u16, u32::MAX - 6000, 0u64),
            (11, 2, 17, 2_200),
            (12, 40_000, 5, 2_700),
        ];
        let mut prev: Option<(u64, u64, u64)> = None; // (out ext seq, out ext ts, last ms)
        for (source, seq0, ts0, start) in plan {
            for i in 0..20u16 {
                let ms = start + u64::from(i / 2) * 33;
                let ts = ts0.wrapping_add(u32::from(i / 2) * 2970);
                let r = m
                    .rewrite(source, seq0.wrapping_add(i), ts, at(t0, ms))
                    .expect("fwd");
                let (es, et) = (seqs.unwrap(r.seq), tss.unwrap(r.ts));
                if let Some((ps, pt, pms)) = prev {
                    assert_eq!(
                        es,
                        ps + 1,
                        "output seq is continuous (source {source}, i {i})"
                    );
                    if i == 0 {
                        let expect = (start - pms) * 90; // 90 ticks per ms
                        assert!(
                            et > pt && et.abs_diff(pt + expect) <= 1,
                            "ts {et} vs {pt}+{expect}"
                        );
                    } else {
                        assert!(et >= pt);
                    }
                }
                prev = Some((es, et, ms));
            }
        }
    }

    #[test]
    fn two_second_gap_adds_180000_ticks() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        let a = m.rewrite(1, 100, 5000, t0).expect("a");
        let b = m.rewrite(2, 60_000, 123, at(t0, 2000)).expect("b");
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(b.ts.wrapping_sub(a.ts), 180_000);
    }

    #[test]
    fn immediate_switch_still_advances_timestamp() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        let a = m.rewrite(1, 100, 5000, t0).expect("a");
        let b = m.rewrite(2, 100, 5000, t0).expect("b");
        assert_eq!(b.ts.wrapping_sub(a.ts), 1);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "same input seq, new mapping");
    }

    #[test]
    fn stragglers_and_pre_start_packets_are_dropped() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        m.rewrite(1, 500, 0, t0).expect("a");
        m.rewrite(1, 501, 0, t0).expect("a2");
        let b = m.rewrite(2, 9, 0, at(t0, 10)).expect("b");
        assert_eq!(
            m.rewrite(1, 502, 0, at(t0, 11)),
            None,
            "old source straggler"
        );
        assert_eq!(
            m.rewrite(2, 8, 0, at(t0, 11)),
            None,
            "older than the new source's first"
        );
        assert_eq!(
            m.rewrite(2, 65_535, 0, at(t0, 11)),
            None,
            "older, across the wrap"
        );
        let c = m.rewrite(2, 10, 0, at(t0, 12)).expect("b continues");
        assert_eq!(c.seq, b.seq.wrapping_add(1));
        assert_eq!(m.current_source(), Some(2));
    }

    #[test]
    fn source_seq_maps_only_the_current_source() {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(CFG);
        let a = m.rewrite(1, 7, 0, t0).expect("a");
        assert_eq!(m.source_seq(a.seq), Some(7));
        let b0 = m.rewrite(2, 65_534, 0, at(t0, 5)).expect("b0");
        let b3 = m.rewrite(2, 1, 0, at(t0, 6)).expect("b3"); // 65535 and 0 lost upstream
        assert_eq!(m.source_seq(b0.seq), Some(65_534));
        assert_eq!(m.source_seq(b3.seq), Some(1));
        assert_eq!(
            m.source_seq(b0.seq.wrapping_add(2)),
            Some(0),
            "lost seq maps"
        );
        assert_eq!(m.source_seq(a.seq), None, "earlier source");
        assert_eq!(
            m.source_seq(b3.seq.wrapping_add(1)),
            None,
            "never forwarded"
        );
        assert_eq!(RtpMunger::new(CFG).source_seq(1), None);
    }

    #[test]
    fn random_bases_keep_gaps_and_continuity() {
        let t0 = Instant::now();
        let mut rng = Lcg(0x5eed);
        for trial in 0..50 {
            let cfg = MungerConfig {
                first_seq: rng.next() as u16,
                first_ts: rng.next() as u32,
                ..CFG
            };
            let mut m = RtpMunger::new(cfg);
            let mut outs = SeqUnwrapper::new();
            let mut ms = 0u64;
            let mut last_out: Option<u64> = None;
            for source in 0..3u64 {
                let mut seq = rng.next() as u16;
                let ts = rng.next() as u32;
                let mut last_in: Option<u16> = None;
                for _ in 0..(rng.next() % 300 + 1) {
                    ms += 20;
                    let r = m.rewrite(source, seq, ts, at(t0, ms)).expect("in order");
                    let e = outs.unwrap(r.seq);
                    let expected = match (last_out, last_in) {
                        (Some(o), Some(i)) => o + u64::from(seq.wrapping_sub(i)),
                        (Some(o), None) => o + 1,
                        (None, _) => outs.unwrap(cfg.first_seq),
                    };
                    assert_eq!(e, expected, "trial {trial}");
                    last_out = Some(e);
                    last_in = Some(seq);
                    seq = seq.wrapping_add(1 + (rng.next() % 4) as u16); // 0..3 lost
                }
            }
        }
    }
}
