//! The TURN server as a sans-IO state machine (pure: no sockets, no clock; the caller passes
//! bytes and time in and carries the decided sends out). Implements RFC 8656: Allocate,
//! Refresh, CreatePermission, ChannelBind, Send/Data indications and ChannelData, with
//! long-term credentials (RFC 8489 §9.2) over coturn-compatible REST usernames.

mod allocation;
mod requests;
#[cfg(test)]
mod tests;
mod wire;

pub use allocation::{CHANNEL_LIFETIME, PERMISSION_LIFETIME};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stun::attributes::{ATTR_DATA, ATTR_FINGERPRINT, ATTR_XOR_PEER_ADDRESS};
use stun::fingerprint::FINGERPRINT;
use stun::message::{
    CLASS_INDICATION, CLASS_REQUEST, METHOD_DATA, METHOD_SEND, Message, Setter, TransactionId,
    is_stun_message,
};
use turn_proto::proto::data::Data;
use turn_proto::proto::peeraddr::PeerAddress;

use crate::policy::PeerPolicy;
use crate::stats::TurnStats;
use allocation::Allocation;
use requests::Pending;

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams on the UDP listener.
    Udp,
    /// One TCP connection (RFC 8656 §3.1); its remote address identifies it.
    Tcp,
}

/// The client side of a 5-tuple (RFC 8656 §2): one allocation at most per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    /// UDP or TCP.
    pub transport: Transport,
    /// The client's address as the server sees it.
    pub addr: SocketAddr,
}

/// The time, passed in: a monotonic instant for lifetimes and unix seconds for REST expiry.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time.
    pub mono: Instant,
    /// Seconds since the Unix epoch.
    pub unix: u64,
}

/// Identifies an allocation (and its relay socket in the shell).
pub type AllocId = u64;

/// What the core needs to know; see `TurnConfig` for the operator's view.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// REALM (RFC 8489 §14.9).
    pub realm: String,
    /// The shared REST secret (`static-auth-secret` in coturn).
    pub secret: Vec<u8>,
    /// Keys the stateless NONCE MACs; random per process.
    pub nonce_key: [u8; 32],
    /// Allocations per user (the part after `:` in the username).
    pub user_quota: usize,
    /// Allocations in total.
    pub total_quota: usize,
    /// Longest lifetime granted (RFC 8656 §7.2 "server's maximum allowed lifetime").
    pub max_lifetime: Duration,
    /// Which peers are reachable.
    pub policy: PeerPolicy,
    /// Whether relayed addresses are IPv6 (for REQUESTED-ADDRESS-FAMILY, RFC 8656 §7.2).
    pub relay_ipv6: bool,
}

/// Default allocation lifetime (RFC 8656 §7.2: 10 minutes).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// What to do with bytes a client sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Nothing (ignored, or dropped by policy).
    None,
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Send `input[range]` from allocation `alloc`'s relay socket to `peer`.
    ToPeer {
        /// The allocation.
        alloc: AllocId,
        /// Where to.
        peer: SocketAddr,
        /// The payload inside the input buffer.
        range: Range<usize>,
    },
    /// Bind a relay socket, then call [`TurnCore::finish_allocate`].
    Allocate(PendingAllocation),
    /// Close allocation `alloc`'s relay socket, then send `reply` (Refresh with LIFETIME 0).
    Release {
        /// The allocation that ended.
        alloc: AllocId,
        /// The success response.
        reply: Vec<u8>,
    },
}

/// An accepted Allocate waiting for the shell's relay socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAllocation {
    /// Who asked.
    pub client: ClientId,
    /// The id the allocation will have.
    pub alloc: AllocId,
    /// EVEN-PORT was requested (RFC 8656 §7.2): bind an even port.
    pub even_port: bool,
}

/// What to do with a datagram a peer sent to a relay socket.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerAction {
    /// No permission (RFC 8656 §10.3), or no such allocation.
    Drop,
    /// `buf[..len]` is now a ChannelData message for `client` (RFC 8656 §12.4).
    ChannelData {
        /// Destination.
        client: ClientId,
        /// Header + payload length (unpadded).
        len: usize,
    },
    /// Send this Data indication to `client` (RFC 8656 §11.3).
    Indication {
        /// Destination.
        client: ClientId,
        /// The encoded indication.
        bytes: Vec<u8>,
    },
}

/// Bytes in front of a peer payload that [`TurnCore::handle_peer`] needs for the ChannelData
/// header.
pub const PEER_HEADROOM: usize = 4;

/// The TURN server state.
pub struct TurnCore {
    config: CoreConfig,
    stats: Arc<TurnStats>,
    allocations: HashMap<ClientId, Allocation>,
    by_id: HashMap<AllocId, ClientId>,
    pending: HashMap<ClientId, Pending>,
    users: HashMap<String, usize>,
    next_id: AllocId,
}

impl TurnCore {
    /// A server with no allocations, counting into `stats`.
    pub fn new(config: CoreConfig, stats: Arc<TurnStats>) -> Self {
        Self {
            config,
            stats,
            allocations: HashMap::new(),
            by_id: HashMap::new(),
            pending: HashMap::new(),
            users: HashMap::new(),
            next_id: 1,
        }
    }

    /// Number of live allocations.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Handles one STUN message or ChannelData message from `client` (RFC 8656 §3.1: over
    /// TCP the shell has already split the stream).
    pub fn handle_client(&mut self, client: ClientId, data: &[u8], now: Now) -> ClientAction {
        if data.len() >= 4 && data[0] >> 6 == 0b01 {
            return self.channel_data(client, data, now.mono);
        }
        if !is_stun_message(data) {
            return ClientAction::None;
        }
        let mut m = Message::new();
        if m.unmarshal_binary(data).is_err() {
            return ClientAction::None;
        }
        // A wrong FINGERPRINT means this is not STUN after all: ignore it (RFC 8489 §7.3).
        if m.contains(ATTR_FINGERPRINT) && FINGERPRINT.check(&m).is_err() {
            return ClientAction::None;
        }
        match m.typ.class {
            CLASS_REQUEST => self.request(client, m, now),
            CLASS_INDICATION if m.typ.method == METHOD_SEND => {
                self.send_indication(client, &m, data, now.mono)
            }
            _ => ClientAction::None,
        }
    }

    /// ChannelData from a client (RFC 8656 §12.5): relayed when the channel is bound and its
    /// peer still permitted. No allocation, no copy: the payload stays in `data`.
    fn channel_data(&self, client: ClientId, data: &[u8], now: Instant) -> ClientAction {
        let number = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let target = self.allocations.get(&client).and_then(|a| {
            let peer = a.channel_peer(number, now)?;
            a.permitted(peer.ip(), now).then_some((a.id, peer))
        });
        match target {
            Some((alloc, peer)) if 4 + len <= data.len() => ClientAction::ToPeer {
                alloc,
                peer,
                range: 4..4 + len,
            },
            _ => {
                TurnStats::add(&self.stats.dropped_packets, 1);
                ClientAction::None
            }
        }
    }

    /// A Send indication (RFC 8656 §11.2): relayed to its XOR-PEER-ADDRESS when permitted;
    /// otherwise silently dropped, as indications get no answer.
    fn send_indication(
        &self,
        client: ClientId,
        m: &Message,
        data: &[u8],
        now: Instant,
    ) -> ClientAction {
        let Some(a) = self.allocations.get(&client) else {
            return ClientAction::None;
        };
        let peer = wire::xor_addresses(m, ATTR_XOR_PEER_ADDRESS).and_then(|p| p.first().copied());
        let range = wire::attribute_range(data, ATTR_DATA);
        match (peer, range) {
            (Some(peer), Some(range))
                if a.permitted(peer.ip(), now) && self.config.policy.allows(peer) =>
            {
                ClientAction::ToPeer {
                    alloc: a.id,
                    peer,
                    range,
                }
            }
            _ => {
                TurnStats::add(&self.stats.dropped_packets, 1);
                ClientAction::None
            }
        }
    }

    /// A datagram from `peer` arrived on allocation `alloc`'s relay socket, its payload at
    /// `buf[PEER_HEADROOM..PEER_HEADROOM + len]`. With a channel bound to `peer` the header is
    /// written in place (no allocation); otherwise a Data indication is built.
    pub fn handle_peer(
        &self,
        alloc: AllocId,
        peer: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> PeerAction {
        let Some(a) = self.by_id.get(&alloc).and_then(|c| self.allocations.get(c)) else {
            return PeerAction::Drop;
        };
        if !a.permitted(peer.ip(), now) || buf.len() < PEER_HEADROOM + len || len > 0xFFFF {
            TurnStats::add(&self.stats.dropped_packets, 1);
            return PeerAction::Drop;
        }
        if let Some(number) = a.peer_channel(peer, now) {
            buf[0..2].copy_from_slice(&number.to_be_bytes());
            buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            return PeerAction::ChannelData {
                client: a.client,
                len: PEER_HEADROOM + len,
            };
        }
        let payload = buf[PEER_HEADROOM..PEER_HEADROOM + len].to_vec();
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(Data(payload)),
        ];
        let mut carrier = Message::new();
        carrier.transaction_id = TransactionId::new();
        PeerAction::Indication {
            client: a.client,
            bytes: wire::reply(&carrier, METHOD_DATA, CLASS_INDICATION, attrs, None),
        }
    }

    /// Removes expired allocations (RFC 8656 §7.3) and prunes expired permissions and
    /// channels; returns the allocations whose relay sockets must close.
    pub fn expire(&mut self, now: Instant) -> Vec<AllocId> {
        let gone: Vec<ClientId> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(c, _)| *c)
            .collect();
        for a in self.allocations.values_mut() {
            a.prune(now);
        }
        gone.into_iter().filter_map(|c| self.remove(c)).collect()
    }

    /// The client's TCP connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn client_gone(&mut self, client: ClientId) -> Option<AllocId> {
        if let Some(p) = self.pending.remove(&client) {
            self.release_user(&p.user);
        }
        self.remove(client)
    }

    /// Deletes every allocation (shutdown); returns their ids.
    pub fn clear(&mut self) -> Vec<AllocId> {
        let all: Vec<ClientId> = self.allocations.keys().copied().collect();
        all.into_iter().filter_map(|c| self.remove(c)).collect()
    }

    fn remove(&mut self, client: ClientId) -> Option<AllocId> {
        let a = self.allocations.remove(&client)?;
        self.by_id.remove(&a.id);
        self.release_user(&a.user);
        self.stats
            .active_allocations
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        Some(a.id)
    }

    fn release_user(&mut self, user: &str) {
        if let Some(n) = self.users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.users.remove(user);
            }
        }
    }
}
