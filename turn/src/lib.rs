//! onair's embedded TURN server (RFC 8656): a sans-IO core ([`core`]), coturn-compatible REST
//! credentials ([`credentials`]), the peer-address policy ([`policy`]) — all pure — and a tokio
//! I/O shell ([`server`]) with UDP and TCP listeners and one UDP relay socket per allocation.

pub mod config;
pub mod core;
pub mod credentials;
pub mod policy;
pub mod server;
pub mod stats;

pub use config::{RelayPorts, TurnConfig};
pub use credentials::{Credentials, mint};
pub use server::{TurnServer, TurnStartError};
pub use stats::{TurnStats, TurnStatsSnapshot};
