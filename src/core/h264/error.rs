//! Errors of the pure H.264 inspection code on the media path (SPS parsing for the HLS tap and
//! stream info). Pure.

/// Why an H.264 structure could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// The NAL unit is empty.
    #[error("empty NAL unit")]
    Empty,
    /// The NAL unit is not of the expected type.
    #[error("expected NAL unit type {expected}, got {found}")]
    WrongNalType {
        /// The type that was required.
        expected: u8,
        /// The type in the NAL header.
        found: u8,
    },
    /// The data ended before the syntax did.
    #[error("truncated bitstream")]
    Truncated,
    /// An Exp-Golomb code longer than 32 bits (ITU-T H.264 §9.1).
    #[error("Exp-Golomb code too long")]
    ExpGolombOverflow,
    /// A syntax element outside the range the standard allows.
    #[error("{field} out of range")]
    OutOfRange {
        /// The syntax element's name in ITU-T H.264.
        field: &'static str,
    },
}
