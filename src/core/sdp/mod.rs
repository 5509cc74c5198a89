//! WHIP/WHEP signalling checks at the HTTP edge (`ingest` and `egress` handlers, before any
//! PeerConnection exists): SDP offers (RFC 8866, RFC 9725 §4) and trickle-ICE fragments
//! (RFC 8840 §9). Pure: text in, summaries out.

mod candidates;
mod error;
mod frag;
mod lines;
mod media;
mod offer;

pub use candidates::advertise_host_address;
pub use error::SdpError;
pub use frag::{FragMedia, SdpFrag, parse_sdpfrag};
pub use media::{Codec, Direction, MediaKind, MediaSection};
pub use offer::{OfferSummary, parse_offer};
