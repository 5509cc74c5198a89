//! Upstream-source bookkeeping shared by the per-viewer munger and keyframe gate (media path:
//! `room::Track` -> `egress::Viewer`). Pure: fixed-size state, no allocation, no I/O.

/// How many superseded sources are remembered so their late packets can be recognised.
const RETIRED_CAPACITY: usize = 8;

/// Tracks the current upstream source (e.g. a publisher session id) and the last few sources it
/// replaced, so a straggler from a superseded publisher is told apart from a new publisher.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceTracker {
    current: Option<u64>,
    retired: [u64; RETIRED_CAPACITY],
    retired_len: usize,
    retired_next: usize,
}

/// What a packet's source means relative to the tracker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceEvent {
    /// The packet comes from the current source.
    Current,
    /// The packet starts a new source (the first one, or one replacing the current source).
    New,
    /// The packet comes from a source that has been replaced: drop it.
    Retired,
}

impl SourceTracker {
    /// Classify `source`; a new source becomes current and the old current one is retired.
    pub(crate) fn observe(&mut self, source: u64) -> SourceEvent {
        match self.current {
            Some(current) if current == source => SourceEvent::Current,
            _ if self.is_retired(source) => SourceEvent::Retired,
            previous => {
                if let Some(previous) = previous {
                    self.retire(previous);
                }
                self.current = Some(source);
                SourceEvent::New
            }
        }
    }

    /// The current source, if any packet has been seen.
    pub(crate) fn current(&self) -> Option<u64> {
        self.current
    }

    fn is_retired(&self, source: u64) -> bool {
        self.retired[..self.retired_len].contains(&source)
    }

    fn retire(&mut self, source: u64) {
        self.retired[self.retired_next] = source;
        self.retired_next = (self.retired_next + 1) % RETIRED_CAPACITY;
        self.retired_len = (self.retired_len + 1).min(RETIRED_CAPACITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_source_is_new_then_current() {
        let mut t = SourceTracker::default();
        assert_eq!(t.observe(7), SourceEvent::New);
        assert_eq!(t.observe(7), SourceEvent::Current);
        assert_eq!(t.current(), Some(7));
    }

    #[test]
    fn replaced_source_is_retired() {
        let mut t = SourceTracker::default();
        t.observe(1);
        assert_eq!(t.observe(2), SourceEvent::New);
        assert_eq!(t.observe(1), SourceEvent::Retired);
        assert_eq!(t.current(), Some(2), "a straggler does not switch back");
        assert_eq!(t.observe(3), SourceEvent::New);
        assert_eq!(t.observe(2), SourceEvent::Retired);
        assert_eq!(t.observe(1), SourceEvent::Retired);
    }

    #[test]
    fn remembers_only_the_last_few() {
        let mut t = SourceTracker::default();
        for s in 0..=(RETIRED_CAPACITY as u64 + 1) {
            assert_eq!(t.observe(s), SourceEvent::New);
        }
        // Source 0 fell out of the ring; sources 2.. are still remembered.
        assert_eq!(t.observe(2), SourceEvent::Retired);
        assert_eq!(t.observe(0), SourceEvent::New);
    }
}
