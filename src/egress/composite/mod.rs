//! The room composite (egress path: stage participants' `TrackHub`s -> one H.264 picture stream
//! and one mixed Opus track -> the LL-HLS tap and the recording). I/O shell over
//! `core::composite`: a [`Composite`] owns a dedicated codec thread (openh264 decode/encode,
//! libopus decode/encode) that reads the participants' hub queues without waiting, composes on
//! an output frame clock, and hands [`CompositeOutput`]s to a bounded queue. It never blocks
//! forwarding: hubs drop for its queues when it is slow, and it skips output frames when late.

mod source;
mod stage;
mod worker;

pub use source::StageSource;
pub use stage::{StageEvent, StageFollower};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use crate::core::composite::EncodedPicture;

/// Settings of the room composite (`[composite]` in `onair.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompositeConfig {
    /// Compose guests on stage into the LL-HLS stream and the recording. When false, LL-HLS
    /// and the recording carry the broadcaster alone, even with guests on stage.
    pub enabled: bool,
    /// Output width in pixels (even, 160..=1920).
    pub width: u32,
    /// Output height in pixels (even, 90..=1080).
    pub height: u32,
    /// Output frames per second (1..=60).
    pub fps: u32,
    /// H.264 target bitrate, bits per second (100 000..=20 000 000).
    pub bitrate: u32,
    /// Opus bitrate of the mixed audio, bits per second (16 000..=256 000).
    pub audio_bitrate: u32,
    /// Most participants shown (1..=16); later ones are left out of the picture and the mix.
    pub max_tiles: usize,
    /// Encoded frames and audio packets queued for the tap (16..=1024); a full queue drops.
    pub output_queue: usize,
}

impl Default for CompositeConfig {
    /// 1280x720 at 30 fps, 2.5 Mbit/s video, 96 kbit/s Opus, up to 9 tiles.
    fn default() -> Self {
        Self {
            enabled: true,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 2_500_000,
            audio_bitrate: 96_000,
            max_tiles: 9,
            output_queue: 128,
        }
    }
}

impl CompositeConfig {
    /// Checks the limits documented on each field.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("composite.{what}"))
            }
        };
        check(
            self.width.is_multiple_of(2) && (160..=1920).contains(&self.width),
            "width must be even and within 160..=1920",
        )?;
        check(
            self.height.is_multiple_of(2) && (90..=1080).contains(&self.height),
            "height must be even and within 90..=1080",
        )?;
        check((1..=60).contains(&self.fps), "fps must be within 1..=60")?;
        check(
            (100_000..=20_000_000).contains(&self.bitrate),
            "bitrate must be within 100000..=20000000",
        )?;
        check(
            (16_000..=256_000).contains(&self.audio_bitrate),
            "audio_bitrate must be within 16000..=256000",
        )?;
        check(
            (1..=16).contains(&self.max_tiles),
            "max_tiles must be within 1..=16",
        )?;
        check(
            (16..=1024).contains(&self.output_queue),
            "output_queue must be within 16..=1024",
        )
    }
}

/// What the composite produces, in the form the tap's segmenter and the recorder take.
#[derive(Debug, Clone)]
pub enum CompositeOutput {
    /// One composed, encoded picture.
    Video {
        /// Presentation (= decode; no B-frames) time, 90 kHz, from the composite's start.
        pts: u64,
        /// The access unit in AVCC form; IDRs carry SPS and PPS.
        picture: EncodedPicture,
    },
    /// One 20 ms Opus packet of the mix.
    Audio {
        /// Presentation time, 48 kHz, from the composite's start; consecutive packets are
        /// exactly 960 apart.
        pts: u64,
        /// The Opus packet.
        packet: Bytes,
    },
}

impl CompositeOutput {
    fn kind(&self) -> &'static str {
        match self {
            CompositeOutput::Video { .. } => "video",
            CompositeOutput::Audio { .. } => "audio",
        }
    }
}

/// Counters of one composite, for logs, metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompositeStats {
    /// Pictures composed and encoded.
    pub frames: u64,
    /// Output frame ticks skipped because the codec thread was late.
    pub frames_skipped: u64,
    /// Outputs dropped because the tap's queue was full.
    pub output_dropped: u64,
    /// Mixed audio packets produced.
    pub audio_frames: u64,
    /// Pictures decoded over the current participants.
    pub decoded: u64,
    /// Decoded pictures replaced before they were composed (a source faster than the output).
    pub replaced: u64,
    /// Access units or Opus packets that failed to decode since the composite started
    /// (participants who left included).
    pub decode_errors: u64,
    /// Time the codec thread spent working (not sleeping), nanoseconds.
    pub busy_ns: u64,
}

/// State shared by the handle and the codec thread.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    keyframe: AtomicBool,
    /// The latest stage to apply (latest wins: bounded by construction).
    pending: Mutex<Option<Vec<StageSource>>>,
    frames: AtomicU64,
    skipped: AtomicU64,
    output_dropped: AtomicU64,
    audio_frames: AtomicU64,
    decoded_now: AtomicU64,
    replaced_now: AtomicU64,
    decode_errors_now: AtomicU64,
    busy_ns: AtomicU64,
}

/// Counters of every composite of this process, for `/metrics`: monotonic totals (composites
/// that ended included) and how many run now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompositeTotals {
    /// Composites whose codec thread runs now.
    pub active: u64,
    /// Pictures composed and encoded.
    pub frames: u64,
    /// Output frame ticks skipped because a codec thread was late.
    pub frames_skipped: u64,
    /// Outputs dropped because a tap's queue was full.
    pub output_dropped: u64,
    /// Access units or Opus packets that failed to decode.
    pub decode_errors: u64,
}

impl CompositeTotals {
    fn add(&mut self, s: &CompositeStats) {
        self.frames += s.frames;
        self.frames_skipped += s.frames_skipped;
        self.output_dropped += s.output_dropped;
        self.decode_errors += s.decode_errors;
    }
}

/// Every running composite's counters, and the sum of those that ended. One lock, taken when
/// a codec thread starts or ends and per `/metrics` scrape, so the totals never go backwards.
#[derive(Default)]
struct Registry {
    live: Vec<Arc<Shared>>,
    ended: CompositeTotals,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    ended: CompositeTotals {
        active: 0,
        frames: 0,
        frames_skipped: 0,
        output_dropped: 0,
        decode_errors: 0,
    },
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // The registry only holds counters: a panic elsewhere while it was held leaves it usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves a composite's counters from the live list to the ended sum when its codec thread
/// exits (also on a panic: the guard lives on the thread's stack).
struct Retire(Arc<Shared>);

impl Drop for Retire {
    fn drop(&mut self) {
        let mut r = registry();
        if let Some(i) = r.live.iter().position(|s| Arc::ptr_eq(s, &self.0)) {
            r.live.swap_remove(i);
            let final_stats = snapshot(&self.0);
            r.ended.add(&final_stats);
        }
    }
}

/// Totals over every composite this process ran (for `/metrics`).
pub fn totals() -> CompositeTotals {
    let r = registry();
    let mut t = r.ended;
    for s in &r.live {
        t.add(&snapshot(s));
    }
    t.active = r.live.len() as u64;
    t
}

fn snapshot(s: &Shared) -> CompositeStats {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    CompositeStats {
        frames: load(&s.frames),
        frames_skipped: load(&s.skipped),
        output_dropped: load(&s.output_dropped),
        audio_frames: load(&s.audio_frames),
        decoded: load(&s.decoded_now),
        replaced: load(&s.replaced_now),
        decode_errors: load(&s.decode_errors_now),
        busy_ns: load(&s.busy_ns),
    }
}

/// A running composite. Dropping it stops the codec thread (within one pass, ~10 ms) and
/// unsubscribes from every hub.
pub struct Composite {
    shared: Arc<Shared>,
}

impl Composite {
    /// Starts composing `sources` (in tile order) with `config`; outputs arrive on the returned
    /// queue. Fails when the codecs cannot be created or the thread cannot start.
    pub fn start(
        config: &CompositeConfig,
        sources: Vec<StageSource>,
    ) -> Result<(Self, mpsc::Receiver<CompositeOutput>), String> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(config.output_queue);
        let shared = Arc::new(Shared::default());
        *shared.pending.lock().expect("sources lock") = Some(sources);
        let worker = worker::Worker::new(config.clone(), shared.clone(), tx)?;
        registry().live.push(shared.clone());
        let retire = Retire(shared.clone());
        std::thread::Builder::new()
            .name("onair-composite".into())
            .spawn(move || {
                let _retire = retire;
                worker.run();
            })
            .map_err(|e| format!("composite thread: {e}"))?;
        Ok((Self { shared }, rx))
    }

    /// Changes who is on stage (tile order follows the list); participants already shown keep
    /// their decoders.
    pub fn set_sources(&self, sources: Vec<StageSource>) {
        *self.shared.pending.lock().expect("sources lock") = Some(sources);
    }

    /// Makes the next composed picture an IDR (the segmenter wants a segment boundary).
    pub fn request_keyframe(&self) {
        self.shared.keyframe.store(true, Ordering::Release);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CompositeStats {
        snapshot(&self.shared)
    }
}

impl Drop for Composite {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_limits_are_checked() {
        assert_eq!(CompositeConfig::default().validate(), Ok(()));
        let bad = CompositeConfig {
            width: 1281,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("width"));
        let bad = CompositeConfig {
            fps: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("fps"));
        let parsed: Result<CompositeConfig, _> = toml::from_str("widht = 640");
        assert!(parsed.is_err(), "unknown keys are refused");
        let parsed: CompositeConfig = toml::from_str("width = 640\nheight = 360").unwrap();
        assert_eq!((parsed.width, parsed.fps), (640, 30));
    }
}
