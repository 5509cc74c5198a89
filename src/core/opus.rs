//! Opus on the HLS/recording path (`room::TrackHub` -> `egress::hls` tap -> `core::fmp4`): the
//! TOC byte gives each packet's duration (RFC 6716 §3.1), and [`OpusTimeline`] lays packets on
//! a timeline without holes, filling DTX and loss gaps with empty (PLC) packets so the audio
//! track of a fragment is contiguous. Pure: no I/O, no clock.

use bytes::Bytes;

/// Samples per second of every Opus RTP stream (RFC 7587 §4.1: the RTP clock is 48 kHz).
pub const OPUS_CLOCK: u32 = 48_000;
/// Longest packet RFC 6716 §3.2.5 allows: 120 ms.
pub const MAX_PACKET_SAMPLES: u32 = 5_760;
/// Gaps longer than this are not filled; the timeline jumps instead (a bounded amount of work).
pub const MAX_FILL_SAMPLES: u64 = 60 * OPUS_CLOCK as u64;
/// Pre-skip written in `dOps` (RFC 7845 §4.2 recommends 80 ms of decoder warm-up at most; 312
/// samples is what libopus encoders report at 48 kHz).
pub const PRE_SKIP: u16 = 312;

/// Why an Opus packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    /// A packet without even a TOC byte.
    #[error("empty Opus packet")]
    Empty,
    /// Code 3 packet without its frame-count byte (RFC 6716 §3.2.5).
    #[error("Opus code 3 packet without frame count")]
    MissingFrameCount,
    /// Code 3 packet announcing zero frames.
    #[error("Opus packet with zero frames")]
    ZeroFrames,
    /// More than 120 ms of audio in one packet.
    #[error("Opus packet of {0} samples exceeds 120 ms")]
    TooLong(u32),
}

/// Samples (at 48 kHz) of one frame for a TOC `config` (RFC 6716 §3.1, Table 2).
pub fn frame_samples(config: u8) -> u32 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// Duration in 48 kHz samples of one Opus packet, from its TOC byte and, for code 3, its
/// frame-count byte (RFC 6716 §3.1-§3.2).
pub fn packet_samples(packet: &[u8]) -> Result<u32, OpusError> {
    let &toc = packet.first().ok_or(OpusError::Empty)?;
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet.get(1).ok_or(OpusError::MissingFrameCount)? & 0x3f;
            if count == 0 {
                return Err(OpusError::ZeroFrames);
            }
            u32::from(count)
        }
    };
    let samples = frames * frame_samples(toc >> 3);
    if samples > MAX_PACKET_SAMPLES {
        return Err(OpusError::TooLong(samples));
    }
    Ok(samples)
}

/// One Opus packet placed on the timeline: one fMP4 sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusSample {
    /// Position on the caller's 48 kHz timeline.
    pub pts: u64,
    /// Samples it covers.
    pub duration: u32,
    /// The packet; a filler is a lone TOC byte (a zero-length frame, which decoders conceal).
    pub data: Bytes,
    /// True for packets onair made up to fill a gap.
    pub filler: bool,
}

/// Counters of one timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpusStats {
    /// Packets placed.
    pub packets: u64,
    /// Filler packets inserted.
    pub fillers: u64,
    /// Packets refused (bad TOC) or arriving wholly in the past.
    pub dropped: u64,
}

/// Lays Opus packets end to end on a 48 kHz timeline: jitter under half a packet is absorbed,
/// gaps (DTX, loss) are filled, packets already covered are dropped.
#[derive(Debug, Default)]
pub struct OpusTimeline {
    expected: Option<u64>,
    stereo: bool,
    stats: OpusStats,
}

impl OpusTimeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places one packet whose timestamp, extended to 64 bits (`core::rtp::TimestampUnwrapper`)
    /// and mapped to the caller's timeline, is `ts`; returns the samples to append, fillers
    /// first.
    pub fn push(&mut self, ts: u64, packet: Bytes) -> Result<Vec<OpusSample>, OpusError> {
        let duration = match packet_samples(&packet) {
            Ok(d) => d,
            Err(e) => {
                self.stats.dropped += 1;
                return Err(e);
            }
        };
        let ext = ts;
        self.stereo = packet[0] & 0x04 != 0;
        let mut out = Vec::new();
        let mut pts = ext;
        if let Some(expected) = self.expected {
            let delta = ext as i64 - expected as i64;
            if delta <= -i64::from(duration) {
                self.stats.dropped += 1;
                return Ok(out);
            }
            pts = expected;
            if delta >= i64::from(duration / 2) {
                let gap = delta as u64;
                if gap > MAX_FILL_SAMPLES {
                    pts = ext;
                } else {
                    pts = self.fill(expected, gap, &mut out);
                }
            }
        }
        self.expected = Some(pts + u64::from(duration));
        self.stats.packets += 1;
        out.push(OpusSample {
            pts,
            duration,
            data: packet,
            filler: false,
        });
        Ok(out)
    }

    /// Appends filler samples from `from` through at most `gap` samples, in 2.5 ms steps;
    /// returns where the next real packet goes.
    fn fill(&mut self, from: u64, gap: u64, out: &mut Vec<OpusSample>) -> u64 {
        let mut pts = from;
        let mut left = gap - gap % 120;
        // CELT fullband configs 31, 30, 29, 28: 20, 10, 5, 2.5 ms (RFC 6716 Table 2).
        for (config, size) in [(31u8, 960u64), (30, 480), (29, 240), (28, 120)] {
            while left >= size {
                let toc = (config << 3) | (u8::from(self.stereo) << 2);
                out.push(OpusSample {
                    pts,
                    duration: size as u32,
                    data: Bytes::from(vec![toc]),
                    filler: true,
                });
                self.stats.fillers += 1;
                pts += size;
                left -= size;
            }
        }
        pts
    }

    /// Fillers covering `[expected, until)`, for a track that stopped sending (e.g. a
    /// publisher without audio after one with audio). Returns nothing before the first packet.
    pub fn fill_until(&mut self, until: u64) -> Vec<OpusSample> {
        let mut out = Vec::new();
        if let Some(expected) = self.expected
            && until > expected
        {
            let gap = (until - expected).min(MAX_FILL_SAMPLES);
            let end = self.fill(expected, gap, &mut out);
            self.expected = Some(end);
        }
        out
    }

    /// Where the next packet is expected on the timeline.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// The counters.
    pub fn stats(&self) -> OpusStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toc(config: u8, stereo: bool, code: u8) -> u8 {
        (config << 3) | (u8::from(stereo) << 2) | code
    }

    #[test]
    fn toc_durations_follow_rfc_6716_table_2() {
        let ms = |c: u8| frame_samples(c) * 1000 / 48;
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3)],
            [10_000, 20_000, 40_000, 60_000]
        );
        assert_eq!(
            [ms(12), ms(13), ms(14), ms(15)],
            [10_000, 20_000, 10_000, 20_000]
        );
        assert_eq!(
            [ms(16), ms(17), ms(18), ms(19)],
            [2_500, 5_000, 10_000, 20_000]
        );
        assert_eq!(frame_samples(31), 960);
        // Code 0: one frame; 1 and 2: two; 3: the count byte.
        assert_eq!(packet_samples(&[toc(31, true, 0), 1, 2]), Ok(960));
        assert_eq!(packet_samples(&[toc(1, false, 1), 1, 2]), Ok(1920));
        assert_eq!(packet_samples(&[toc(16, false, 2), 1, 1, 2]), Ok(240));
        assert_eq!(packet_samples(&[toc(19, false, 3), 0x03, 1]), Ok(2880));
        assert_eq!(
            packet_samples(&[toc(19, false, 3), 0x83]),
            Ok(2880),
            "padding bit"
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(packet_samples(&[]), Err(OpusError::Empty));
        assert_eq!(
            packet_samples(&[toc(19, false, 3)]),
            Err(OpusError::MissingFrameCount)
        );
        assert_eq!(
            packet_samples(&[toc(19, false, 3), 0x00]),
            Err(OpusError::ZeroFrames)
        );
        // 7 x 20 ms = 140 ms.
        assert_eq!(
            packet_samples(&[toc(19, false, 3), 7]),
            Err(OpusError::TooLong(6720))
        );
        let mut t = OpusTimeline::new();
        assert!(t.push(0, Bytes::new()).is_err());
        assert_eq!(t.stats().dropped, 1);
    }

    fn packet() -> Bytes {
        Bytes::from(vec![toc(31, true, 0), 0xaa, 0xbb])
    }

    #[test]
    fn a_steady_stream_is_contiguous() {
        let mut t = OpusTimeline::new();
        let mut ts = u64::from(u32::MAX) - 2 * 960 + 1;
        let mut all = Vec::new();
        for _ in 0..6 {
            all.extend(t.push(ts, packet()).unwrap());
            ts += 960;
        }
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[1].pts == w[0].pts + 960));
        assert!(all.iter().all(|s| !s.filler));
    }

    #[test]
    fn dtx_gaps_are_filled_without_holes() {
        let mut t = OpusTimeline::new();
        let mut all = t.push(1000, packet()).unwrap();
        // DTX: 400 ms without packets (WebRTC sends one every 400 ms while silent).
        all.extend(t.push(1000 + 960 + 19_200, packet()).unwrap());
        // A 30 ms gap plus 1 ms of jitter: 20 + 10 ms of fillers, the jitter absorbed.
        let next = 1000 + 2 * 960 + 19_200 + 1440 + 48;
        all.extend(t.push(next, packet()).unwrap());
        let fillers = all.iter().filter(|s| s.filler).count();
        assert_eq!(fillers, 20 + 2);
        assert!(
            all.windows(2)
                .all(|w| w[1].pts == w[0].pts + u64::from(w[0].duration))
        );
        assert!(all.iter().filter(|s| s.filler).all(|s| s.data.len() == 1
            && packet_samples(&s.data) == Ok(s.duration)
            && s.data[0] & 0x04 != 0));
        assert_eq!(t.stats().fillers, 22);
        assert_eq!(t.stats().packets, 3);
    }

    #[test]
    fn jitter_is_absorbed_and_repeats_are_dropped() {
        let mut t = OpusTimeline::new();
        let a = t.push(0, packet()).unwrap();
        let b = t.push(960 + 200, packet()).unwrap();
        assert_eq!(b[0].pts, a[0].pts + 960, "200 samples early/late absorbed");
        assert!(t.push(960, packet()).unwrap().is_empty(), "repeat dropped");
        assert_eq!(t.stats().dropped, 1);
        let c = t.push(2 * 960 - 100, packet()).unwrap();
        assert_eq!(
            c[0].pts,
            a[0].pts + 2 * 960,
            "slightly early: placed after the last"
        );
    }

    #[test]
    fn fill_until_covers_a_silent_track() {
        let mut t = OpusTimeline::new();
        assert!(
            t.fill_until(10_000).is_empty(),
            "nothing before the first packet"
        );
        let first = t.push(0, packet()).unwrap()[0].pts;
        let filled = t.fill_until(first + 960 + 4800);
        assert_eq!(filled.iter().map(|s| s.duration).sum::<u32>(), 4800);
        assert_eq!(t.expected(), Some(first + 960 + 4800));
    }
}
