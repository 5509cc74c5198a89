//! Sans-IO protocol logic: pure state machines with time passed in; no tokio, axum or webrtc.

pub mod chat;
pub mod composite;
pub mod fmp4;
pub mod forwarded;
pub mod h264;
pub mod hls;
pub mod opus;
pub mod rtp;
pub mod sdp;
pub mod stage;
