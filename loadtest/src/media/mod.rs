//! Test/load client: the media a publisher sends and a viewer checks — synthetic H.264 video
//! (openh264), synthetic Opus audio (libopus) and H.264 decoding. CPU only, no I/O.

pub mod audio;
pub mod decoder;
pub mod pattern;
pub mod video;

pub use audio::{AudioConfig, AudioSource, OPUS_RTP_CLOCK_RATE};
pub use decoder::{DecodedFrame, LumaFrame, VideoDecoder};
pub use pattern::{I420Frame, NoiseBand, Rect, TestPattern};
pub use video::{EncodedFrame, VideoConfig, VideoLoop, VideoSource};

#[cfg(test)]
mod tests;
