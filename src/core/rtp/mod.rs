//! RTP forwarding logic between `room::Track` fan-out and each WHEP viewer: sequence and
//! timestamp unwrapping, per-viewer rewriting, keyframe gating, PLI throttling, the NACK
//! history and fast starts from it. Pure: no I/O, time is passed in.

mod keyframe;
mod munger;
mod pli;
mod replay;
mod retransmit;
mod seq;
mod sources;

pub use keyframe::KeyframeGate;
pub use munger::{MungerConfig, Rewritten, RtpMunger};
pub use pli::PliThrottle;
pub use replay::{KeyframeMark, MAX_REPLAY_PACKETS, ReplayWindow};
pub use retransmit::{RetransmitCache, nack_seqs};
pub use seq::{SeqUnwrapper, TimestampUnwrapper};
