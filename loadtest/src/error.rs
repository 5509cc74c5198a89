//! Test/load client: the error types every client operation returns (I/O-free definitions).

use thiserror::Error;

/// Failure of a media helper: encoder, decoder or configuration.
#[derive(Debug, Error)]
pub enum MediaError {
    /// The configuration cannot be encoded (odd size, zero rate, unsupported Opus frame size...).
    #[error("invalid media configuration: {0}")]
    Config(String),
    /// openh264 refused to encode or decode.
    #[error("openh264: {0}")]
    H264(#[from] openh264::Error),
    /// libopus refused to encode or decode.
    #[error("libopus: {0}")]
    Opus(#[from] opus::Error),
}

/// Failure of a WHIP publisher or WHEP viewer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an unexpected HTTP status (anything but `201` for a POST,
    /// anything but `2xx` for a DELETE). `body` is the response body, usually the server's
    /// `{"error": ..., "message": ...}` JSON.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body as text.
        body: String,
    },
    /// The HTTP request itself failed (connection refused, reset, timeout...).
    #[error("HTTP request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The server broke the WHIP/WHEP contract (no `Location`, unparsable answer, bad URL...).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The WebRTC stack failed (bad SDP, ICE/DTLS failure, closed connection...).
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// A media helper failed.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Local socket or address resolution failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The peer connection failed or was closed while waiting for it.
    #[error("connection ended: {0}")]
    Closed(String),
}
