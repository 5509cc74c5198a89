//! Test/load client: H.264 bitstream helpers — Annex-B NAL iteration and keyframe detection on
//! both Annex-B frames and RTP payloads (RFC 6184). Pure, no I/O.

pub mod reassembler;

pub use reassembler::{AccessUnit, Reassembler, ReassemblerStats};

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice (a keyframe).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// RTP aggregation packet STAP-A (RFC 6184 §5.7.1).
pub const NAL_STAP_A: u8 = 24;
/// RTP fragmentation unit FU-A (RFC 6184 §5.8).
pub const NAL_FU_A: u8 = 28;

/// The Annex-B start code this crate writes before every NAL unit.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The `nal_unit_type` of a NAL header byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Iterates the NAL units of an Annex-B byte stream, without their start codes.
///
/// Accepts 3- and 4-byte start codes; bytes before the first start code are ignored, and
/// trailing zero bytes of a NAL (the zero of a following 4-byte start code) are stripped.
pub fn annexb_nals(stream: &[u8]) -> AnnexBNals<'_> {
    let pos = find_start_code(stream, 0).map_or(stream.len(), |(_, after)| after);
    AnnexBNals { stream, pos }
}

/// Iterator returned by [`annexb_nals`].
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    stream: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.stream.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.stream, start) {
                Some((at, after)) => (at, after),
                None => (self.stream.len(), self.stream.len()),
            };
            self.pos = next;
            let mut nal = &self.stream[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Finds the next `00 00 01` at or after `from`: returns (its index, index just after it).
fn find_start_code(stream: &[u8], from: usize) -> Option<(usize, usize)> {
    let tail = stream.get(from..)?;
    tail.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (from + i, from + i + 3))
}

/// Whether an Annex-B access unit contains an IDR slice.
pub fn contains_idr(annexb: &[u8]) -> bool {
    annexb_nals(annexb).any(|nal| nal_type(nal[0]) == NAL_IDR)
}

/// Whether an RTP payload (RFC 6184, packetization-mode 1) begins a keyframe: a single SPS or
/// IDR NAL unit, a STAP-A carrying one, or the first FU-A fragment of an IDR slice.
///
/// Looks at a few header bytes only, so the non-decoding viewer can afford it per packet.
pub fn rtp_payload_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match nal_type(header) {
        NAL_SPS | NAL_IDR => true,
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while let [hi, lo, body @ ..] = rest {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(nal) = body.get(..len) else {
                    return false;
                };
                if let Some(&h) = nal.first()
                    && matches!(nal_type(h), NAL_SPS | NAL_IDR)
                {
                    return true;
                }
                rest = &body[len..];
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && nal_type(fu) == NAL_IDR),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals: Vec<&[u8]> = annexb_nals(&stream).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(contains_idr(&stream));
        assert!(!contains_idr(&stream[..14]));
        assert_eq!(annexb_nals(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn keyframe_detection_on_rtp_payloads() {
        assert!(rtp_payload_starts_keyframe(&[0x67, 0x42]));
        assert!(rtp_payload_starts_keyframe(&[0x65, 0x88]));
        assert!(!rtp_payload_starts_keyframe(&[0x41, 0x9a]));
        // STAP-A with SPS and PPS.
        assert!(rtp_payload_starts_keyframe(&[
            0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce
        ]));
        // STAP-A with a truncated length.
        assert!(!rtp_payload_starts_keyframe(&[0x78, 0, 9, 0x67]));
        // FU-A start of IDR, then a continuation.
        assert!(rtp_payload_starts_keyframe(&[0x7c, 0x85, 1]));
        assert!(!rtp_payload_starts_keyframe(&[0x7c, 0x05, 1]));
        assert!(!rtp_payload_starts_keyframe(&[]));
    }
}
