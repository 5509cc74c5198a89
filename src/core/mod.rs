//! Sans-IO protocol logic: pure state machines with time passed in; no tokio, axum or webrtc.

pub mod h264;
pub mod rtp;
pub mod sdp;
