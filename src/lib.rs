//! onair: a WebRTC SFU with WHIP ingest, WHEP egress, chat and LL-HLS. This is the library root
//! that the binary (`main.rs`) and the integration tests share; modules follow the media path
//! ingest -> room -> egress.

pub mod auth;
pub mod chat;
pub mod config;
pub mod core;
pub mod egress;
pub mod http;
pub mod ingest;
pub mod ops;
pub mod peer;
pub mod room;
pub mod server;
pub mod stage;
