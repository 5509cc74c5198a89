//! One stage participant as the composite sees it (egress path: the participant's `TrackHub`
//! queues -> RFC 6184 depacketizer -> openh264 decode -> latest picture; Opus decode -> PCM
//! FIFO). Runs on the composite's codec thread: it only `try_recv`s from its hub queues, so a
//! slow composite loses packets on its own queues (counted by the hubs), never stalls forwarding.

use std::sync::Arc;

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;

use crate::core::composite::{I420Frame, MIX_CHANNELS, PcmFifo, PlanesRef, avcc_to_annexb};
use crate::core::h264::H264Depacketizer;
use crate::core::rtp::TimestampUnwrapper;
use crate::room::{Subscription, TrackHub};

/// Largest Opus frame: 120 ms at 48 kHz (RFC 6716 §2.1.4), per channel.
const MAX_OPUS_SAMPLES: usize = 5760;
/// Audio buffered per participant before it joins the mix (60 ms, interleaved values).
const PREBUFFER: usize = 2880 * MIX_CHANNELS;
/// Most audio held per participant (240 ms); older samples are dropped.
const FIFO_CAPACITY: usize = 11_520 * MIX_CHANNELS;
/// A gap in audio timestamps up to this long (48 kHz samples) is concealed; longer is a jump.
const MAX_CONCEALED_GAP: u64 = 9_600;
/// Packets taken from one hub queue per pass, so one busy source cannot starve the clock.
const MAX_PACKETS_PER_PASS: usize = 512;

/// A participant of the composite: who it is and where its media comes from.
#[derive(Clone)]
pub struct StageSource {
    /// Stable id of the participant while on stage (its tile keeps its place by this id).
    pub id: u64,
    /// Its H.264 hub.
    pub video: Option<Arc<TrackHub>>,
    /// Its Opus hub.
    pub audio: Option<Arc<TrackHub>>,
}

impl std::fmt::Debug for StageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageSource")
            .field("id", &self.id)
            .field("video", &self.video.is_some())
            .field("audio", &self.audio.is_some())
            .finish()
    }
}

/// Counters the codec thread adds up over its sources.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SourceCounters {
    pub decoded: u64,
    pub replaced: u64,
    pub decode_errors: u64,
}

struct Track {
    hub: Arc<TrackHub>,
    sub: Subscription,
}

impl Drop for Track {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.sub.id);
    }
}

/// Decoding state of one participant, owned by the codec thread.
pub(super) struct SourceState {
    pub id: u64,
    video: Option<Track>,
    audio: Option<Track>,
    depacketizer: H264Depacketizer,
    decoder: Option<Decoder>,
    annexb: Vec<u8>,
    /// Latest decoded picture, and whether it has been composed since.
    picture: I420Frame,
    has_picture: bool,
    fresh: bool,
    upstream: Option<u64>,
    opus: Option<opus::Decoder>,
    audio_ts: TimestampUnwrapper,
    expected_ts: Option<u64>,
    pcm: Vec<i16>,
    pub fifo: PcmFifo,
    pub counters: SourceCounters,
}

impl SourceState {
    /// Subscribes to the participant's hubs and asks for a keyframe to start decoding.
    pub fn new(source: &StageSource) -> Self {
        let track = |hub: &Option<Arc<TrackHub>>| {
            hub.as_ref().map(|hub| Track {
                hub: hub.clone(),
                sub: hub.subscribe(),
            })
        };
        let state = Self {
            id: source.id,
            video: track(&source.video),
            audio: track(&source.audio),
            depacketizer: H264Depacketizer::new(),
            decoder: None,
            annexb: Vec::new(),
            picture: I420Frame::default(),
            has_picture: false,
            fresh: false,
            upstream: None,
            opus: None,
            audio_ts: TimestampUnwrapper::new(),
            expected_ts: None,
            pcm: vec![0; MAX_OPUS_SAMPLES * MIX_CHANNELS],
            fifo: PcmFifo::new(PREBUFFER, FIFO_CAPACITY),
            counters: SourceCounters::default(),
        };
        if let Some(v) = &state.video {
            v.hub.request_keyframe();
        }
        state
    }

    /// The latest picture, if any has been decoded.
    pub fn picture(&self) -> Option<PlanesRef<'_>> {
        self.has_picture.then(|| self.picture.as_planes())
    }

    /// Marks the latest picture as composed.
    pub fn mark_composed(&mut self) {
        self.fresh = false;
    }

    /// Takes what arrived on the video queue and decodes every complete access unit.
    pub fn pump_video(&mut self) {
        for _ in 0..MAX_PACKETS_PER_PASS {
            let Some(track) = self.video.as_mut() else {
                return;
            };
            let Ok(packet) = track.sub.rx.try_recv() else {
                break;
            };
            if self.upstream != Some(packet.source) {
                // A new publisher session (a reconnect): start decoding afresh.
                self.upstream = Some(packet.source);
                self.depacketizer = H264Depacketizer::new();
                self.decoder = None;
            }
            self.depacketizer
                .push(packet.seq, packet.ts, packet.marker, packet.payload.clone());
        }
        let wants_keyframe = self.depacketizer.take_keyframe_request();
        while let Some(au) = self.depacketizer.poll() {
            self.decode(&au.data);
        }
        if wants_keyframe && let Some(track) = &self.video {
            track.hub.request_keyframe();
        }
    }

    fn decode(&mut self, avcc: &[u8]) {
        if !avcc_to_annexb(avcc, &mut self.annexb) {
            self.counters.decode_errors += 1;
            return;
        }
        if self.decoder.is_none() {
            match Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new()) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "openh264 decoder unavailable");
                    return;
                }
            }
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        match decoder.decode(&self.annexb) {
            Ok(Some(yuv)) => {
                let (width, height) = yuv.dimensions();
                let (y_stride, uv_stride, _) = yuv.strides();
                let planes = PlanesRef {
                    width,
                    height,
                    y: yuv.y(),
                    u: yuv.u(),
                    v: yuv.v(),
                    y_stride,
                    uv_stride,
                };
                if planes.is_consistent() {
                    if self.fresh {
                        self.counters.replaced += 1;
                    }
                    self.picture.copy_from(&planes);
                    self.has_picture = true;
                    self.fresh = true;
                    self.counters.decoded += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.counters.decode_errors += 1;
                tracing::trace!(source = self.id, error = %e, "H.264 decode error; asking for a keyframe");
                if let Some(track) = &self.video {
                    track.hub.request_keyframe();
                }
            }
        }
    }

    /// Takes what arrived on the audio queue, decodes it (concealing short gaps) into the FIFO.
    pub fn pump_audio(&mut self) {
        for _ in 0..MAX_PACKETS_PER_PASS {
            let Some(track) = self.audio.as_mut() else {
                return;
            };
            let Ok(packet) = track.sub.rx.try_recv() else {
                break;
            };
            if self.opus.is_none() {
                match opus::Decoder::new(48_000, opus::Channels::Stereo) {
                    Ok(d) => self.opus = Some(d),
                    Err(e) => {
                        tracing::warn!(error = %e, "libopus decoder unavailable");
                        return;
                    }
                }
            }
            let ts = self.audio_ts.unwrap(packet.ts);
            let Some(decoder) = self.opus.as_mut() else {
                return;
            };
            if let Some(expected) = self.expected_ts {
                if ts < expected {
                    continue; // late or duplicate
                }
                let gap = ts - expected;
                if gap > 0 && gap <= MAX_CONCEALED_GAP {
                    // Packet loss concealment for the missing span (RFC 6716 §4.4).
                    let n = (gap as usize).min(MAX_OPUS_SAMPLES);
                    if let Ok(got) = decoder.decode(&[], &mut self.pcm[..n * MIX_CHANNELS], false) {
                        self.fifo.push(&self.pcm[..got * MIX_CHANNELS]);
                    }
                }
            }
            match decoder.decode(&packet.payload, &mut self.pcm, false) {
                Ok(samples) => {
                    self.fifo.push(&self.pcm[..samples * MIX_CHANNELS]);
                    self.expected_ts = Some(ts + samples as u64);
                }
                Err(_) => self.counters.decode_errors += 1,
            }
        }
    }
}
