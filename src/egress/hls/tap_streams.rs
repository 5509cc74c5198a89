//! How the HLS tap of a room starts, changes and ends streams and recordings (egress path,
//! part of `tap`): a stream with video from its SPS/PPS or an audio-only one, new parameter
//! sets mid-stream (a new LL-HLS init; the `avc3` recording goes on), and the recording of
//! each publisher session. Does I/O through the store and the recorder.

use std::sync::Arc;

use bytes::Bytes;

use super::super::store::{HlsStream, StreamInfo};
use super::{CHANNELS, ParameterSets, Segmenter, Stream, Tap};
use crate::core::fmp4::{TrackConfig, init_segment, video_dimensions};
use crate::core::h264::parse_sps;
use crate::core::hls::Rendition;
use crate::egress::recorder::Recording;

impl Tap {
    /// Pushes the audio held while the stream was starting.
    pub(super) fn push_held_audio(&mut self) {
        let (Some(source), Some(stream)) = (self.source.as_mut(), self.stream.as_mut()) else {
            return;
        };
        for (pts, payload) in std::mem::take(&mut source.held_audio) {
            if let Err(e) = stream.segmenter.push_audio(pts, payload) {
                tracing::trace!(error = %e, "Opus packet refused");
            }
        }
    }

    /// A session that sent audio and no video for [`AUDIO_ONLY_WAIT`]: an audio-only stream
    /// (parts and segments cut on time) and recording.
    pub(super) fn start_audio_only(&mut self) {
        let Some(first) = self
            .source
            .as_ref()
            .and_then(|s| s.held_audio.first().map(|(pts, _)| *pts))
        else {
            return;
        };
        if !self.start_stream(None) {
            return;
        }
        self.ensure_recording(first * 15 / 8);
        self.push_held_audio();
        self.drain();
    }

    /// Ends an audio-only stream that video is joining: its playlists end, its recording is
    /// finished.
    pub(super) fn end_audio_only(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            stream.segmenter.flush();
        }
        self.drain();
        if let Some(recording) = self.source.as_mut().and_then(|s| s.recording.take()) {
            recording.finish();
        }
        if let Some(stream) = self.stream.take() {
            tracing::info!(
                room = self.room.name(),
                "video joined an audio-only broadcast: new LL-HLS stream"
            );
            stream.hls.end();
        }
    }

    /// A new stream (new id, media sequence from 0) for the current source; audio-only
    /// without `params`.
    pub(super) fn start_stream(&mut self, params: Option<ParameterSets>) -> bool {
        let has_audio = self.source.as_ref().is_some_and(|s| s.audio_packets > 0);
        let Some((info, video_init, audio_init)) = inits(params.as_ref(), has_audio) else {
            tracing::warn!(
                room = self.room.name(),
                "parameter sets onair cannot describe; waiting"
            );
            return false;
        };
        let timing = self.app.hls.timing();
        let hls = Arc::new(HlsStream::new(
            rand::random(),
            timing,
            info,
            video_init,
            audio_init,
        ));
        if self.app.config.hls {
            self.app.hls.publish(self.room.name(), hls.clone());
        }
        tracing::info!(
            room = self.room.name(),
            stream = format!("{:08x}", hls.stream_id()),
            audio = has_audio,
            video = params.is_some(),
            "LL-HLS stream started"
        );
        self.stream = Some(Stream {
            hls,
            segmenter: Segmenter::new(timing, params.is_some(), has_audio),
            params,
            has_audio,
        });
        true
    }

    /// New SPS/PPS mid-stream (the publisher changed its resolution): a new init
    /// (`EXT-X-MAP`) after a discontinuity. The recording goes on: its `avc3` track takes
    /// the new parameter sets from the IDR's in-band SPS/PPS.
    pub(super) fn new_parameter_sets(&mut self, params: ParameterSets) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let Some((info, Some(video_init), _)) = inits(Some(&params), stream.has_audio) else {
            return;
        };
        stream.segmenter.flush();
        self.drain();
        if let Some(stream) = self.stream.as_mut() {
            tracing::debug!(
                room = self.room.name(),
                resolution = ?info.resolution,
                "new video parameter sets: new LL-HLS init after a discontinuity"
            );
            stream.hls.set_init(Rendition::Video, video_init, info);
            stream.params = Some(params);
        }
    }

    /// Starts the source's recording, unless it runs, with media time `origin` (90 kHz) as
    /// its time zero.
    pub(super) fn ensure_recording(&mut self, origin: u64) {
        let (Some(source), Some(stream)) = (self.source.as_mut(), self.stream.as_ref()) else {
            return;
        };
        if source.recording.is_some() {
            return;
        }
        let mut tracks = Vec::new();
        if let Some((sps, pps)) = stream.params.clone() {
            tracks.push(TrackConfig::VideoInBand { sps, pps });
        }
        if stream.has_audio {
            tracks.push(TrackConfig::Audio { channels: CHANNELS });
        }
        let Ok(init) = init_segment(&tracks) else {
            return;
        };
        let (origin_media, origin_wall) = source.origin;
        let origin_ms =
            origin_wall.saturating_add_signed((origin as i64 - origin_media as i64) / 90);
        source.recording = Recording::start(
            &self.app.recordings,
            &self.app.tasks,
            self.room.name(),
            init,
            origin,
            origin_ms,
        );
    }
}

/// The stream description and the init segments of each rendition: video from its
/// parameter sets (none: audio only), and audio when `audio`.
fn inits(
    params: Option<&ParameterSets>,
    audio: bool,
) -> Option<(StreamInfo, Option<Bytes>, Option<Bytes>)> {
    let (video_codec, resolution, video) = match params {
        Some((sps, pps)) => {
            let parsed = parse_sps(sps).ok()?;
            let resolution = video_dimensions(sps).ok()?;
            let init = init_segment(&[TrackConfig::Video {
                sps: sps.clone(),
                pps: pps.clone(),
            }])
            .ok()?;
            (
                Some(parsed.codecs_string()),
                Some(resolution),
                Some(Bytes::from(init)),
            )
        }
        None if audio => (None, None, None),
        None => return None,
    };
    let audio_init = if audio {
        Some(Bytes::from(
            init_segment(&[TrackConfig::Audio { channels: CHANNELS }]).ok()?,
        ))
    } else {
        None
    };
    Some((
        StreamInfo {
            video_codec,
            resolution,
            audio_channels: audio.then_some(CHANNELS),
        },
        video,
        audio_init,
    ))
}
