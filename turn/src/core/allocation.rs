//! One TURN allocation's state (pure): its relayed address, lifetime, permissions (RFC 8656 §9)
//! and channel bindings (RFC 8656 §12), all expiring on the clock the caller passes in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun::message::TransactionId;

use super::{AllocId, ClientId};

/// A permission lasts 300 s unless refreshed (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// A channel binding lasts 600 s unless refreshed (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Channel numbers a client may bind. RFC 8656 §12 has clients use 0x4000-0x4FFF; servers
/// still meet RFC 5766 clients (coturn's own among them) that use up to 0x7FFE (RFC 5766 §11),
/// which ChannelData framing tells apart just as well, so those are accepted too.
pub const CHANNEL_NUMBERS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFE;
/// Permissions one allocation may hold at once (a bound on memory per allocation).
pub const MAX_PERMISSIONS: usize = 64;
/// Channels one allocation may hold at once.
pub const MAX_CHANNELS: usize = 64;

/// Why a ChannelBind is refused (each is a 400 Bad Request, RFC 8656 §12.2).
#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    /// The number is outside 0x4000-0x4FFF.
    BadNumber,
    /// The number is bound to another peer, or the peer to another number.
    Conflict,
    /// The allocation already holds [`MAX_CHANNELS`] channels.
    TooMany,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    peer: SocketAddr,
    expires: Instant,
}

/// A relayed transport address and what it may talk to.
#[derive(Debug)]
pub struct Allocation {
    /// Identifies the relay socket in the I/O shell.
    pub id: AllocId,
    /// The 5-tuple's client side.
    pub client: ClientId,
    /// The REST username that created it; later requests must use the same (RFC 8656 §7.2).
    pub username: String,
    /// The user part of the username (what the per-user quota counts).
    pub user: String,
    /// When the allocation goes away without a Refresh.
    pub expires: Instant,
    /// The Allocate transaction and its success response, resent on a retransmission.
    pub allocate_txid: TransactionId,
    /// See `allocate_txid`.
    pub allocate_reply: Vec<u8>,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, Channel>,
    peer_channels: HashMap<SocketAddr, u16>,
}

impl Allocation {
    /// A fresh allocation without permissions or channels.
    pub fn new(
        id: AllocId,
        client: ClientId,
        username: String,
        user: String,
        expires: Instant,
        allocate_txid: TransactionId,
    ) -> Self {
        Self {
            id,
            client,
            username,
            user,
            expires,
            allocate_txid,
            allocate_reply: Vec::new(),
            permissions: HashMap::new(),
            channels: HashMap::new(),
            peer_channels: HashMap::new(),
        }
    }

    /// Whether a live permission covers `ip` (permissions ignore the port, RFC 8656 §9).
    pub fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|&e| e > now)
    }

    /// Installs or refreshes the permission for `ip`; false when the table is full.
    pub fn permit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.permissions.contains_key(&ip) && self.permissions.len() >= MAX_PERMISSIONS {
            self.prune(now);
            if self.permissions.len() >= MAX_PERMISSIONS {
                return false;
            }
        }
        self.permissions.insert(ip, now + PERMISSION_LIFETIME);
        true
    }

    /// Whether `number` may be bound to `peer` now (it is free, or already bound to `peer`).
    pub fn check_bind(&self, number: u16, peer: SocketAddr, now: Instant) -> Result<(), BindError> {
        if !CHANNEL_NUMBERS.contains(&number) {
            return Err(BindError::BadNumber);
        }
        let live = |c: &Channel| c.expires > now;
        if let Some(c) = self.channels.get(&number).filter(|c| live(c))
            && c.peer != peer
        {
            return Err(BindError::Conflict);
        }
        if let Some(&n) = self.peer_channels.get(&peer)
            && n != number
            && self.channels.get(&n).is_some_and(live)
        {
            return Err(BindError::Conflict);
        }
        if !self.channels.contains_key(&number) && self.channels.len() >= MAX_CHANNELS {
            return Err(BindError::TooMany);
        }
        Ok(())
    }

    /// Binds (or refreshes) `number` to `peer`; call [`Self::check_bind`] first.
    pub fn bind(&mut self, number: u16, peer: SocketAddr, now: Instant) {
        if let Some(old) = self.channels.insert(
            number,
            Channel {
                peer,
                expires: now + CHANNEL_LIFETIME,
            },
        ) && old.peer != peer
        {
            self.peer_channels.remove(&old.peer);
        }
        self.peer_channels.insert(peer, number);
    }

    /// The peer a live channel `number` is bound to.
    pub fn channel_peer(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .get(&number)
            .filter(|c| c.expires > now)
            .map(|c| c.peer)
    }

    /// The live channel bound to `peer`, if any.
    pub fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let n = *self.peer_channels.get(&peer)?;
        self.channel_peer(n, now).filter(|&p| p == peer).map(|_| n)
    }

    /// Drops expired permissions and channels.
    pub fn prune(&mut self, now: Instant) {
        self.permissions.retain(|_, e| *e > now);
        self.channels.retain(|_, c| c.expires > now);
        let channels = &self.channels;
        self.peer_channels.retain(|_, n| channels.contains_key(n));
    }
}
