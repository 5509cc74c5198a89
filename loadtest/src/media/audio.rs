//! Test/load client: synthetic Opus audio source — a continuous sine tone encoded with libopus
//! into fixed-duration packets. CPU only, no I/O.

use std::f64::consts::TAU;
use std::time::Duration;

use bytes::Bytes;
use opus::{Application, Channels, Encoder};

use crate::error::MediaError;

/// The RTP clock rate of Opus, whatever the encoder's sample rate (RFC 7587 §4.1).
pub const OPUS_RTP_CLOCK_RATE: u32 = 48_000;

/// Largest Opus packet this source produces (RFC 6716 §3.4 recommends 1275 per frame).
const MAX_PACKET: usize = 1500;

/// Peak amplitude of the tone, a quarter of full scale.
const AMPLITUDE: f64 = 0.25 * i16::MAX as f64;

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// Encoder sample rate: 8000, 12000, 16000, 24000 or 48000.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo; both channels carry the same tone).
    pub channels: u16,
    /// Packet duration in milliseconds: 10, 20, 40 or 60.
    pub frame_ms: u32,
    /// Tone frequency in Hz, below half the sample rate.
    pub freq_hz: u32,
}

impl Default for AudioConfig {
    /// 48 kHz stereo, 20 ms packets, a 440 Hz tone.
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 2,
            frame_ms: 20,
            freq_hz: 440,
        }
    }
}

impl AudioConfig {
    /// The duration of one packet.
    pub fn frame_duration(&self) -> Duration {
        Duration::from_millis(u64::from(self.frame_ms))
    }

    /// How far the RTP timestamp advances per packet (48 kHz clock, RFC 7587 §4.1).
    pub fn rtp_timestamp_increment(&self) -> u32 {
        OPUS_RTP_CLOCK_RATE / 1000 * self.frame_ms
    }

    /// Samples per channel in one packet at the encoder's sample rate.
    pub fn samples_per_frame(&self) -> usize {
        (self.sample_rate / 1000 * self.frame_ms) as usize
    }

    /// Checks the limits documented on each field.
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |why: &str| Err(MediaError::Config(format!("{why}: {self:?}")));
        if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&self.sample_rate) {
            return bad("Opus sample rate must be 8, 12, 16, 24 or 48 kHz");
        }
        if !(1..=2).contains(&self.channels) {
            return bad("channels must be 1 or 2");
        }
        if ![10, 20, 40, 60].contains(&self.frame_ms) {
            return bad("frame_ms must be 10, 20, 40 or 60");
        }
        if self.freq_hz == 0 || self.freq_hz >= self.sample_rate / 2 {
            return bad("freq_hz must be between 1 and half the sample rate");
        }
        Ok(())
    }
}

/// The synthetic audio source: one Opus packet of tone per call, paced by the caller.
pub struct AudioSource {
    config: AudioConfig,
    encoder: Encoder,
    phase: f64,
    pcm: Vec<i16>,
    out: Vec<u8>,
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioSource")
            .field("config", &self.config)
            .finish()
    }
}

impl AudioSource {
    /// A libopus encoder (application "audio") for `config`.
    pub fn new(config: AudioConfig) -> Result<Self, MediaError> {
        config.validate()?;
        let channels = if config.channels == 1 {
            Channels::Mono
        } else {
            Channels::Stereo
        };
        let encoder = Encoder::new(config.sample_rate, channels, Application::Audio)?;
        Ok(Self {
            config,
            encoder,
            phase: 0.0,
            pcm: vec![0; config.samples_per_frame() * usize::from(config.channels)],
            out: vec![0; MAX_PACKET],
        })
    }

    /// The configuration.
    pub fn config(&self) -> AudioConfig {
        self.config
    }

    /// Encodes the next `frame_ms` of tone (the phase continues across packets).
    pub fn next_packet(&mut self) -> Result<Bytes, MediaError> {
        let step = TAU * f64::from(self.config.freq_hz) / f64::from(self.config.sample_rate);
        let channels = usize::from(self.config.channels);
        for frame in self.pcm.chunks_exact_mut(channels) {
            let sample = (self.phase.sin() * AMPLITUDE) as i16;
            frame.fill(sample);
            self.phase = (self.phase + step) % TAU;
        }
        let len = self.encoder.encode(&self.pcm, &mut self.out)?;
        Ok(Bytes::copy_from_slice(&self.out[..len]))
    }
}
