//! The integration tests: the real onair server in-process (and, for a few, its binary), real
//! WebRTC peers with openh264 + Opus media, LL-HLS, chat and the HTTP API, as one test binary.
//! One binary rather than one per file: each links webrtc, openh264 and opus, so two dozen of them
//! cost minutes of linking and gigabytes of disk on every fresh build.

mod chat_common;
mod common;
mod composite_feed;
mod hls_common;

mod access;
mod broadcast_shapes;
mod chat;
mod chat_errors;
mod chat_moderation;
mod chat_shutdown;
mod composite;
mod dtls;
mod hls;
mod http_errors;
mod limits;
mod loadtest_smoke;
mod logs;
mod media;
mod metrics;
mod negotiation;
mod operations;
mod recording;
mod recording_chat;
mod sessions;
mod stage;
mod tls;
mod turn;
mod webhooks;
