//! Server-wide media totals that never go down (control plane, pure): the per-packet counters
//! live in each room's `TrackHub` and vanish when an idle room is reaped, but Prometheus
//! counters must be monotonic. Each scrape remembers every room's last counters and folds a
//! room that disappeared (or was re-created under the same name) into a retired sum.
//!
//! A room is reaped only after it has been empty (no publisher, no viewer, hence no packets)
//! for its grace period, so what a reaped room counted after the last scrape is normally 0.

use std::collections::HashMap;

use crate::room::TrackStats;

/// Video and audio counters of one room.
pub type RoomStats = [TrackStats; 2];

/// Retired totals and the last counters seen per room.
#[derive(Debug, Default)]
pub struct MediaTotals {
    retired: RoomStats,
    seen: HashMap<String, (usize, RoomStats)>,
}

impl MediaTotals {
    /// Folds in the rooms alive now (`name`, identity such as the room's address, counters)
    /// and returns the server totals.
    pub fn update<'a>(
        &mut self,
        live: impl IntoIterator<Item = (&'a str, usize, RoomStats)>,
    ) -> RoomStats {
        let mut totals = self.retired;
        let mut still = HashMap::with_capacity(self.seen.len());
        for (name, identity, stats) in live {
            if let Some((old_identity, old)) = self.seen.remove(name)
                && (old_identity != identity || went_down(&old, &stats))
            {
                add_room(&mut self.retired, &old);
                add_room(&mut totals, &old);
            }
            add_room(&mut totals, &stats);
            still.insert(name.to_owned(), (identity, stats));
        }
        for (_, (_, gone)) in self.seen.drain() {
            add_room(&mut self.retired, &gone);
            add_room(&mut totals, &gone);
        }
        self.seen = still;
        totals
    }
}

fn went_down(old: &RoomStats, new: &RoomStats) -> bool {
    old.iter()
        .zip(new)
        .any(|(o, n)| n.packets_in < o.packets_in || n.bytes_in < o.bytes_in)
}

fn add_room(total: &mut RoomStats, room: &RoomStats) {
    for (t, s) in total.iter_mut().zip(room) {
        add(t, s);
    }
}

/// `total += s`, field by field.
pub fn add(total: &mut TrackStats, s: &TrackStats) {
    total.packets_in += s.packets_in;
    total.bytes_in += s.bytes_in;
    total.packets_out += s.packets_out;
    total.bytes_out += s.bytes_out;
    total.dropped += s.dropped;
    total.keyframe_requests += s.keyframe_requests;
    total.nacks += s.nacks;
    total.retransmitted += s.retransmitted;
    total.fast_starts += s.fast_starts;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(packets: u64) -> RoomStats {
        let s = TrackStats {
            packets_in: packets,
            bytes_in: packets * 100,
            ..TrackStats::default()
        };
        [s, s]
    }

    #[test]
    fn totals_survive_reaped_and_recreated_rooms() {
        let mut t = MediaTotals::default();
        let got = t.update([("a", 1, stats(10)), ("b", 2, stats(5))]);
        assert_eq!(got[0].packets_in, 15);
        // `b` was reaped: its counters stay in the total.
        let got = t.update([("a", 1, stats(12))]);
        assert_eq!(got[0].packets_in, 17);
        // `a` was re-created (another room object) and starts again from 0.
        let got = t.update([("a", 3, stats(1))]);
        assert_eq!(got[0].packets_in, 18);
        // Same identity but counters went down: also a new room.
        let got = t.update([("a", 3, stats(0))]);
        assert_eq!(got[0].packets_in, 18);
        assert_eq!(got[1].bytes_in, 1800);
        let got = t.update([]);
        assert_eq!(got[0].packets_in, 18);
    }
}
