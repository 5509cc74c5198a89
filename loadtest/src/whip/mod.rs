//! Test/load client: WHIP publisher (RFC 9725) — offers sendonly H.264 + Opus (and optionally a
//! `chat` data channel), sends the synthetic media in real time and answers keyframe requests.
//! The sending end of onair's media path (feeds `ingest::Publisher`). Does network I/O.

mod pacer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Serialize;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::chat::ChatChannel;
use crate::error::ClientError;
use crate::media::{AudioConfig, AudioSource, VideoConfig, VideoLoop, VideoSource};
use crate::peer::{self, Peer, PeerEvents};
use crate::probe::LatencyProbe;
use crate::signaling;
use pacer::{AudioLevelStamp, Counters, NO_AUDIO_LEVEL, RtpOut};

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8080`; the offer goes to `{base}/whip/{room}`.
    pub base_url: String,
    /// Room to publish into.
    pub room: String,
    /// Sent as `Authorization: Bearer <token>` on POST and DELETE.
    pub token: Option<String>,
    /// Live-encoded synthetic video; `None` (and no `video_loop`) offers no video.
    pub video: Option<VideoConfig>,
    /// Replay this pre-encoded loop instead of encoding live (overrides `video`); lets a load
    /// generator encode once for many publishers.
    pub video_loop: Option<Arc<VideoLoop>>,
    /// Synthetic Opus tone; `None` offers no audio.
    pub audio: Option<AudioConfig>,
    /// Open a `chat` data channel in the offer.
    pub chat: bool,
    /// Note the send instant of every video packet here, for viewers in the same process to
    /// measure forwarding latency ([`LatencyProbe`]).
    pub latency_probe: Option<Arc<LatencyProbe>>,
    /// After this many frames, continue with a fresh encoder of this configuration (new
    /// SPS/PPS and an IDR), as a browser does when it changes resolution mid-broadcast.
    /// Ignored with `video_loop`.
    pub video_change: Option<(u64, VideoConfig)>,
    /// Hold the first Opus packets back this long, then send them at once: audio reaches the
    /// server late against its RTP timestamps (a sender whose audio path starts slowly),
    /// while the RTCP sender reports, made once packets flow in real time, describe capture
    /// time. For A/V sync tests.
    pub audio_hold: Option<Duration>,
}

impl Default for PublishOptions {
    /// `http://127.0.0.1:8080`, room `test`, no token, default video and audio, no chat.
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".to_owned(),
            room: "test".to_owned(),
            token: None,
            video: Some(VideoConfig::default()),
            video_loop: None,
            audio: Some(AudioConfig::default()),
            chat: false,
            latency_probe: None,
            video_change: None,
            audio_hold: None,
        }
    }
}

/// A snapshot of what a publisher sent and received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublisherStats {
    /// Video frames sent.
    pub frames_sent: u64,
    /// Of which IDR frames.
    pub keyframes_sent: u64,
    /// Frames the encoder produced no data for (not sent).
    pub frames_empty: u64,
    /// Video RTP packets sent.
    pub video_packets_sent: u64,
    /// Video RTP payload bytes sent.
    pub video_bytes_sent: u64,
    /// Opus RTP packets sent.
    pub audio_packets_sent: u64,
    /// Opus RTP payload bytes sent.
    pub audio_bytes_sent: u64,
    /// RTCP Picture Loss Indications received for the video track.
    pub plis_received: u64,
    /// RTCP Full Intra Requests received for the video track.
    pub firs_received: u64,
    /// RTP writes that failed while the connection was up.
    pub send_errors: u64,
    /// Whether the answer accepted the offered video.
    pub video_active: bool,
    /// Whether the answer accepted the offered audio.
    pub audio_active: bool,
    /// Whether the peer connection is currently connected.
    pub connected: bool,
}

/// A running WHIP publisher. Media flows from the moment the connection is up until
/// [`Publisher::close`], [`Publisher::drop_without_delete`] or drop.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    events: Arc<PeerEvents>,
    resource_url: String,
    etag: Option<String>,
    token: Option<String>,
    counters: Arc<Counters>,
    video_active: bool,
    audio_active: bool,
    /// RFC 6464 level stamped on Opus packets ([`NO_AUDIO_LEVEL`]: none).
    audio_level: Arc<AtomicU8>,
    audio_level_negotiated: bool,
    tasks: Vec<JoinHandle<()>>,
    chat: Option<ChatChannel>,
    closed: bool,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("resource_url", &self.resource_url)
            .field("state", &self.events.state())
            .finish()
    }
}

/// A local track plus the sender it was added with.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
}

async fn add_sendonly_track(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> Result<Outgoing, ClientError> {
    let ssrc: u32 = rand::random();
    let stream_id = "onair-loadtest".to_owned();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.clone(),
        format!("{kind}-{ssrc:08x}"),
        format!("onair-loadtest {kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )));
    let transceiver = pc
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id],
                send_encodings: vec![],
            }),
        )
        .await?;
    let sender = transceiver
        .sender()
        .await?
        .ok_or_else(|| ClientError::Protocol("sendonly transceiver without a sender".into()))?;
    Ok(Outgoing {
        track,
        ssrc,
        sender,
    })
}

/// The id the answer negotiated for the header extension `uri` on this sender, if any.
async fn negotiated_extension_id(out: &Outgoing, uri: &str) -> Option<u8> {
    let parameters = out.sender.get_parameters().await.ok()?;
    parameters
        .rtp_parameters
        .header_extensions
        .iter()
        .find(|ext| ext.uri == uri)
        .and_then(|ext| u8::try_from(ext.id).ok())
}

/// The payload type the answer negotiated for this sender, if it accepted the media at all.
async fn negotiated_payload_type(out: &Outgoing) -> Option<u8> {
    let parameters = out.sender.get_parameters().await.ok()?;
    parameters
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
}

impl Publisher {
    /// Offers, POSTs to `{base}/whip/{room}`, applies the answer and starts sending once ICE and
    /// DTLS are up. Fails with [`ClientError::Http`] when the server does not answer `201`.
    pub async fn connect(opts: PublishOptions) -> Result<Self, ClientError> {
        let url = signaling::endpoint_url(&opts.base_url, "whip", &opts.room)?;
        let bind_ip = signaling::bind_ip_for(&url).await?;
        let video = match (&opts.video_loop, opts.video) {
            (Some(frames), _) => Some(VideoSource::from_loop(Arc::clone(frames))),
            (None, Some(config)) => Some(VideoSource::new(config)?),
            (None, None) => None,
        };
        let audio = opts.audio.map(AudioSource::new).transpose()?;
        let video_change = match (&opts.video_loop, opts.video_change) {
            (None, Some((after, config))) => Some((after, VideoSource::new(config)?)),
            _ => None,
        };
        let peer = peer::build_peer(bind_ip, true, None).await?;
        match Self::start(&peer, url, &opts, video, audio, video_change).await {
            Ok(publisher) => Ok(publisher),
            Err(error) => {
                let _ = peer.pc.close().await;
                Err(error)
            }
        }
    }

    async fn start(
        peer: &Peer,
        url: reqwest::Url,
        opts: &PublishOptions,
        video: Option<VideoSource>,
        audio: Option<AudioSource>,
        video_change: Option<(u64, VideoSource)>,
    ) -> Result<Self, ClientError> {
        let video_out = match &video {
            Some(_) => {
                Some(add_sendonly_track(&peer.pc, RtpCodecKind::Video, peer::h264_codec()).await?)
            }
            None => None,
        };
        let audio_out = match &audio {
            Some(_) => {
                Some(add_sendonly_track(&peer.pc, RtpCodecKind::Audio, peer::opus_codec()).await?)
            }
            None => None,
        };
        let chat = if opts.chat {
            Some(ChatChannel::open(&peer.pc).await?)
        } else {
            None
        };
        let session = peer::negotiate(peer, url, opts.token.as_deref()).await?;

        let counters = Arc::new(Counters::default());
        let mut tasks = Vec::new();
        let (mut video_active, mut audio_active) = (false, false);
        if let (Some(out), Some(source)) = (video_out, video)
            && let Some(payload_type) = negotiated_payload_type(&out).await
        {
            let keyframe_request = Arc::new(AtomicBool::new(false));
            tasks.push(tokio::spawn(pacer::run_keyframe_requests(
                Arc::clone(&out.track),
                Arc::clone(&keyframe_request),
                Arc::clone(&counters),
            )));
            let rtp = RtpOut {
                track: out.track,
                ssrc: out.ssrc,
                payload_type,
            };
            tasks.push(tokio::spawn(pacer::run_video(
                rtp,
                source,
                keyframe_request,
                Arc::clone(&counters),
                peer.events.subscribe(),
                opts.latency_probe.clone(),
                video_change,
            )));
            video_active = true;
        }
        let audio_level = Arc::new(AtomicU8::new(NO_AUDIO_LEVEL));
        let mut audio_level_negotiated = false;
        if let (Some(out), Some(source)) = (audio_out, audio)
            && let Some(payload_type) = negotiated_payload_type(&out).await
        {
            let stamp = negotiated_extension_id(&out, peer::AUDIO_LEVEL_URI)
                .await
                .map(|id| AudioLevelStamp {
                    id,
                    level: Arc::clone(&audio_level),
                });
            audio_level_negotiated = stamp.is_some();
            let rtp = RtpOut {
                track: out.track,
                ssrc: out.ssrc,
                payload_type,
            };
            tasks.push(tokio::spawn(pacer::run_audio(
                rtp,
                source,
                Arc::clone(&counters),
                peer.events.subscribe(),
                stamp,
                opts.audio_hold,
            )));
            audio_active = true;
        }
        Ok(Self {
            pc: Arc::clone(&peer.pc),
            events: Arc::clone(&peer.events),
            resource_url: session.resource_url,
            etag: session.etag,
            token: opts.token.clone(),
            counters,
            video_active,
            audio_active,
            audio_level,
            audio_level_negotiated,
            tasks,
            chat,
            closed: false,
        })
    }

    /// Absolute URL of the WHIP session resource (from `Location`).
    pub fn resource_url(&self) -> &str {
        &self.resource_url
    }

    /// The `ETag` the server sent with `201`, if any.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The peer connection state right now.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.events.state()
    }

    /// Waits until ICE and DTLS are up; fails if the connection fails first or on timeout.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        self.events.wait_connected(timeout).await
    }

    /// Stamps every following Opus packet with this RFC 6464 audio level in -dBov (0 is the
    /// loudest, 127 silence; larger values count as 127), as a browser does from its
    /// microphone; `None` (the default) sends no level. No effect unless the answer accepted
    /// the extension ([`Publisher::audio_level_negotiated`]).
    pub fn set_audio_level(&self, dbov: Option<u8>) {
        let level = dbov.map_or(NO_AUDIO_LEVEL, |l| l.min(127));
        self.audio_level.store(level, Ordering::Relaxed);
    }

    /// Whether the answer negotiated `urn:ietf:params:rtp-hdrext:ssrc-audio-level` on audio.
    pub fn audio_level_negotiated(&self) -> bool {
        self.audio_level_negotiated
    }

    /// The `chat` data channel, when [`PublishOptions::chat`] asked for one.
    pub fn chat(&self) -> Option<&ChatChannel> {
        self.chat.as_ref()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        PublisherStats {
            frames_sent: load(&c.frames_sent),
            keyframes_sent: load(&c.keyframes_sent),
            frames_empty: load(&c.frames_empty),
            video_packets_sent: load(&c.video_packets_sent),
            video_bytes_sent: load(&c.video_bytes_sent),
            audio_packets_sent: load(&c.audio_packets_sent),
            audio_bytes_sent: load(&c.audio_bytes_sent),
            plis_received: load(&c.plis_received),
            firs_received: load(&c.firs_received),
            send_errors: load(&c.send_errors),
            video_active: self.video_active,
            audio_active: self.audio_active,
            connected: self.events.state() == RTCPeerConnectionState::Connected,
        }
    }

    /// Ends the publish properly: HTTP DELETE on the resource, then closes the connection.
    /// The connection is closed even when the DELETE fails (whose error is returned).
    pub async fn close(mut self) -> Result<(), ClientError> {
        let deleted = signaling::delete(&self.resource_url, self.token.as_deref()).await;
        self.shutdown().await;
        deleted
    }

    /// Simulates a crash: stops sending and closes the peer connection without telling the
    /// server over HTTP, which must notice through ICE/DTLS.
    pub async fn drop_without_delete(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if !std::mem::replace(&mut self.closed, true)
            && let Err(error) = self.pc.close().await
        {
            tracing::debug!(%error, "closing publisher peer connection");
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if !self.closed {
            peer::close_in_background(Arc::clone(&self.pc));
        }
    }
}
