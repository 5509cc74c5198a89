//! Fuzz targets for onair's untrusted-input parsers (test tooling, pure: bytes in, no I/O): the
//! WHIP/WHEP SDP path, the RFC 6184 H.264 depacketizer, chat JSON through the connection gate
//! and the chat room, and LL-HLS delivery directives. Each target is a plain `fn(&[u8])` that
//! must never panic, hang or allocate without bound on any input; both runners share them: the
//! libFuzzer harness in `libfuzzer/` (nightly, `cargo fuzz`) and the stable runner
//! (`fuzz-stable`, CI).

pub mod corpus;
pub mod mutate;
mod targets;

pub use targets::{chat, h264, hls, sdp};

/// A fuzz target: any input, no panic.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `corpus/<name>/` and `dict/<name>.dict`).
pub const TARGETS: &[(&str, Target)] =
    &[("sdp", sdp), ("h264", h264), ("chat", chat), ("hls", hls)];
