//! Slot assignment for multi-participant WHEP (pure): a viewer offers K recvonly audio+video
//! pairs; each pair is a slot whose source the server switches. Slot 0 belongs to the
//! broadcaster; guests keep the slot they got until they leave, so nobody's picture jumps
//! between slots when someone else comes or goes. A viewer's own media is never assigned.

/// A participant that may be shown, in stage order (broadcaster first, then guests by join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Token `sub` of the participant.
    pub user: &'a str,
    /// The broadcaster, pinned to slot 0.
    pub broadcaster: bool,
}

/// One viewer's slots: which user each shows (`None` = nothing is sent on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    slots: Vec<Option<String>>,
    exclude: Option<String>,
}

impl SlotMap {
    /// `count` empty slots for a viewer who is `exclude` (its own media is never shown).
    pub fn new(count: usize, exclude: Option<&str>) -> Self {
        Self {
            slots: vec![None; count],
            exclude: exclude.map(str::to_owned),
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the viewer offered no slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The user shown in `slot`.
    pub fn user(&self, slot: usize) -> Option<&str> {
        self.slots.get(slot).and_then(|s| s.as_deref())
    }

    /// The slot showing `user`.
    pub fn slot_of(&self, user: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.as_deref() == Some(user))
    }

    /// Re-assigns the slots for the stage `candidates`; returns the slots whose user changed.
    /// Rules: the broadcaster takes slot 0 (moving a guest that held it to a free slot);
    /// everyone else keeps their slot while on stage; newcomers take the lowest free slots in
    /// stage order; who does not fit is not shown.
    pub fn update(&mut self, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let before = self.slots.clone();
        let visible: Vec<&Candidate<'_>> = candidates
            .iter()
            .filter(|c| self.exclude.as_deref() != Some(c.user))
            .collect();
        // Drop users who left the stage.
        for slot in &mut self.slots {
            if slot
                .as_deref()
                .is_some_and(|u| !visible.iter().any(|c| c.user == u))
            {
                *slot = None;
            }
        }
        // The broadcaster owns slot 0.
        if let Some(b) = visible.iter().find(|c| c.broadcaster)
            && !self.slots.is_empty()
            && self.slots[0].as_deref() != Some(b.user)
        {
            if let Some(old) = self.slot_of(b.user) {
                self.slots[old] = None;
            }
            let displaced = self.slots[0].replace(b.user.to_owned());
            if let Some(guest) = displaced
                && let Some(free) = self.slots.iter().position(Option::is_none)
            {
                self.slots[free] = Some(guest);
            }
        }
        for c in &visible {
            if self.slot_of(c.user).is_some() {
                continue;
            }
            let reserved = usize::from(visible.iter().any(|v| v.broadcaster));
            let free = self
                .slots
                .iter()
                .enumerate()
                .position(|(i, s)| s.is_none() && (i >= reserved || c.broadcaster));
            if let Some(free) = free {
                self.slots[free] = Some(c.user.to_owned());
            }
        }
        (0..self.slots.len())
            .filter(|&i| before[i] != self.slots[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(user: &str, broadcaster: bool) -> Candidate<'_> {
        Candidate { user, broadcaster }
    }

    #[test]
    fn broadcaster_in_slot_zero_and_guests_keep_their_slots() {
        let mut map = SlotMap::new(3, None);
        assert_eq!(map.update(&[c("b", true)]), vec![0]);
        assert_eq!(
            map.update(&[c("b", true), c("g1", false), c("g2", false)]),
            vec![1, 2]
        );
        // g1 leaves: g2 stays in slot 2, slot 1 empties.
        assert_eq!(map.update(&[c("b", true), c("g2", false)]), vec![1]);
        assert_eq!(map.user(2), Some("g2"));
        assert_eq!(map.user(1), None);
        // A newcomer takes the free slot 1.
        assert_eq!(
            map.update(&[c("b", true), c("g2", false), c("g3", false)]),
            vec![1]
        );
        assert_eq!(map.user(1), Some("g3"));
        // A fourth participant does not fit; nothing changes.
        let all = [c("b", true), c("g2", false), c("g3", false), c("g4", false)];
        assert!(map.update(&all).is_empty());
    }

    #[test]
    fn a_viewer_never_gets_its_own_media() {
        let mut map = SlotMap::new(3, Some("g1"));
        map.update(&[c("b", true), c("g1", false), c("g2", false)]);
        assert_eq!(map.user(0), Some("b"));
        assert_eq!(map.user(1), Some("g2"));
        assert_eq!(map.slot_of("g1"), None);
        // The broadcaster's own session shows guests from slot 0 on.
        let mut own = SlotMap::new(2, Some("b"));
        own.update(&[c("b", true), c("g1", false), c("g2", false)]);
        assert_eq!((own.user(0), own.user(1)), (Some("g1"), Some("g2")));
    }

    #[test]
    fn a_guest_on_stage_before_the_broadcaster_moves_aside() {
        let mut map = SlotMap::new(1, None);
        map.update(&[c("g1", false)]);
        assert_eq!(
            map.user(0),
            Some("g1"),
            "a one-slot viewer sees the only participant"
        );
        assert_eq!(map.update(&[c("b", true), c("g1", false)]), vec![0]);
        assert_eq!(map.user(0), Some("b"), "the broadcaster takes slot 0");
        let mut wide = SlotMap::new(2, None);
        wide.update(&[c("g1", false)]);
        wide.update(&[c("b", true), c("g1", false)]);
        assert_eq!((wide.user(0), wide.user(1)), (Some("b"), Some("g1")));
    }

    #[test]
    fn zero_slots_is_harmless() {
        let mut map = SlotMap::new(0, None);
        assert!(map.is_empty());
        assert!(map.update(&[c("b", true)]).is_empty());
    }
}
