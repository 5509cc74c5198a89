//! The composite's codec thread (egress path: participants' hub queues -> decode -> compose/mix
//! (`core::composite`) -> openh264/libopus encode -> the tap's bounded output queue). Does I/O
//! and CPU work on a dedicated OS thread so codec time never blocks the tokio runtime; it only
//! `try_recv`s and `try_send`s, and when it falls behind it skips output frames (counted).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSlices;
use tokio::sync::mpsc;

use super::source::{SourceState, StageSource};
use super::{CompositeConfig, CompositeOutput, Shared};
use crate::core::composite::{
    Composer, FRAME_LEN, FRAME_SAMPLES, FrameClock, annexb_to_picture, mix_into,
};

/// Longest sleep between passes over the hub queues.
const MAX_SLEEP: Duration = Duration::from_millis(10);
/// Largest Opus packet produced (RFC 6716 §3.4).
const MAX_OPUS_PACKET: usize = 1275;

pub(super) struct Worker {
    config: CompositeConfig,
    shared: Arc<Shared>,
    out: mpsc::Sender<CompositeOutput>,
    sources: Vec<SourceState>,
    composer: Composer,
    encoder: Encoder,
    opus: opus::Encoder,
    video_clock: FrameClock,
    audio_clock: FrameClock,
    annexb: Vec<u8>,
    mix: Vec<i16>,
    scratch: Vec<Vec<i16>>,
    filled: Vec<usize>,
    opus_out: Vec<u8>,
    force_idr: bool,
    /// Decode errors of participants who left (so the published count never goes back).
    errors_of_left: u64,
}

impl Worker {
    pub fn new(
        config: CompositeConfig,
        shared: Arc<Shared>,
        out: mpsc::Sender<CompositeOutput>,
    ) -> Result<Self, String> {
        let encoder_config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config)
            .map_err(|e| format!("openh264 encoder: {e}"))?;
        let mut opus = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)
            .map_err(|e| format!("libopus encoder: {e}"))?;
        opus.set_bitrate(opus::Bitrate::Bits(config.audio_bitrate as i32))
            .map_err(|e| format!("libopus bitrate: {e}"))?;
        Ok(Self {
            composer: Composer::new(config.width as usize, config.height as usize),
            video_clock: FrameClock::new(config.fps, 90_000),
            audio_clock: FrameClock::new(48_000 / FRAME_SAMPLES as u32, 48_000),
            config,
            shared,
            out,
            sources: Vec::new(),
            encoder,
            opus,
            annexb: Vec::new(),
            mix: vec![0; FRAME_LEN],
            scratch: Vec::new(),
            filled: Vec::new(),
            opus_out: vec![0; MAX_OPUS_PACKET],
            force_idr: true,
            errors_of_left: 0,
        })
    }

    /// Runs until the handle is dropped or the output queue is closed.
    pub fn run(mut self) {
        let start = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::Acquire) || self.out.is_closed() {
                break;
            }
            let busy = Instant::now();
            let pending = self.shared.pending.lock().expect("sources lock").take();
            if let Some(sources) = pending {
                self.set_sources(&sources);
            }
            if self.shared.keyframe.swap(false, Ordering::AcqRel) {
                self.force_idr = true;
            }
            for s in &mut self.sources {
                s.pump_video();
                s.pump_audio();
            }
            let now = start.elapsed();
            while let Some(tick) = self.audio_clock.poll(now) {
                self.mix_audio(tick.pts);
            }
            if let Some(tick) = self.video_clock.poll_latest(now) {
                self.compose_video(tick.pts);
            }
            self.publish_counters();
            self.shared
                .busy_ns
                .fetch_add(busy.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let next = self.video_clock.next_due().min(self.audio_clock.next_due());
            let sleep = next.saturating_sub(start.elapsed()).min(MAX_SLEEP);
            if !sleep.is_zero() {
                std::thread::sleep(sleep);
            }
        }
        tracing::debug!("composite thread stopped");
    }

    /// Applies a new stage: keeps known participants (and their decoders), adds new ones,
    /// unsubscribes the ones who left. Tile order follows the list.
    fn set_sources(&mut self, sources: &[StageSource]) {
        let mut old = std::mem::take(&mut self.sources);
        for s in sources.iter().take(self.config.max_tiles) {
            match old.iter().position(|o| o.id == s.id) {
                Some(i) => self.sources.push(old.swap_remove(i)),
                None => self.sources.push(SourceState::new(s)),
            }
        }
        self.errors_of_left += old.iter().map(|o| o.counters.decode_errors).sum::<u64>();
        self.scratch
            .resize_with(self.sources.len(), || vec![0; FRAME_LEN]);
        // The layout changed: start a fresh GOP so the new picture is decodable at once.
        self.force_idr = true;
    }

    fn mix_audio(&mut self, pts: u64) {
        self.filled.clear();
        for (s, buf) in self.sources.iter_mut().zip(&mut self.scratch) {
            self.filled.push(s.fifo.pop_into(buf));
        }
        let inputs: Vec<&[i16]> = self
            .scratch
            .iter()
            .zip(&self.filled)
            .map(|(buf, &n)| &buf[..n])
            .collect();
        mix_into(&mut self.mix, &inputs);
        match self.opus.encode(&self.mix, &mut self.opus_out) {
            Ok(len) => {
                let packet = Bytes::copy_from_slice(&self.opus_out[..len]);
                self.shared.audio_frames.fetch_add(1, Ordering::Relaxed);
                self.send(CompositeOutput::Audio { pts, packet });
            }
            Err(e) => tracing::warn!(error = %e, "Opus encode failed"),
        }
    }

    fn compose_video(&mut self, pts: u64) {
        let pictures: Vec<_> = self.sources.iter().map(|s| s.picture()).collect();
        let canvas = self.composer.compose(&pictures);
        for s in &mut self.sources {
            s.mark_composed();
        }
        if std::mem::take(&mut self.force_idr) {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (canvas.width(), canvas.height());
        let yuv = YUVSlices::new(
            (canvas.y(), canvas.u(), canvas.v()),
            (w, h),
            (w, w / 2, w / 2),
        );
        self.annexb.clear();
        match self.encoder.encode(&yuv) {
            Ok(stream) => stream.write_vec(&mut self.annexb),
            Err(e) => {
                tracing::warn!(error = %e, "composite encode failed");
                self.force_idr = true;
                return;
            }
        }
        let Some(picture) = annexb_to_picture(&self.annexb) else {
            return;
        };
        self.shared.frames.fetch_add(1, Ordering::Relaxed);
        self.send(CompositeOutput::Video { pts, picture });
    }

    fn send(&self, output: CompositeOutput) {
        if let Err(mpsc::error::TrySendError::Full(output)) = self.out.try_send(output) {
            let n = self.shared.output_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    kind = output.kind(),
                    "composite output queue full"
                );
            }
            if matches!(output, CompositeOutput::Video { .. }) {
                // The consumer lost a frame of the GOP: restart it so the stream stays decodable.
                self.shared.keyframe.store(true, Ordering::Release);
            }
        }
    }

    fn publish_counters(&self) {
        let (decoded, replaced, errors) = self.sources.iter().fold((0, 0, 0), |acc, s| {
            (
                acc.0 + s.counters.decoded,
                acc.1 + s.counters.replaced,
                acc.2 + s.counters.decode_errors,
            )
        });
        let s = &self.shared;
        s.skipped
            .store(self.video_clock.skipped(), Ordering::Relaxed);
        s.decoded_now.store(decoded, Ordering::Relaxed);
        s.replaced_now.store(replaced, Ordering::Relaxed);
        s.decode_errors_now
            .store(errors + self.errors_of_left, Ordering::Relaxed);
    }
}
