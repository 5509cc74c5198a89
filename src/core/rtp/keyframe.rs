//! Per-viewer video gate on the egress path (`room::Track` -> `egress::Viewer`): forward nothing
//! until a keyframe starts, so a viewer's decoder never starts on a dependent frame. Pure.

use super::sources::{SourceEvent, SourceTracker};

/// Holds a viewer's video back until a keyframe starts (an H.264 decoder can only start at an
/// IDR picture with its SPS/PPS; RFC 4585 §6.3.1 PLI is how one is requested), and again whenever the upstream source changes until that source
/// sends a keyframe. Packets from a replaced source are refused without touching the state.
/// Audio tracks do not use it.
#[derive(Debug, Clone, Default)]
pub struct KeyframeGate {
    open: bool,
    sources: SourceTracker,
}

impl KeyframeGate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a packet from `source` may be forwarded. `is_keyframe_start` is true for the
    /// first packet of a keyframe (see `core::h264::is_keyframe_start`).
    pub fn admit(&mut self, source: u64, is_keyframe_start: bool) -> bool {
        match self.sources.observe(source) {
            SourceEvent::Retired => return false,
            SourceEvent::New => self.open = false,
            SourceEvent::Current => {}
        }
        if is_keyframe_start {
            self.open = true;
        }
        self.open
    }

    /// Whether packets of the current source are being forwarded.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Close the gate until the next keyframe start (e.g. after the viewer's queue overflowed).
    pub fn close(&mut self) {
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_until_keyframe() {
        let mut g = KeyframeGate::new();
        assert!(!g.is_open());
        assert!(!g.admit(1, false));
        assert!(!g.admit(1, false));
        assert!(g.admit(1, true));
        assert!(g.admit(1, false), "stays open for the rest of the stream");
        assert!(g.is_open());
    }

    #[test]
    fn recloses_on_new_source_until_its_keyframe() {
        let mut g = KeyframeGate::new();
        assert!(g.admit(1, true));
        assert!(!g.admit(2, false), "new publisher: wait for its keyframe");
        assert!(!g.is_open());
        assert!(
            !g.admit(1, true),
            "a keyframe from the old source does not open it"
        );
        assert!(!g.admit(2, false));
        assert!(g.admit(2, true));
        assert!(!g.admit(1, false), "straggler refused");
        assert!(g.admit(2, false), "straggler did not close the gate");
    }

    #[test]
    fn new_source_starting_with_keyframe_opens_at_once() {
        let mut g = KeyframeGate::new();
        assert!(g.admit(1, true));
        assert!(g.admit(2, true));
    }

    #[test]
    fn close_waits_for_next_keyframe() {
        let mut g = KeyframeGate::new();
        assert!(g.admit(5, true));
        g.close();
        assert!(!g.is_open());
        assert!(!g.admit(5, false));
        assert!(g.admit(5, true));
    }
}
