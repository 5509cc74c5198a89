//! Relay sockets (I/O): one UDP socket per allocation from the configured port range
//! (RFC 8656 §7.2), and the task that turns what peers send into ChannelData or Data
//! indications for the client (RFC 8656 §11.3, §12.4).

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{MAX_DATAGRAM, Shared, now};
use crate::core::{AllocId, PEER_HEADROOM, PeerAction, PendingAllocation};
use crate::stats::TurnStats;

/// A live relay socket.
pub(crate) struct Relay {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) stop: CancellationToken,
}

/// Binds a relay socket for an accepted Allocate, completes it in the core and answers.
pub(crate) fn allocate(shared: &Arc<Shared>, pending: PendingAllocation) {
    let socket = bind_in_range(shared, pending.even_port);
    let advertised = socket
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|local| SocketAddr::new(shared.relay_advertise, local.port()));
    let reply = {
        let mut state = shared.lock();
        let reply = state.core.finish_allocate(&pending, advertised, now());
        if let (Some(_), Some(socket)) = (&reply, socket)
            && advertised.is_some()
        {
            let relay = Relay {
                socket: Arc::new(socket),
                stop: shared.stop.child_token(),
            };
            shared.tasks.spawn(run(
                shared.clone(),
                pending.alloc,
                relay.socket.clone(),
                relay.stop.clone(),
            ));
            state.relays.insert(pending.alloc, relay);
        }
        reply
    };
    if let Some(reply) = reply {
        shared.send_client(pending.client, &reply);
    }
}

/// The first free port of the relay range, starting at a random one (so ports are not
/// predictable, RFC 8656 §7.2), even when asked.
fn bind_in_range(shared: &Shared, even: bool) -> Option<UdpSocket> {
    let first = *shared.relay_ports.start();
    let count = u32::from(*shared.relay_ports.end() - first) + 1;
    let start = rand::random::<u32>() % count;
    for i in 0..count {
        let port = first + ((start + i) % count) as u16;
        if even && port % 2 == 1 {
            continue;
        }
        let Ok(std) = StdUdpSocket::bind(SocketAddr::new(shared.relay_bind, port)) else {
            continue;
        };
        if std.set_nonblocking(true).is_err() {
            continue;
        }
        if let Ok(socket) = UdpSocket::from_std(std) {
            return Some(socket);
        }
    }
    tracing::warn!("TURN relay port range exhausted");
    None
}

/// Reads what peers send to this relay until the allocation ends.
async fn run(shared: Arc<Shared>, alloc: AllocId, socket: Arc<UdpSocket>, stop: CancellationToken) {
    let mut buf = vec![0u8; PEER_HEADROOM + MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf[PEER_HEADROOM..]) => r,
        };
        let Ok((len, peer)) = received else { continue };
        let action = shared
            .lock()
            .core
            .handle_peer(alloc, peer, &mut buf, len, Instant::now());
        let sent = match action {
            PeerAction::Drop => continue,
            PeerAction::ChannelData { client, len: total } => {
                shared.send_client(client, &buf[..total])
            }
            PeerAction::Indication { client, bytes } => shared.send_client(client, &bytes),
        };
        if sent {
            TurnStats::add(&shared.stats.bytes_to_clients, len as u64);
        }
    }
}
