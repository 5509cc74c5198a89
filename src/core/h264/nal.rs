//! H.264 NAL unit header helpers and type numbers (RFC 6184 §5.2, ITU-T H.264 Table 7-1) used
//! wherever the media path looks inside an H.264 RTP payload. Pure.

/// Coded slice of a non-IDR picture.
pub const NON_IDR: u8 = 1;
/// Coded slice of an IDR picture: a keyframe.
pub const IDR: u8 = 5;
/// Supplemental enhancement information.
pub const SEI: u8 = 6;
/// Sequence parameter set.
pub const SPS: u8 = 7;
/// Picture parameter set.
pub const PPS: u8 = 8;
/// Access unit delimiter.
pub const AUD: u8 = 9;
/// Single-time aggregation packet (RFC 6184 §5.7.1), allowed in packetization-mode 1.
pub const STAP_A: u8 = 24;
/// Single-time aggregation packet with decoding order numbers (mode 2 only).
pub const STAP_B: u8 = 25;
/// Fragmentation unit (RFC 6184 §5.8), allowed in packetization-mode 1.
pub const FU_A: u8 = 28;
/// Fragmentation unit with decoding order number (mode 2 only).
pub const FU_B: u8 = 29;

/// The `nal_unit_type` field: the low five bits of a NAL header or FU header (RFC 6184 §5.3).
pub fn nal_type(byte: u8) -> u8 {
    byte & 0x1f
}

/// The `nal_ref_idc` field: 0 means the NAL is not used for reference (RFC 6184 §5.3).
pub fn nal_ref_idc(byte: u8) -> u8 {
    (byte >> 5) & 0x03
}

/// The forbidden_zero_bit: 1 signals a damaged NAL unit (RFC 6184 §5.3).
pub fn forbidden_bit(byte: u8) -> bool {
    byte & 0x80 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_header_fields() {
        assert_eq!(nal_type(0x67), SPS);
        assert_eq!(nal_type(0x68), PPS);
        assert_eq!(nal_type(0x65), IDR);
        assert_eq!(nal_type(0x41), NON_IDR);
        assert_eq!(nal_type(0x7c), FU_A);
        assert_eq!(nal_type(0x78), STAP_A);
        assert_eq!(nal_ref_idc(0x67), 3);
        assert_eq!(nal_ref_idc(0x06), 0);
        assert!(!forbidden_bit(0x67));
        assert!(forbidden_bit(0xe7));
    }
}
