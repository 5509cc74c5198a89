//! Test/load client: WHEP viewer — offers recvonly H.264 + Opus (and optionally a `chat` data
//! channel), then measures (and optionally decodes) what onair's `egress::Viewer` sends.
//! The receiving end of onair's media path. Does network I/O.

mod reader;
pub mod seq;
mod stats;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::chat::ChatChannel;
use crate::error::ClientError;
use crate::histogram::Histogram;
use crate::media::LumaFrame;
use crate::peer::{self, OnTrack, Peer, PeerEvents};
use crate::probe::LatencyProbe;
use crate::signaling;
use reader::ReaderShared;
use stats::LatencyRecorder;
pub use stats::{JoinTimeline, LatencyCounts, TrackStats, ViewerStats};

/// How often [`Viewer::wait_for`] re-evaluates its predicate.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// How to view.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8080`; the offer goes to `{base}/whep/{room}`.
    pub base_url: String,
    /// Room to watch.
    pub room: String,
    /// Sent as `Authorization: Bearer <token>` on POST and DELETE (public rooms need none).
    pub token: Option<String>,
    /// Reassemble and decode the video (costly: for tests, not for a thousand viewers).
    pub decode: bool,
    /// Open a `chat` data channel in the offer.
    pub chat: bool,
    /// When decoding, send a PLI (at most every 500 ms) while waiting for an IDR after a
    /// dropped frame, as a browser would. Off by default so tests see only the server's own
    /// keyframe requests.
    pub request_keyframes: bool,
    /// Look every received video payload up in this probe, shared with a publisher in the same
    /// process, to measure per-packet forwarding latency ([`Viewer::latency_histogram`]).
    pub latency_probe: Option<Arc<LatencyProbe>>,
}

impl Default for ViewOptions {
    /// `http://127.0.0.1:8080`, room `test`, no token, no decoding, no chat.
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".to_owned(),
            room: "test".to_owned(),
            token: None,
            decode: false,
            chat: false,
            request_keyframes: false,
            latency_probe: None,
        }
    }
}

/// A connected WHEP viewer. Tracks are read from the moment the server sends them until
/// [`Viewer::close`], [`Viewer::drop_without_delete`] or drop.
pub struct Viewer {
    pc: Arc<dyn PeerConnection>,
    events: Arc<PeerEvents>,
    shared: Arc<ReaderShared>,
    resource_url: String,
    etag: Option<String>,
    token: Option<String>,
    chat: Option<ChatChannel>,
    posted_at: Instant,
    answered_at: Instant,
    closed: bool,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("resource_url", &self.resource_url)
            .field("state", &self.events.state())
            .finish()
    }
}

impl Viewer {
    /// Offers, POSTs to `{base}/whep/{room}` and applies the answer; readers start as the
    /// server's tracks arrive. Fails with [`ClientError::Http`] when the server does not answer
    /// `201`.
    pub async fn connect(opts: ViewOptions) -> Result<Self, ClientError> {
        let url = signaling::endpoint_url(&opts.base_url, "whep", &opts.room)?;
        let bind_ip = signaling::bind_ip_for(&url).await?;
        let latency = opts.latency_probe.clone().map(LatencyRecorder::new);
        let shared = Arc::new(ReaderShared::new(
            opts.decode,
            opts.request_keyframes,
            latency,
        ));
        let for_tracks = Arc::clone(&shared);
        let on_track: OnTrack = Arc::new(move |track| {
            tokio::spawn(reader::read_track(track, Arc::clone(&for_tracks)));
        });
        let peer = peer::build_peer(bind_ip, false, Some(on_track)).await?;
        match Self::start(&peer, url, &opts, Arc::clone(&shared)).await {
            Ok(viewer) => Ok(viewer),
            Err(error) => {
                shared.gate.close();
                let _ = peer.pc.close().await;
                Err(error)
            }
        }
    }

    async fn start(
        peer: &Peer,
        url: reqwest::Url,
        opts: &ViewOptions,
        shared: Arc<ReaderShared>,
    ) -> Result<Self, ClientError> {
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            peer.pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await?;
        }
        let chat = if opts.chat {
            Some(ChatChannel::open(&peer.pc).await?)
        } else {
            None
        };
        let session = peer::negotiate(peer, url, opts.token.as_deref()).await?;
        Ok(Self {
            pc: Arc::clone(&peer.pc),
            events: Arc::clone(&peer.events),
            shared,
            resource_url: session.resource_url,
            etag: session.etag,
            token: opts.token.clone(),
            chat,
            posted_at: session.posted_at,
            answered_at: session.answered_at,
            closed: false,
        })
    }

    /// Absolute URL of the WHEP session resource (from `Location`).
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

    /// The `chat` data channel, when [`ViewOptions::chat`] asked for one.
    pub fn chat(&self) -> Option<&ChatChannel> {
        self.chat.as_ref()
    }

    /// A snapshot of everything measured so far.
    pub fn stats(&self) -> ViewerStats {
        let video = self.shared.video.snapshot();
        let audio = self.shared.audio.snapshot();
        let since_start = |at: Instant| at.saturating_duration_since(self.shared.started);
        let timeline = JoinTimeline {
            posted: Some(since_start(self.posted_at)),
            answered: Some(since_start(self.answered_at)),
            ice_connected: self.events.ice_connected_at().map(since_start),
            connected: self.events.connected_at().map(since_start),
            first_packet: [video.first_packet_at, audio.first_packet_at]
                .into_iter()
                .flatten()
                .min(),
            first_video_packet: video.first_packet_at,
            first_keyframe: video.first_keyframe_at,
        };
        let latency = self
            .shared
            .latency
            .as_ref()
            .map_or_else(LatencyCounts::default, |l| LatencyCounts {
                matched: l.histogram.count(),
                unmatched: l.unmatched.load(Ordering::Relaxed),
            });
        ViewerStats {
            video,
            audio,
            connected: self.events.state() == RTCPeerConnectionState::Connected,
            stalled: self.shared.gate.is_stalled(),
            timeline,
            latency,
        }
    }

    /// When the first video packet that begins a keyframe arrived, since [`Self::connect`]
    /// began (cheap: one atomic load, for polling many viewers).
    pub fn first_keyframe_at(&self) -> Option<Duration> {
        match self.shared.video.first_keyframe_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The forwarding latency of every video packet received so far, in microseconds (send
    /// instant at the publisher to arrival here); `None` without [`ViewOptions::latency_probe`].
    pub fn latency_histogram(&self) -> Option<&Histogram> {
        self.shared.latency.as_ref().map(|l| &l.histogram)
    }

    /// Polls [`Self::stats`] every 20 ms until `pred` holds; returns that snapshot, or
    /// [`ClientError::Timeout`] (with the last snapshot in the message) after `timeout`.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&ViewerStats) -> bool,
        timeout: Duration,
    ) -> Result<ViewerStats, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if pred(&stats) {
                return Ok(stats);
            }
            if tokio::time::Instant::now() >= deadline {
                let mut brief = stats;
                brief.video.decoded_at.clear();
                brief.audio.decoded_at.clear();
                return Err(ClientError::Timeout(format!(
                    "viewer condition not met within {timeout:?}; last stats \
                     (decoded_at omitted): {brief:?}"
                )));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The luma plane of the last decoded picture (decoding viewers only).
    pub fn last_picture(&self) -> Option<LumaFrame> {
        self.shared
            .video
            .last_luma
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops reading the tracks: the readers park, so this viewer consumes no media and its
    /// receive queues fill and overflow — a stuck client, as far as the server can tell (ICE,
    /// DTLS and RTCP keep running). Used to show one slow viewer does not slow the others.
    pub fn stall(&self) {
        self.shared.gate.set_stalled(true);
    }

    /// Resumes reading after [`Self::stall`].
    pub fn resume(&self) {
        self.shared.gate.set_stalled(false);
    }

    /// Ends the view properly: HTTP DELETE on the resource, then closes the connection.
    /// The connection is closed even when the DELETE fails (whose error is returned).
    pub async fn close(mut self) -> Result<(), ClientError> {
        let deleted = signaling::delete(&self.resource_url, self.token.as_deref()).await;
        self.shutdown().await;
        deleted
    }

    /// Simulates a crash: closes the peer connection without telling the server over HTTP.
    pub async fn drop_without_delete(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.shared.gate.close();
        if !std::mem::replace(&mut self.closed, true)
            && let Err(error) = self.pc.close().await
        {
            tracing::debug!(%error, "closing viewer peer connection");
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.shared.gate.close();
        if !self.closed {
            peer::close_in_background(Arc::clone(&self.pc));
        }
    }
}
