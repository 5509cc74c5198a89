//! Test/load client: synthetic H.264 video source — renders the moving [`TestPattern`] and
//! encodes it with openh264, live or from a pre-encoded loop. CPU only, no I/O.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};

use super::pattern::{I420Frame, NoiseBand, TestPattern};
use crate::error::MediaError;
use crate::h264::{NAL_IDR, NAL_PPS, NAL_SPS, START_CODE, annexb_nals, nal_type};

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConfig {
    /// Picture width in pixels (even, 16..=3840).
    pub width: u32,
    /// Picture height in pixels (even, 16..=2160).
    pub height: u32,
    /// Frames per second (1..=120).
    pub fps: u32,
    /// Target bitrate of openh264's rate control, bits per second.
    pub bitrate_bps: u32,
    /// An IDR every this many frames; `0` means only the first frame and requested ones.
    pub keyframe_interval_frames: u32,
}

impl Default for VideoConfig {
    /// 640x360 at 30 fps, 800 kbit/s, an IDR every 2 s.
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_bps: 800_000,
            keyframe_interval_frames: 60,
        }
    }
}

impl VideoConfig {
    /// The duration of one frame, `1 / fps`.
    pub fn frame_duration(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.fps.max(1)))
    }

    /// Checks the limits documented on each field.
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |why: &str| Err(MediaError::Config(format!("{why}: {self:?}")));
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return bad("width and height must be even");
        }
        if !(16..=3840).contains(&self.width) || !(16..=2160).contains(&self.height) {
            return bad("size out of range 16x16..3840x2160");
        }
        if !(1..=120).contains(&self.fps) {
            return bad("fps out of range 1..=120");
        }
        if self.bitrate_bps < 10_000 {
            return bad("bitrate below 10 kbit/s");
        }
        Ok(())
    }
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The access unit as Annex-B (4-byte start codes). An IDR access unit always carries SPS
    /// and PPS before the IDR slice.
    pub data: Bytes,
    /// Whether the access unit contains an IDR slice.
    pub keyframe: bool,
    /// How long the frame is shown: `1 / fps`.
    pub duration: Duration,
    /// The pattern frame index drawn into the picture (what [`TestPattern::read_counter`]
    /// reads back, modulo 2^16).
    pub pattern_index: u64,
}

/// A pre-encoded sequence of frames that any number of [`VideoSource`]s can replay.
///
/// Frame 0 is an IDR; further IDRs follow every `keyframe_interval_frames` frames. The last frame
/// is followed by frame 0 again, which is an IDR, so the loop point is always decodable.
#[derive(Debug)]
pub struct VideoLoop {
    config: VideoConfig,
    frames: Vec<EncodedFrame>,
    keyframes: Vec<usize>,
}

impl VideoLoop {
    /// Encodes `frames` frames (at least 1) of the test pattern once.
    pub fn encode(config: VideoConfig, frames: usize) -> Result<Arc<Self>, MediaError> {
        Self::encode_with_noise(config, frames, 0.0)
    }

    /// Like [`Self::encode`], with a [`NoiseBand`] over the bottom `noise_percent` % of the
    /// picture so the encoder spends realistic bitrates (the plain pattern needs a small
    /// fraction of `config.bitrate_bps`; openh264 cannot hold the target without skipping
    /// frames, so the noise share sets the bitrate). With noise, 2 s of frames are encoded and
    /// dropped first so the rate control has settled, and the loop starts with a forced IDR.
    /// Costs encoder time once, nothing per replayed frame.
    pub fn encode_with_noise(
        config: VideoConfig,
        frames: usize,
        noise_percent: f64,
    ) -> Result<Arc<Self>, MediaError> {
        let mut live = LiveEncoder::new(config)?;
        live.noise = NoiseBand::new(&live.pattern, noise_percent);
        if live.noise.is_some() {
            // Whole keyframe intervals, so the loop's IDRs stay where the interval puts them.
            let interval = config.keyframe_interval_frames.max(1);
            let warm_up = (2 * config.fps).div_ceil(interval) * interval;
            for _ in 0..warm_up {
                live.next_frame()?;
            }
            live.force_next = true;
        }
        let frames = (0..frames.max(1))
            .map(|_| live.next_frame())
            .collect::<Result<Vec<_>, _>>()?;
        let keyframes = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keyframe)
            .map(|(i, _)| i)
            .collect();
        Ok(Arc::new(Self {
            config,
            frames,
            keyframes,
        }))
    }

    /// The configuration it was encoded with.
    pub fn config(&self) -> VideoConfig {
        self.config
    }

    /// Number of frames in the loop.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Always `false`: a loop holds at least one frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[EncodedFrame] {
        &self.frames
    }

    /// The loop's mean video bitrate in bits per second (Annex-B bytes, before RTP).
    pub fn bitrate_bps(&self) -> u64 {
        let bytes: u64 = self.frames.iter().map(|f| f.data.len() as u64).sum();
        bytes * 8 * u64::from(self.config.fps) / (self.frames.len().max(1) as u64)
    }

    /// The index of the first IDR strictly after position `pos`, wrapping to 0.
    fn next_keyframe_after(&self, pos: usize) -> usize {
        self.keyframes
            .iter()
            .copied()
            .find(|&k| k > pos)
            .unwrap_or(0)
    }
}

/// The synthetic video source: one encoded frame per call, paced by the caller.
///
/// Live mode renders and encodes each frame (CPU heavy: run it off the async reactor, as the
/// publisher does). Loop mode ([`VideoSource::from_loop`], [`VideoSource::pre_encode`]) replays a
/// [`VideoLoop`] and costs nothing per frame.
pub struct VideoSource {
    config: VideoConfig,
    mode: Mode,
    force_keyframe: bool,
}

enum Mode {
    Live(Box<LiveEncoder>),
    Loop { frames: Arc<VideoLoop>, pos: usize },
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Live(_) => "live",
            Mode::Loop { .. } => "loop",
        };
        f.debug_struct("VideoSource")
            .field("config", &self.config)
            .field("mode", &mode)
            .finish()
    }
}

impl VideoSource {
    /// A live encoder for `config`. The first frame is an IDR.
    pub fn new(config: VideoConfig) -> Result<Self, MediaError> {
        Ok(Self {
            config,
            mode: Mode::Live(Box::new(LiveEncoder::new(config)?)),
            force_keyframe: false,
        })
    }

    /// A source replaying `frames` from its start.
    pub fn from_loop(frames: Arc<VideoLoop>) -> Self {
        Self {
            config: frames.config(),
            mode: Mode::Loop { frames, pos: 0 },
            force_keyframe: false,
        }
    }

    /// Switches to loop mode: encodes `n` frames now and replays them from then on. Returns the
    /// loop so other sources can share it.
    pub fn pre_encode(&mut self, n: usize) -> Result<Arc<VideoLoop>, MediaError> {
        let frames = VideoLoop::encode(self.config, n)?;
        self.mode = Mode::Loop {
            frames: Arc::clone(&frames),
            pos: 0,
        };
        Ok(frames)
    }

    /// The configuration.
    pub fn config(&self) -> VideoConfig {
        self.config
    }

    /// Whether this source replays a pre-encoded [`VideoLoop`] (cheap) rather than encoding.
    pub fn is_looped(&self) -> bool {
        matches!(self.mode, Mode::Loop { .. })
    }

    /// The pattern drawn by this source (for pixel checks on the receiving side).
    pub fn pattern(&self) -> TestPattern {
        pattern_for(&self.config)
    }

    /// Makes the next frame an IDR.
    ///
    /// Live mode forces openh264 to code an IDR. Loop mode jumps to the next IDR of the loop
    /// (wrapping to frame 0), skipping the P-frames in between: the picture jumps ahead, but
    /// the stream stays decodable and the wall-clock pacing is unchanged.
    pub fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Produces the next frame.
    pub fn next_frame(&mut self) -> Result<EncodedFrame, MediaError> {
        let force = std::mem::take(&mut self.force_keyframe);
        match &mut self.mode {
            Mode::Live(live) => {
                if force {
                    live.force_next = true;
                }
                live.next_frame()
            }
            Mode::Loop { frames, pos } => {
                if force && !frames.frames[*pos].keyframe {
                    *pos = frames.next_keyframe_after(*pos);
                }
                let frame = frames.frames[*pos].clone();
                *pos = (*pos + 1) % frames.frames.len();
                Ok(frame)
            }
        }
    }
}

/// The test pattern for a configuration.
pub fn pattern_for(config: &VideoConfig) -> TestPattern {
    TestPattern::new(config.width as usize, config.height as usize, config.fps)
}

/// openh264 plus the pattern renderer.
struct LiveEncoder {
    config: VideoConfig,
    encoder: Encoder,
    pattern: TestPattern,
    noise: Option<NoiseBand>,
    picture: I420Frame,
    index: u64,
    force_next: bool,
    sps_pps: Option<Bytes>,
    scratch: Vec<u8>,
}

impl LiveEncoder {
    fn new(config: VideoConfig) -> Result<Self, MediaError> {
        config.validate()?;
        let encoder_config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config)?;
        let pattern = pattern_for(&config);
        let picture = pattern.blank_frame();
        Ok(Self {
            config,
            encoder,
            pattern,
            noise: None,
            picture,
            index: 0,
            force_next: true,
            sps_pps: None,
            scratch: Vec::new(),
        })
    }

    fn next_frame(&mut self) -> Result<EncodedFrame, MediaError> {
        let index = self.index;
        self.index += 1;
        let interval = u64::from(self.config.keyframe_interval_frames);
        if std::mem::take(&mut self.force_next) || (interval > 0 && index.is_multiple_of(interval))
        {
            self.encoder.force_intra_frame();
        }
        self.pattern.render(index, &mut self.picture);
        if let Some(noise) = self.noise.as_mut() {
            noise.render(&mut self.picture);
        }
        self.scratch.clear();
        self.encoder
            .encode(&self.picture)?
            .write_vec(&mut self.scratch);

        let (mut keyframe, mut has_sps) = (false, false);
        let mut parameter_sets = Vec::new();
        for nal in annexb_nals(&self.scratch) {
            match nal_type(nal[0]) {
                NAL_IDR => keyframe = true,
                t @ (NAL_SPS | NAL_PPS) => {
                    has_sps |= t == NAL_SPS;
                    parameter_sets.extend_from_slice(&START_CODE);
                    parameter_sets.extend_from_slice(nal);
                }
                _ => {}
            }
        }
        if has_sps {
            self.sps_pps = Some(Bytes::from(parameter_sets));
        }
        let data = match (&self.sps_pps, keyframe && !has_sps) {
            // openh264 repeats SPS/PPS on every IDR; this only guards that promise.
            (Some(sets), true) => {
                let mut joined = Vec::with_capacity(sets.len() + self.scratch.len());
                joined.extend_from_slice(sets);
                joined.extend_from_slice(&self.scratch);
                Bytes::from(joined)
            }
            _ => Bytes::copy_from_slice(&self.scratch),
        };
        Ok(EncodedFrame {
            data,
            keyframe,
            duration: self.config.frame_duration(),
            pattern_index: index,
        })
    }
}
