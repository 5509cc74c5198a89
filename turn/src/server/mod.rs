//! The TURN server's I/O shell (tokio): a UDP listener, a TCP listener (RFC 8656 §3.1) and one
//! UDP relay socket per allocation, around the sans-IO [`crate::core::TurnCore`]. The core sits
//! behind one mutex that is never held across an await; every send is non-blocking
//! (`try_send`), so a slow client or peer loses packets instead of stalling anyone.

mod relay;
mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TurnConfig;
use crate::core::{AllocId, ClientAction, ClientId, CoreConfig, Now, Transport, TurnCore};
use crate::credentials::{Credentials, mint};
use crate::policy::PeerPolicy;
use crate::stats::{TurnStats, TurnStatsSnapshot};

/// Largest datagram read from a client or a peer.
const MAX_DATAGRAM: usize = 65536;

/// Why the TURN server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnStartError {
    /// A listener could not be bound.
    #[error("TURN cannot listen on {addr} ({transport}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        transport: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where onair's own media lives: always a reachable peer (see [`PeerPolicy`]).
#[derive(Debug, Clone)]
pub struct MediaAddrs {
    /// Media IPs; an unspecified address stands for every address of this machine.
    pub ips: Vec<IpAddr>,
    /// Media UDP ports.
    pub ports: RangeInclusive<u16>,
}

/// A running TURN server.
pub struct TurnServer {
    shared: Arc<Shared>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    secret: Vec<u8>,
    ttl_secs: u64,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What every task shares.
pub(crate) struct Shared {
    state: Mutex<State>,
    stats: Arc<TurnStats>,
    udp: Arc<UdpSocket>,
    relay_bind: IpAddr,
    relay_advertise: IpAddr,
    relay_ports: RangeInclusive<u16>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The core and the sockets its decisions need, under one lock.
pub(crate) struct State {
    core: TurnCore,
    relays: HashMap<AllocId, relay::Relay>,
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl TurnServer {
    /// Binds the listeners and starts serving. `secret` is the REST secret, `media` onair's
    /// media sockets, `public_ip` the address clients reach this machine at (if behind NAT).
    pub async fn start(
        config: &TurnConfig,
        secret: &[u8],
        media: MediaAddrs,
        public_ip: Option<IpAddr>,
    ) -> Result<Self, TurnStartError> {
        let udp_bind = SocketAddr::new(config.listen, config.udp_port);
        let udp = UdpSocket::bind(udp_bind)
            .await
            .map_err(|source| TurnStartError::Bind {
                addr: udp_bind,
                transport: "udp",
                source,
            })?;
        let udp_addr = udp.local_addr().map_err(|source| TurnStartError::Bind {
            addr: udp_bind,
            transport: "udp",
            source,
        })?;
        let tcp_listener = if config.tcp {
            let addr = SocketAddr::new(config.listen, config.tcp_port);
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| TurnStartError::Bind {
                    addr,
                    transport: "tcp",
                    source,
                })?;
            Some(l)
        } else {
            None
        };
        let tcp_addr = tcp_listener.as_ref().and_then(|l| l.local_addr().ok());

        let relay_advertise = advertised_ip(config, public_ip);
        let mut ips = Vec::new();
        for ip in media.ips.iter().chain(public_ip.iter()) {
            if ip.is_unspecified() {
                ips.extend(local_ips());
            } else {
                ips.push(*ip);
            }
        }
        let stats = Arc::new(TurnStats::default());
        let core = TurnCore::new(
            CoreConfig {
                realm: config.realm.clone(),
                secret: secret.to_vec(),
                nonce_key: rand::random(),
                user_quota: config.user_quota,
                total_quota: config.total_quota,
                max_lifetime: Duration::from_secs(config.max_lifetime_secs),
                policy: PeerPolicy::new(config.allow_private, ips, media.ports),
                relay_ipv6: relay_advertise.is_ipv6(),
            },
            stats.clone(),
        );
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                relays: HashMap::new(),
                tcp: HashMap::new(),
            }),
            stats,
            udp: Arc::new(udp),
            relay_bind: config.listen,
            relay_advertise,
            relay_ports: config.relay_ports.first..=config.relay_ports.last,
            stop: stop.clone(),
            tasks: tasks.clone(),
        });
        tasks.spawn(udp_loop(shared.clone()));
        tasks.spawn(expiry_loop(shared.clone()));
        if let Some(listener) = tcp_listener {
            tasks.spawn(tcp::accept_loop(
                shared.clone(),
                listener,
                config.total_quota * 2,
            ));
        }
        tracing::info!(%udp_addr, tcp = ?tcp_addr, relay = %relay_advertise, "TURN listening");
        Ok(Self {
            shared,
            udp_addr,
            tcp_addr,
            secret: secret.to_vec(),
            ttl_secs: config.credential_ttl_secs,
            stop,
            tasks,
        })
    }

    /// The bound UDP listener address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound TCP listener address, if TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The IP relayed addresses are advertised with.
    pub fn relay_ip(&self) -> IpAddr {
        self.shared.relay_advertise
    }

    /// Fresh REST credentials for `user`, valid for the configured TTL.
    pub fn credentials(&self, user: &str) -> Credentials {
        mint(&self.secret, user, self.ttl_secs, unix_now())
    }

    /// The live counters (allocations, auth failures, bytes relayed).
    pub fn stats(&self) -> Arc<TurnStats> {
        self.shared.stats.clone()
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> TurnStatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops every listener and relay and waits (up to 2 s) for their tasks.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let relays: Vec<relay::Relay> = {
            let mut state = self.shared.lock();
            state.core.clear();
            state.tcp.clear();
            state.relays.drain().map(|(_, r)| r).collect()
        };
        for r in relays {
            r.stop.cancel();
        }
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(2), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("TURN tasks did not stop within 2 s");
        }
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one client message through the core and carries out the decision.
    pub(crate) fn on_client(self: &Arc<Self>, client: ClientId, data: &[u8]) {
        let now = now();
        let (action, relay_socket) = {
            let mut state = self.lock();
            let action = state.core.handle_client(client, data, now);
            let socket = match &action {
                ClientAction::ToPeer { alloc, .. } => {
                    state.relays.get(alloc).map(|r| r.socket.clone())
                }
                _ => None,
            };
            if let ClientAction::Release { alloc, .. } = &action
                && let Some(r) = state.relays.remove(alloc)
            {
                r.stop.cancel();
            }
            (action, socket)
        };
        match action {
            ClientAction::None => {}
            ClientAction::Reply(bytes) | ClientAction::Release { reply: bytes, .. } => {
                self.send_client(client, &bytes);
            }
            ClientAction::ToPeer { peer, range, .. } => {
                let payload = &data[range];
                match relay_socket.map(|s| s.try_send_to(payload, peer)) {
                    Some(Ok(_)) => TurnStats::add(&self.stats.bytes_to_peers, payload.len() as u64),
                    _ => TurnStats::add(&self.stats.dropped_packets, 1),
                }
            }
            ClientAction::Allocate(pending) => relay::allocate(self, pending),
        }
    }

    /// Sends `bytes` to a client without waiting: UDP `try_send_to`, or the TCP connection's
    /// bounded queue (padded to 4 bytes, RFC 8656 §12.5).
    pub(crate) fn send_client(&self, client: ClientId, bytes: &[u8]) -> bool {
        let sent = match client.transport {
            Transport::Udp => self.udp.try_send_to(bytes, client.addr).is_ok(),
            Transport::Tcp => {
                let queue = self.lock().tcp.get(&client.addr).cloned();
                queue.is_some_and(|q| {
                    let mut framed = Vec::with_capacity(bytes.len().next_multiple_of(4));
                    framed.extend_from_slice(bytes);
                    framed.resize(bytes.len().next_multiple_of(4), 0);
                    q.try_send(framed).is_ok()
                })
            }
        };
        if !sent {
            TurnStats::add(&self.stats.dropped_packets, 1);
        }
        sent
    }

    /// Removes `client`'s allocation (TCP connection closed) and its relay.
    pub(crate) fn client_gone(&self, client: ClientId) {
        let mut state = self.lock();
        if let Some(alloc) = state.core.client_gone(client)
            && let Some(r) = state.relays.remove(&alloc)
        {
            r.stop.cancel();
        }
        state.tcp.remove(&client.addr);
    }
}

async fn udp_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = shared.stop.cancelled() => break,
            r = shared.udp.recv_from(&mut buf) => r,
        };
        match received {
            Ok((n, from)) => shared.on_client(
                ClientId {
                    transport: Transport::Udp,
                    addr: from,
                },
                &buf[..n],
            ),
            // ICMP port unreachable from an earlier send surfaces here on some systems.
            Err(e) => tracing::debug!(error = %e, "TURN UDP receive"),
        }
    }
}

/// Ends expired allocations, permissions and channels once a second.
async fn expiry_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let mut state = shared.lock();
        for alloc in state.core.expire(Instant::now()) {
            if let Some(r) = state.relays.remove(&alloc) {
                r.stop.cancel();
            }
        }
    }
}

pub(crate) fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: unix_now(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every IP address of this machine's interfaces.
fn local_ips() -> Vec<IpAddr> {
    rtc_shared::ifaces::ifaces()
        .map(|list| {
            list.into_iter()
                .filter_map(|i| i.addr.map(|a| a.ip()))
                .collect()
        })
        .unwrap_or_default()
}

/// The relayed address clients are told (see [`TurnConfig::relay_ip`]).
fn advertised_ip(config: &TurnConfig, public_ip: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = config.relay_ip.or(public_ip) {
        return ip;
    }
    if !config.listen.is_unspecified() {
        return config.listen;
    }
    local_ips()
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}
