//! H.264 framing conversions at the codec edge of the room composite (egress path: AVCC access
//! units from the depacketizer -> Annex-B for the decoder; the encoder's Annex-B -> AVCC access
//! units plus SPS/PPS for `core::fmp4`). Pure; output buffers are reused by the caller.
//! Framing per ISO/IEC 14496-15 §5.3.2 (AVCC) and ITU-T H.264 Annex B (byte stream).

use bytes::Bytes;

use crate::core::h264::{IDR, PPS, SPS, nal_type};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Rewrites an AVCC access unit (4-byte big-endian lengths) as Annex-B into `out` (cleared
/// first). Returns false, leaving `out` with what was valid, when a length overruns the data.
pub fn avcc_to_annexb(avcc: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut rest = avcc;
    while !rest.is_empty() {
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > body.len() {
            return false;
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&body[..len]);
        rest = &body[len..];
    }
    true
}

/// The NAL units of an Annex-B byte stream (3- or 4-byte start codes), without start codes.
pub fn annexb_nals(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The next start code begins 3 bytes before its payload, 4 with a leading zero.
            let mut end = s - 3;
            while end > 0 && stream[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(stream.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| e > s)
        .map(move |(s, e)| &stream[s..e])
}

/// One encoded picture in the form the HLS tap and recorder take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPicture {
    /// NAL units with 4-byte lengths; an IDR picture starts with SPS and PPS.
    pub avcc: Vec<u8>,
    /// Whether it holds an IDR slice.
    pub keyframe: bool,
    /// The SPS in this picture, if any (NAL header included).
    pub sps: Option<Bytes>,
    /// The PPS in this picture, if any (NAL header included).
    pub pps: Option<Bytes>,
}

/// Converts an encoder's Annex-B output to AVCC, picking out SPS/PPS. `None` for an empty
/// output (the encoder skipped the frame).
pub fn annexb_to_picture(stream: &[u8]) -> Option<EncodedPicture> {
    let mut picture = EncodedPicture {
        avcc: Vec::with_capacity(stream.len() + 16),
        keyframe: false,
        sps: None,
        pps: None,
    };
    for nal in annexb_nals(stream) {
        match nal_type(nal[0]) {
            IDR => picture.keyframe = true,
            SPS => picture.sps = Some(Bytes::copy_from_slice(nal)),
            PPS => picture.pps = Some(Bytes::copy_from_slice(nal)),
            _ => {}
        }
        picture
            .avcc
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        picture.avcc.extend_from_slice(nal);
    }
    (!picture.avcc.is_empty()).then_some(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_round_trips_through_annexb() {
        let avcc = [
            0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 3, 0x65, 0x88, 0x84,
        ];
        let mut annexb = Vec::new();
        assert!(avcc_to_annexb(&avcc, &mut annexb));
        assert_eq!(
            annexb,
            [
                0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65, 0x88, 0x84
            ]
        );
        let picture = annexb_to_picture(&annexb).unwrap();
        assert_eq!(picture.avcc, avcc);
        assert!(picture.keyframe);
        assert_eq!(picture.sps.as_deref(), Some(&[0x67, 0x42][..]));
        assert_eq!(picture.pps.as_deref(), Some(&[0x68][..]));
    }

    #[test]
    fn three_byte_start_codes_and_trailing_zeros() {
        let stream = [0, 0, 1, 0x41, 0x9a, 0, 0, 0, 0, 1, 0x41, 0x9b];
        let nals: Vec<&[u8]> = annexb_nals(&stream).collect();
        assert_eq!(nals, vec![&[0x41, 0x9a][..], &[0x41, 0x9b][..]]);
        let p = annexb_to_picture(&stream).unwrap();
        assert!(!p.keyframe && p.sps.is_none());
        assert!(annexb_to_picture(&[]).is_none());
    }

    #[test]
    fn truncated_avcc_is_refused() {
        let mut out = Vec::new();
        assert!(!avcc_to_annexb(&[0, 0, 0, 9, 0x65], &mut out));
        assert!(!avcc_to_annexb(&[0, 0], &mut out));
    }
}
