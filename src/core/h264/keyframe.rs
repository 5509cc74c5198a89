//! Keyframe detection on H.264 RTP payloads (RFC 6184, packetization-mode 1), run per packet on
//! the media path (`room::Track` -> viewer keyframe gate, HLS tap). Pure, no allocation.

use super::nal::{FU_A, IDR, SPS, STAP_A, forbidden_bit, nal_type};

/// One NAL unit that starts inside an RTP payload.
#[derive(Debug, Clone, Copy)]
struct StartingNal<'a> {
    nal_type: u8,
    /// The whole NAL unit when the payload carries it whole (single NAL or STAP-A).
    whole: Option<&'a [u8]>,
}

/// Where the walk over a payload stands.
#[derive(Debug, Clone, Copy)]
enum Walk {
    Single,
    /// Offset of the next 16-bit NALU size in a STAP-A.
    Stap(usize),
    FuStart,
    Done,
}

/// Iterator over the NAL units that start in one RTP payload (RFC 6184 §5.6-§5.8).
#[derive(Debug, Clone)]
struct StartingNals<'a> {
    payload: &'a [u8],
    walk: Walk,
}

impl<'a> StartingNals<'a> {
    fn new(payload: &'a [u8]) -> Self {
        let walk = match payload.first() {
            None => Walk::Done,
            Some(&header) if forbidden_bit(header) => Walk::Done,
            Some(&header) => match nal_type(header) {
                1..=23 => Walk::Single,
                STAP_A => Walk::Stap(1),
                // RFC 6184 §5.8: the S bit marks the fragment that starts the NAL unit.
                FU_A if payload.get(1).is_some_and(|fu| fu & 0x80 != 0) => Walk::FuStart,
                // Type 0, reserved types, and the interleaved-mode STAP-B, MTAP and FU-B.
                _ => Walk::Done,
            },
        };
        Self { payload, walk }
    }
}

impl<'a> Iterator for StartingNals<'a> {
    type Item = StartingNal<'a>;

    fn next(&mut self) -> Option<StartingNal<'a>> {
        let walk = std::mem::replace(&mut self.walk, Walk::Done);
        match walk {
            Walk::Done => None,
            Walk::Single => Some(StartingNal {
                nal_type: nal_type(*self.payload.first()?),
                whole: Some(self.payload),
            }),
            Walk::FuStart => Some(StartingNal {
                nal_type: nal_type(*self.payload.get(1)?),
                whole: None,
            }),
            Walk::Stap(offset) => {
                // RFC 6184 §5.7.1: each aggregation unit is a 16-bit size then the NAL unit.
                let size_bytes = self.payload.get(offset..offset.checked_add(2)?)?;
                let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
                let start = offset + 2;
                let end = start.checked_add(size)?;
                let nal = self.payload.get(start..end)?;
                let header = *nal.first()?;
                self.walk = Walk::Stap(end);
                Some(StartingNal {
                    nal_type: nal_type(header),
                    whole: Some(nal),
                })
            }
        }
    }
}

/// Whether this RTP payload starts a keyframe (RFC 6184 §5.6-§5.8): a single SPS or IDR NAL
/// unit, a STAP-A aggregating an SPS or IDR, or the first FU-A fragment of an IDR or SPS.
/// False for empty or malformed payloads; a truncated STAP-A is read up to the truncation.
pub fn is_keyframe_start(rtp_payload: &[u8]) -> bool {
    StartingNals::new(rtp_payload).any(|n| n.nal_type == IDR || n.nal_type == SPS)
}

/// Whether this RTP payload carries (the start of) a sequence parameter set.
pub fn contains_sps(rtp_payload: &[u8]) -> bool {
    StartingNals::new(rtp_payload).any(|n| n.nal_type == SPS)
}

/// The first whole NAL unit of type `wanted` (header byte included) in this RTP payload: the
/// payload itself for a single NAL unit, or one unit of a STAP-A. Fragments give `None`.
pub fn find_nal(rtp_payload: &[u8], wanted: u8) -> Option<&[u8]> {
    StartingNals::new(rtp_payload)
        .filter(|n| n.nal_type == wanted)
        .find_map(|n| n.whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::h264::nal::PPS;

    const SPS_640: [u8; 10] = [0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x3d, 0xb0, 0x11];
    const PPS_NAL: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
    const IDR_NAL: [u8; 4] = [0x65, 0x88, 0x84, 0x00];

    fn stap(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x78]; // F=0, NRI=3, type 24
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn single_nal_units() {
        assert!(is_keyframe_start(&SPS_640));
        assert!(is_keyframe_start(&IDR_NAL));
        assert!(!is_keyframe_start(&PPS_NAL));
        assert!(!is_keyframe_start(&[0x41, 0x9a, 0x00]), "non-IDR slice");
        assert!(!is_keyframe_start(&[0x06, 0x05]), "SEI");
        assert!(contains_sps(&SPS_640));
        assert!(!contains_sps(&IDR_NAL));
    }

    #[test]
    fn stap_a_with_parameter_sets_and_idr() {
        let p = stap(&[&SPS_640, &PPS_NAL, &IDR_NAL]);
        assert!(is_keyframe_start(&p));
        assert!(contains_sps(&p));
        assert_eq!(find_nal(&p, SPS), Some(&SPS_640[..]));
        assert_eq!(find_nal(&p, PPS), Some(&PPS_NAL[..]));
        assert_eq!(find_nal(&p, 1), None);
    }

    #[test]
    fn stap_a_without_keyframe() {
        let p = stap(&[&PPS_NAL, &[0x06, 0x05, 0x01], &[0x41, 0x9a]]);
        assert!(!is_keyframe_start(&p));
        assert!(!contains_sps(&p));
    }

    #[test]
    fn truncated_stap_a_stops_at_truncation() {
        let full = stap(&[&PPS_NAL, &IDR_NAL]);
        // Cut inside the IDR unit: the IDR is not trusted.
        assert!(!is_keyframe_start(&full[..full.len() - 1]));
        // Cut inside the second size field.
        assert!(!is_keyframe_start(&full[..1 + 2 + PPS_NAL.len() + 1]));
        // Units before the cut still count.
        let sps_first = stap(&[&SPS_640, &IDR_NAL]);
        assert!(is_keyframe_start(&sps_first[..sps_first.len() - 2]));
        // A size larger than the payload.
        assert!(!is_keyframe_start(&[0x78, 0xff, 0xff, 0x65]));
        // A zero size stops the walk.
        assert!(!is_keyframe_start(&[0x78, 0x00, 0x00, 0x00, 0x01, 0x65]));
        assert!(!is_keyframe_start(&[0x78]));
    }

    #[test]
    fn fu_a_only_the_start_fragment_of_an_idr_or_sps() {
        // FU indicator 0x7c (NRI 3, type 28); FU header S|E|R|type.
        assert!(is_keyframe_start(&[0x7c, 0x85, 0xb8]), "start of IDR");
        assert!(is_keyframe_start(&[0x7c, 0x87, 0x42]), "start of SPS");
        assert!(!is_keyframe_start(&[0x7c, 0x05, 0xb8]), "middle of IDR");
        assert!(!is_keyframe_start(&[0x7c, 0x45, 0xb8]), "end of IDR");
        assert!(!is_keyframe_start(&[0x7c, 0x81, 0x9a]), "start of non-IDR");
        assert!(!is_keyframe_start(&[0x7c]), "FU indicator only");
        assert_eq!(
            find_nal(&[0x7c, 0x87, 0x42], SPS),
            None,
            "a fragment is not whole"
        );
    }

    #[test]
    fn empty_damaged_and_unsupported_types() {
        assert!(!is_keyframe_start(&[]));
        assert!(!is_keyframe_start(&[0xe5, 0x88]), "forbidden bit set");
        assert!(
            !is_keyframe_start(&[0x79, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88]),
            "STAP-B"
        );
        assert!(!is_keyframe_start(&[0x7d, 0x85, 0x00, 0x00]), "FU-B");
        assert!(!is_keyframe_start(&[0x00, 0x65]), "type 0");
        assert!(!is_keyframe_start(&[0x1e, 0x65]), "reserved type 30");
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let len = (state % 65) as usize;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (state.rotate_left(i as u32) >> 3) as u8;
            }
            buf[0] = [0x78, 0x7c, 0x65, state as u8][(state >> 28) as usize % 4];
            let _ = is_keyframe_start(&buf[..len]);
            let _ = find_nal(&buf[..len], SPS);
        }
    }
}
