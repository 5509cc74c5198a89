//! Counters of the TURN server (pure data, updated from the I/O shell and the core; read by
//! onair's `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; every field is monotonic except `active_allocations`.
#[derive(Debug, Default)]
pub struct TurnStats {
    /// Allocations that exist now.
    pub active_allocations: AtomicU64,
    /// Allocations ever created.
    pub total_allocations: AtomicU64,
    /// Requests refused for bad, expired or unknown credentials (401 after a MESSAGE-INTEGRITY).
    pub auth_failures: AtomicU64,
    /// Allocate requests refused by a quota (486).
    pub quota_rejections: AtomicU64,
    /// Permissions or channels refused for a forbidden peer (403).
    pub forbidden_peers: AtomicU64,
    /// Payload bytes relayed from clients to peers.
    pub bytes_to_peers: AtomicU64,
    /// Payload bytes relayed from peers to clients.
    pub bytes_to_clients: AtomicU64,
    /// Packets dropped: no permission, a full queue, or a failed send.
    pub dropped_packets: AtomicU64,
}

/// A plain copy of [`TurnStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStatsSnapshot {
    /// See [`TurnStats::active_allocations`].
    pub active_allocations: u64,
    /// See [`TurnStats::total_allocations`].
    pub total_allocations: u64,
    /// See [`TurnStats::auth_failures`].
    pub auth_failures: u64,
    /// See [`TurnStats::quota_rejections`].
    pub quota_rejections: u64,
    /// See [`TurnStats::forbidden_peers`].
    pub forbidden_peers: u64,
    /// See [`TurnStats::bytes_to_peers`].
    pub bytes_to_peers: u64,
    /// See [`TurnStats::bytes_to_clients`].
    pub bytes_to_clients: u64,
    /// See [`TurnStats::dropped_packets`].
    pub dropped_packets: u64,
}

impl TurnStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> TurnStatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TurnStatsSnapshot {
            active_allocations: r(&self.active_allocations),
            total_allocations: r(&self.total_allocations),
            auth_failures: r(&self.auth_failures),
            quota_rejections: r(&self.quota_rejections),
            forbidden_peers: r(&self.forbidden_peers),
            bytes_to_peers: r(&self.bytes_to_peers),
            bytes_to_clients: r(&self.bytes_to_clients),
            dropped_packets: r(&self.dropped_packets),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
