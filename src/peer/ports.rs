//! Hands out UDP ports of the configured range to new PeerConnections (control plane, pure).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::PortRange;

/// Round-robin over the configured range, starting at a random port so that several servers
/// (or test instances) sharing a range rarely collide. A port that turns out to be taken is
/// simply skipped by the caller, which asks for the next one.
#[derive(Debug)]
pub struct PortAllocator {
    range: PortRange,
    cursor: AtomicUsize,
}

impl PortAllocator {
    /// An allocator over `range`.
    pub fn new(range: PortRange) -> Self {
        let start = rand::random::<u64>() as usize % range.len();
        Self {
            range,
            cursor: AtomicUsize::new(start),
        }
    }

    /// The next port to try.
    pub fn next_port(&self) -> u16 {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.range.len();
        self.range.first + u16::try_from(i).expect("index below range length fits u16")
    }

    /// How many ports the range holds (the most attempts worth making).
    pub fn capacity(&self) -> usize {
        self.range.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_through_the_whole_range() {
        let a = PortAllocator::new(PortRange {
            first: 40000,
            last: 40009,
        });
        let mut seen: Vec<u16> = (0..10).map(|_| a.next_port()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (40000..=40009).collect::<Vec<_>>());
        assert!((40000..=40009).contains(&a.next_port()));
    }
}
