//! H.264 bitstream inspection for the media path (`ingest::Publisher` keyframe detection,
//! `egress::Viewer` gating, the HLS tap's `avcC`): RTP payload format (RFC 6184) and SPS parsing
//! (ITU-T H.264 §7.3.2.1). Pure: no I/O.

mod bit_reader;
mod depacketizer;
mod error;
mod keyframe;
pub mod nal;
mod sps;
#[cfg(test)]
mod sps_writer;

pub use depacketizer::{AccessUnit, DepacketizerStats, H264Depacketizer};
pub use error::H264Error;
pub use keyframe::{contains_sps, find_nal, is_keyframe_start};
pub use nal::{AUD, FU_A, IDR, PPS, SEI, SPS, STAP_A, nal_type};
pub use sps::{Sps, parse_sps};
