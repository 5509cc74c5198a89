//! Packet history for answering viewers' NACKs, one per published track and shared by all its
//! viewers (media path: `room::Track` -> `egress::Viewer` retransmissions). Pure, and no
//! allocation after construction.

/// Smallest ring size [`RetransmitCache::new`] builds.
const MIN_CAPACITY: usize = 16;
/// Largest ring size: half the 16-bit sequence space, so a slot never aliases a seq that is
/// less than half the space away.
const MAX_CAPACITY: usize = 1 << 15;

/// A fixed-size ring of recent packets indexed by their 16-bit RTP sequence number, used to
/// retransmit lost packets (the history behind RFC 4588 retransmission; asked for by Generic NACK, RFC 4585 §6.2.1).
///
/// Each slot keeps the sequence number it was stored under, so a lookup for a sequence number
/// whose slot has since been taken by a newer packet returns `None`. Call
/// [`RetransmitCache::clear`] when the upstream source changes, since sequence numbers of
/// different sources are unrelated.
#[derive(Debug, Clone)]
pub struct RetransmitCache<T> {
    slots: Vec<Option<(u16, T)>>,
    mask: usize,
}

impl<T> RetransmitCache<T> {
    /// A cache holding `capacity` packets, rounded up to a power of two within [16, 32768].
    pub fn new(capacity: usize) -> Self {
        let size = capacity
            .clamp(MIN_CAPACITY, MAX_CAPACITY)
            .next_power_of_two();
        let mut slots = Vec::with_capacity(size);
        slots.resize_with(size, || None);
        Self {
            slots,
            mask: size - 1,
        }
    }

    /// Store `item` under `seq`, replacing whatever shared its slot.
    pub fn insert(&mut self, seq: u16, item: T) {
        if let Some(slot) = self.slots.get_mut(usize::from(seq) & self.mask) {
            *slot = Some((seq, item));
        }
    }

    /// The packet stored under `seq`, unless it was overwritten or never stored.
    pub fn get(&self, seq: u16) -> Option<&T> {
        match self.slots.get(usize::from(seq) & self.mask)? {
            Some((stored, item)) if *stored == seq => Some(item),
            _ => None,
        }
    }

    /// Forget every packet (keeps the ring's memory).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
    }

    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Expand one Generic NACK FCI entry (RFC 4585 §6.2.1) into the lost sequence numbers: `pid`
/// itself, then `pid + i + 1` (mod 2^16) for every bit `i` set in the bitmask `blp`, with bit 0
/// the least significant.
pub fn nack_seqs(pid: u16, blp: u16) -> impl Iterator<Item = u16> {
    std::iter::once(pid).chain(
        (0u16..16)
            .filter(move |bit| blp & (1 << bit) != 0)
            .map(move |bit| pid.wrapping_add(bit + 1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_rounded_and_clamped() {
        assert_eq!(RetransmitCache::<u8>::new(0).capacity(), 16);
        assert_eq!(RetransmitCache::<u8>::new(17).capacity(), 32);
        assert_eq!(RetransmitCache::<u8>::new(512).capacity(), 512);
        assert_eq!(RetransmitCache::<u8>::new(1000).capacity(), 1024);
        assert_eq!(RetransmitCache::<u8>::new(usize::MAX).capacity(), 32768);
    }

    #[test]
    fn stores_and_finds_across_the_wrap() {
        let mut c = RetransmitCache::new(64);
        for i in 0..40u16 {
            c.insert(65_520u16.wrapping_add(i), i);
        }
        assert_eq!(c.get(65_520), Some(&0));
        assert_eq!(c.get(65_535), Some(&15));
        assert_eq!(c.get(0), Some(&16));
        assert_eq!(c.get(23), Some(&39));
        assert_eq!(c.get(24), None, "never stored");
    }

    #[test]
    fn overwritten_slot_is_not_returned_for_the_old_seq() {
        let mut c = RetransmitCache::new(16);
        c.insert(5, "old");
        c.insert(21, "new"); // same slot (21 & 15 == 5)
        assert_eq!(c.get(5), None);
        assert_eq!(c.get(21), Some(&"new"));
        // 5 + 65536/2: same slot in every ring size, told apart by the stored seq.
        let mut big = RetransmitCache::new(32768);
        big.insert(5, 1);
        assert_eq!(big.get(5 + 32768), None);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut c = RetransmitCache::new(16);
        c.insert(1, 1);
        c.insert(2, 2);
        c.clear();
        assert_eq!(c.get(1), None);
        assert_eq!(c.get(2), None);
        assert_eq!(c.capacity(), 16);
    }

    #[test]
    fn nack_with_empty_bitmask_is_just_pid() {
        assert_eq!(nack_seqs(100, 0).collect::<Vec<_>>(), vec![100]);
    }

    #[test]
    fn nack_bitmask_expands_lsb_first() {
        // Bits 0 and 2 set: PID+1 and PID+3 (RFC 4585 §6.2.1).
        assert_eq!(
            nack_seqs(100, 0b101).collect::<Vec<_>>(),
            vec![100, 101, 103]
        );
        // Bit 15: PID+16.
        assert_eq!(nack_seqs(100, 0x8000).collect::<Vec<_>>(), vec![100, 116]);
    }

    #[test]
    fn nack_full_bitmask_wraps() {
        let seqs: Vec<u16> = nack_seqs(65_530, 0xffff).collect();
        assert_eq!(seqs.len(), 17);
        assert_eq!(seqs[0], 65_530);
        assert_eq!(seqs[5], 65_535);
        assert_eq!(seqs[6], 0);
        assert_eq!(seqs[16], 10);
    }
}
