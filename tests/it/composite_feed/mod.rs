//! Test/benchmark support for the room composite (feeds `room::TrackHub`s the way a publisher
//! does): a synthetic participant whose picture is two solid colour blocks encoded live with
//! openh264, or camera-like content (the loadtest's moving pattern with a band of fresh noise
//! every frame, pre-encoded once at a realistic bitrate and replayed), packetized to RTP
//! (RFC 6184 single NAL units and FU-A), and whose audio is a sine tone (or silence) encoded
//! with libopus. CPU work on the caller's thread; no network.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair::core::composite::{I420Frame, Rect, annexb_nals};
use onair::egress::composite::StageSource;
use onair::room::{HubConfig, MediaPacket, TrackHub, TrackKind};
use onair_loadtest::{VideoConfig, VideoLoop};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSlices;

/// Largest RTP payload produced.
const MTU: usize = 1200;

/// Two solid blocks: the top half and the bottom half of the picture, each `(y, u, v)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    pub top: (u8, u8, u8),
    pub bottom: (u8, u8, u8),
}

/// Pattern of participant A: dark blue over mid grey.
pub const PATTERN_A: Blocks = Blocks {
    top: (60, 200, 110),
    bottom: (120, 128, 128),
};
/// Pattern of participant B: bright yellow over dark red.
pub const PATTERN_B: Blocks = Blocks {
    top: (200, 40, 150),
    bottom: (70, 100, 200),
};

/// A fresh pair of hubs, as a room has for one participant.
pub fn hubs() -> (Arc<TrackHub>, Arc<TrackHub>) {
    let config = HubConfig {
        queue: 1024,
        cache: 64,
        pli_interval: Duration::from_millis(100),
        keyframe_replay: Duration::ZERO,
    };
    let hub = |kind| Arc::new(TrackHub::new(kind, config));
    (hub(TrackKind::Video), hub(TrackKind::Audio))
}

/// Camera-like content for a `width` x `height` participant at 30 fps: the loadtest's moving
/// pattern with noise over the bottom `noise_percent` % (fresh every frame), encoded once at
/// `bitrate_bps` (3 s, an IDR every 2 s). Check [`VideoLoop::bitrate_bps`] for what it reached.
pub fn camera_loop(
    width: u32,
    height: u32,
    bitrate_bps: u32,
    noise_percent: f64,
) -> Arc<VideoLoop> {
    let config = VideoConfig {
        width,
        height,
        fps: 30,
        bitrate_bps,
        keyframe_interval_frames: 60,
    };
    VideoLoop::encode_with_noise(config, 90, noise_percent).expect("camera-like loop encodes")
}

/// Where a participant's access units come from.
enum Pictures {
    /// A fixed picture encoded live (IDRs on request).
    Live {
        encoder: Box<Encoder>,
        picture: I420Frame,
    },
    /// A pre-encoded loop replayed (a keyframe request jumps to the loop's next IDR).
    Replay { frames: Arc<VideoLoop>, pos: usize },
}

/// One synthetic participant publishing into its hubs.
pub struct SyntheticParticipant {
    pub video: Arc<TrackHub>,
    pub audio: Arc<TrackHub>,
    source: u64,
    pictures: Pictures,
    opus: opus::Encoder,
    tone_hz: Option<f64>,
    phase: f64,
    video_seq: u16,
    audio_seq: u16,
    frame: u32,
    audio_ts: u32,
    annexb: Vec<u8>,
    video_bytes: u64,
}

impl SyntheticParticipant {
    /// A `width` x `height` participant drawing `blocks`, with a tone at `tone_hz` (or silence).
    pub fn new(
        source: u64,
        width: usize,
        height: usize,
        blocks: Blocks,
        tone_hz: Option<f64>,
    ) -> Self {
        let (video, audio) = hubs();
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(600_000))
            .max_frame_rate(FrameRate::from_hz(30.0))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).expect("openh264 encoder");
        let mut picture = I420Frame::new(width, height);
        let (y, u, v) = blocks.top;
        picture.fill(y, u, v);
        picture.fill_rect(Rect::new(0, height / 2, width, height / 2), blocks.bottom);
        let pictures = Pictures::Live {
            encoder: Box::new(encoder),
            picture,
        };
        Self::with_pictures(source, video, audio, pictures, tone_hz)
    }

    /// A participant replaying `frames` (see [`camera_loop`]), with a tone at `tone_hz`.
    pub fn replaying(source: u64, frames: Arc<VideoLoop>, tone_hz: Option<f64>) -> Self {
        let (video, audio) = hubs();
        let pictures = Pictures::Replay { frames, pos: 0 };
        Self::with_pictures(source, video, audio, pictures, tone_hz)
    }

    fn with_pictures(
        source: u64,
        video: Arc<TrackHub>,
        audio: Arc<TrackHub>,
        pictures: Pictures,
        tone_hz: Option<f64>,
    ) -> Self {
        let opus = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)
            .expect("opus encoder");
        Self {
            video,
            audio,
            source,
            pictures,
            opus,
            tone_hz,
            phase: 0.0,
            video_seq: 0,
            audio_seq: 0,
            frame: 0,
            audio_ts: 0,
            annexb: Vec::new(),
            video_bytes: 0,
        }
    }

    /// Encodes (or replays) and publishes one video frame (an IDR when a consumer asked for
    /// one).
    pub fn send_frame(&mut self) {
        let wants_idr = self.video.take_keyframe_request();
        self.annexb.clear();
        match &mut self.pictures {
            Pictures::Live { encoder, picture } => {
                if self.frame == 0 || wants_idr {
                    encoder.force_intra_frame();
                }
                let (w, h) = (picture.width(), picture.height());
                let planes = (picture.y(), picture.u(), picture.v());
                let yuv = YUVSlices::new(planes, (w, h), (w, w / 2, w / 2));
                encoder
                    .encode(&yuv)
                    .expect("encode")
                    .write_vec(&mut self.annexb);
            }
            Pictures::Replay { frames, pos } => {
                let all = frames.frames();
                if wants_idr && !all[*pos].keyframe {
                    *pos = (*pos + 1..all.len())
                        .find(|&i| all[i].keyframe)
                        .unwrap_or(0);
                }
                self.annexb.extend_from_slice(&all[*pos].data);
                *pos = (*pos + 1) % all.len();
            }
        }
        self.video_bytes += self.annexb.len() as u64;
        let ts = self.frame.wrapping_mul(3000);
        self.frame += 1;
        let nals: Vec<Vec<u8>> = annexb_nals(&self.annexb).map(<[u8]>::to_vec).collect();
        let mut payloads = Vec::new();
        for nal in &nals {
            if nal.len() <= MTU {
                payloads.push(Bytes::copy_from_slice(nal));
                continue;
            }
            // FU-A (RFC 6184 §5.8): indicator keeps F/NRI, type 28; header S/E + NAL type.
            let (header, body) = (nal[0], &nal[1..]);
            let chunks: Vec<&[u8]> = body.chunks(MTU - 2).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut fu = Vec::with_capacity(chunk.len() + 2);
                fu.push((header & 0xe0) | 28);
                let start = if i == 0 { 0x80 } else { 0 };
                let end = if i + 1 == chunks.len() { 0x40 } else { 0 };
                fu.push(start | end | (header & 0x1f));
                fu.extend_from_slice(chunk);
                payloads.push(Bytes::from(fu));
            }
        }
        let keyframe = nals.iter().any(|n| n[0] & 0x1f == 5);
        let count = payloads.len();
        for (i, payload) in payloads.into_iter().enumerate() {
            self.video.publish(MediaPacket {
                source: self.source,
                seq: self.video_seq,
                ts,
                marker: i + 1 == count,
                keyframe: keyframe && i == 0,
                payload,
            });
            self.video_seq = self.video_seq.wrapping_add(1);
        }
    }

    /// Annex-B bytes of video published so far.
    pub fn video_bytes(&self) -> u64 {
        self.video_bytes
    }

    /// Encodes and publishes 20 ms of audio.
    pub fn send_audio(&mut self) {
        let mut pcm = [0i16; 1920];
        if let Some(hz) = self.tone_hz {
            for pair in pcm.chunks_exact_mut(2) {
                let v = (self.phase.sin() * 8000.0) as i16;
                pair[0] = v;
                pair[1] = v;
                self.phase += std::f64::consts::TAU * hz / 48_000.0;
            }
        }
        let mut out = [0u8; 1275];
        let len = self.opus.encode(&pcm, &mut out).expect("opus encode");
        self.audio.publish(MediaPacket {
            source: self.source,
            seq: self.audio_seq,
            ts: self.audio_ts,
            marker: false,
            keyframe: false,
            payload: Bytes::copy_from_slice(&out[..len]),
        });
        self.audio_seq = self.audio_seq.wrapping_add(1);
        self.audio_ts = self.audio_ts.wrapping_add(960);
    }
}

/// Publishes every participant in real time (30 fps video, 20 ms audio) on a thread until
/// `stop` is set; the thread hands the participants back (for their byte counts).
pub fn run_feeder(
    mut participants: Vec<SyntheticParticipant>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<SyntheticParticipant>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut frames, mut audio) = (0u64, 0u64);
        while !stop.load(Ordering::Acquire) {
            let now = start.elapsed();
            while Duration::from_millis(audio * 20) <= now {
                participants
                    .iter_mut()
                    .for_each(SyntheticParticipant::send_audio);
                audio += 1;
            }
            if Duration::from_nanos(frames * 33_333_333) <= now {
                participants
                    .iter_mut()
                    .for_each(SyntheticParticipant::send_frame);
                frames += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        participants
    })
}

/// The composite's sources for `participants`, with ids 1, 2, ... in order.
pub fn stage_sources(participants: &[&SyntheticParticipant]) -> Vec<StageSource> {
    participants
        .iter()
        .zip(1..)
        .map(|(p, id)| StageSource {
            id,
            video: Some(p.video.clone()),
            audio: Some(p.audio.clone()),
        })
        .collect()
}
