//! Errors of the pure SDP checks run on WHIP/WHEP request bodies at the HTTP edge. Pure.

/// Why an SDP offer or trickle-ICE fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is empty or only whitespace.
    #[error("the SDP body is empty")]
    Empty,
    /// The body does not begin with `v=0` (RFC 8866 §5.1).
    #[error("not an SDP document: it must begin with v=0")]
    NotSdp,
    /// A non-empty line is not `<type>=<value>` (RFC 8866 §5); `line` counts from 1.
    #[error("malformed SDP at line {line}")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// The offer has no `m=` section.
    #[error("the SDP offer has no media section")]
    NoMedia,
    /// Over 64 KiB or over 4096 lines.
    #[error("the SDP body is too large")]
    TooLarge,
    /// No `a=ice-ufrag` at session or media level (RFC 8839 §5.4; required by RFC 9725 §4.2).
    #[error("the SDP offer has no a=ice-ufrag")]
    MissingIce,
    /// No `a=fingerprint` at session or media level (RFC 8122 §5; required for DTLS-SRTP).
    #[error("the SDP offer has no a=fingerprint")]
    MissingFingerprint,
}
