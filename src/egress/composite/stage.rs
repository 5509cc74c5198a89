//! Stage following for the LL-HLS tap (egress path: `room::StageView` changes -> pass-through of
//! the broadcaster or the composite of everyone on stage -> the tap's segmenter and recorder).
//! Does I/O (owns the [`Composite`] and its queue). The tap stays in charge of timing and
//! segmenting; this decides which media it takes, and gives each switch a fresh source id so the
//! tap's usual "new source: flush, `EXT-X-DISCONTINUITY`, new init if the SPS changed" handling
//! applies to every switch between pass-through and composite.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{Composite, CompositeConfig, CompositeOutput, StageSource};
use crate::core::h264::AccessUnit;
use crate::room::{MediaPacket, StageView};

/// What the tap should do next.
#[derive(Debug)]
pub enum StageEvent {
    /// Who is on stage changed: call [`StageFollower::update`].
    Changed,
    /// A composed picture for source `source`, with the current SPS and PPS.
    Video {
        /// The composite's source id (for the tap's `follow`).
        source: u64,
        /// The picture, AVCC, 90 kHz timestamp.
        au: AccessUnit,
        /// SPS and PPS (NAL headers included) of the composite stream.
        params: Option<(Bytes, Bytes)>,
    },
    /// A mixed Opus packet, stamped with the composite's source id and a 48 kHz timestamp.
    Audio(Arc<MediaPacket>),
}

struct Active {
    composite: Composite,
    rx: mpsc::Receiver<CompositeOutput>,
    id: u64,
    params: Option<(Bytes, Bytes)>,
    audio_seq: u16,
}

/// Pass-through after a composite: upstream source ids are renumbered so that they come after
/// the composite's id on the tap's timeline.
#[derive(Default)]
struct Renumber {
    /// (upstream id, id given to the tap) of the broadcaster sessions seen since the switch.
    seen: Vec<(u64, u64)>,
}

/// Follows the room's stage for the tap: pass-through with the broadcaster alone, the composite
/// with guests on stage.
pub struct StageFollower {
    config: CompositeConfig,
    watch: watch::Receiver<Arc<StageView>>,
    watch_open: bool,
    active: Option<Active>,
    /// `None` until the first composite: upstream ids are used as they are.
    renumber: Option<Renumber>,
}

fn stable_id(user: &str) -> u64 {
    let mut h = DefaultHasher::new();
    user.hash(&mut h);
    h.finish()
}

impl StageFollower {
    /// Follows `watch` (from `Room::watch_stage`) with `config`.
    pub fn new(config: CompositeConfig, watch: watch::Receiver<Arc<StageView>>) -> Self {
        Self {
            config,
            watch,
            watch_open: true,
            active: None,
            renumber: None,
        }
    }

    /// Whether the composite is running.
    pub fn is_composite(&self) -> bool {
        self.active.is_some()
    }

    /// The composite's counters, while it runs.
    pub fn stats(&self) -> Option<super::CompositeStats> {
        self.active.as_ref().map(|a| a.composite.stats())
    }

    /// The next stage change or composite output; pending forever when there is neither.
    /// Cancel-safe (for `tokio::select!`).
    pub async fn next(&mut self) -> StageEvent {
        loop {
            let output = async {
                match self.active.as_mut() {
                    Some(a) => a.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let changed = async {
                if self.watch_open {
                    self.watch.changed().await.is_ok()
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                ok = changed => {
                    if ok {
                        return StageEvent::Changed;
                    }
                    self.watch_open = false;
                }
                out = output => match out {
                    Some(out) => return self.event_of(out),
                    // The codec thread died: fall back to pass-through.
                    None => return StageEvent::Changed,
                },
            }
        }
    }

    fn event_of(&mut self, out: CompositeOutput) -> StageEvent {
        let active = self
            .active
            .as_mut()
            .expect("output comes from a running composite");
        match out {
            CompositeOutput::Video { pts, picture } => {
                if let (Some(sps), Some(pps)) = (picture.sps.clone(), picture.pps.clone()) {
                    active.params = Some((sps, pps));
                }
                StageEvent::Video {
                    source: active.id,
                    au: AccessUnit {
                        ts: pts,
                        data: picture.avcc,
                        keyframe: picture.keyframe,
                        parameter_sets_changed: false,
                    },
                    params: active.params.clone(),
                }
            }
            CompositeOutput::Audio { pts, packet } => {
                active.audio_seq = active.audio_seq.wrapping_add(1);
                StageEvent::Audio(Arc::new(MediaPacket {
                    source: active.id,
                    seq: active.audio_seq,
                    ts: pts as u32,
                    marker: false,
                    keyframe: false,
                    payload: packet,
                }))
            }
        }
    }

    /// Applies the current stage: starts the composite when guests joined the broadcaster,
    /// updates its participants, or stops it when the broadcaster is alone (or gone).
    /// `next_source` issues fresh source ids (`Rooms::next_source`).
    pub fn update(&mut self, mut next_source: impl FnMut() -> u64) {
        let view = self.watch.borrow_and_update().clone();
        let wants = self.config.enabled
            && view.members.len() >= 2
            && view.members.first().is_some_and(|m| m.is_broadcaster())
            && self.active.as_ref().is_none_or(|a| !a.rx.is_closed());
        let sources: Vec<StageSource> = view
            .members
            .iter()
            .map(|m| StageSource {
                id: stable_id(&m.user),
                video: Some(m.video.clone()),
                audio: Some(m.audio.clone()),
            })
            .collect();
        match (wants, self.active.as_ref()) {
            (true, Some(active)) => active.composite.set_sources(sources),
            (true, None) => match Composite::start(&self.config, sources) {
                Ok((composite, rx)) => {
                    let id = next_source();
                    tracing::info!(
                        participants = view.members.len(),
                        "guests on stage: LL-HLS and the recording switch to the composite"
                    );
                    self.active = Some(Active {
                        composite,
                        rx,
                        id,
                        params: None,
                        audio_seq: 0,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "composite unavailable; staying on pass-through")
                }
            },
            (false, Some(_)) => {
                tracing::info!("broadcaster alone on stage: LL-HLS back to pass-through");
                self.active = None;
                self.renumber = Some(Renumber::default());
            }
            (false, None) => {}
        }
    }

    /// The source id the tap should use for a packet from source `upstream`, or `None` to
    /// ignore it (the broadcaster's own packets while the composite runs, or a stale session).
    /// Composite packets (from [`StageEvent`]) keep their id.
    pub fn map_source(&mut self, upstream: u64, next_source: impl FnOnce() -> u64) -> Option<u64> {
        if let Some(active) = &self.active {
            return (upstream == active.id).then_some(upstream);
        }
        let Some(renumber) = self.renumber.as_mut() else {
            return Some(upstream);
        };
        if let Some(&(_, id)) = renumber.seen.iter().find(|(u, _)| *u == upstream) {
            return Some(id);
        }
        if renumber.seen.iter().any(|(u, _)| *u > upstream) {
            return None; // an older session than one already followed
        }
        let id = next_source();
        renumber.seen.push((upstream, id));
        if renumber.seen.len() > 8 {
            renumber.seen.remove(0);
        }
        Some(id)
    }

    /// The id the tap uses for upstream source `upstream`, without issuing a new one (for
    /// per-source side channels such as RTCP sender reports).
    pub fn mapped(&self, upstream: u64) -> Option<u64> {
        if self.active.is_some() {
            return None;
        }
        match &self.renumber {
            None => Some(upstream),
            Some(r) => r
                .seen
                .iter()
                .find(|(u, _)| *u == upstream)
                .map(|&(_, id)| id),
        }
    }

    /// Sends a keyframe request to the composite if it runs; false when the tap should ask
    /// the broadcaster instead.
    pub fn request_keyframe(&self) -> bool {
        match &self.active {
            Some(a) => {
                a.composite.request_keyframe();
                true
            }
            None => false,
        }
    }
}
