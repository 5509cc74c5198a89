//! Test/load client for onair's public protocols: a WHIP publisher ([`whip::Publisher`]) that
//! sends real H.264 and Opus, and a WHEP viewer ([`whep::Viewer`]) that receives, checks and
//! optionally decodes them. Used by the integration tests and by the `onair-loadtest` binary.
//!
//! It sits at both ends of onair's media path: [`whip`] feeds `ingest::Publisher`, [`whep`]
//! consumes `egress::Viewer`, [`hls`] reads the LL-HLS egress. [`media`] makes and checks the
//! media, [`h264`] handles RTP payloads, [`probe`] and [`histogram`] measure forwarding
//! latency without locks; none of them does I/O. [`bench`] runs the load scenarios of issue 7
//! over all of it and reports.

pub mod bench;
pub mod chat;
pub mod error;
pub mod h264;
pub mod histogram;
pub mod hls;
pub mod media;
mod peer;
pub mod probe;
mod signaling;
pub mod stage;
pub mod whep;
pub mod whip;

pub use chat::{ChatChannel, ChatState};
pub use error::{ClientError, MediaError};
pub use histogram::{Histogram, HistogramSnapshot};
pub use media::{
    AudioConfig, AudioSource, DecodedFrame, EncodedFrame, LumaFrame, TestPattern, VideoConfig,
    VideoDecoder, VideoLoop, VideoSource,
};
pub use probe::LatencyProbe;
/// The peer connection states [`Publisher::connection_state`] and [`Viewer::connection_state`]
/// report.
pub use webrtc::peer_connection::RTCPeerConnectionState;
pub use whep::{JoinTimeline, TrackStats, ViewOptions, Viewer, ViewerStats};
pub use whip::{PublishOptions, Publisher, PublisherStats};
