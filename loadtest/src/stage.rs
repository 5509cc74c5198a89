//! Test/load client: a multi-participant WHEP viewer — offers K recvonly audio+video pairs
//! ("slots", onair's pre-allocated transceivers), records per track (by mid) what arrives and
//! the size of every decoded picture, so a test can tell which publisher a slot shows by
//! content. The receiving end of onair's stage egress. Does network I/O; decodes inline (for
//! tests, not for a thousand viewers).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::chat::ChatChannel;
use crate::error::ClientError;
use crate::h264::Reassembler;
use crate::media::VideoDecoder;
use crate::peer::{self, OnTrack, Peer, PeerEvents};
use crate::signaling;
use crate::whep::seq::SeqTracker;

/// How to view a stage.
#[derive(Debug, Clone)]
pub struct StageViewOptions {
    /// Server base URL; the offer goes to `{base}/whep/{room}`.
    pub base_url: String,
    /// Room to watch.
    pub room: String,
    /// Bearer token (a guest or broadcaster token excludes their own media).
    pub token: Option<String>,
    /// Audio+video pairs offered.
    pub slots: usize,
    /// Open a `chat` data channel (the server sends `stage` messages on it).
    pub chat: bool,
}

/// What one received track got so far.
#[derive(Debug, Clone, Default)]
pub struct SlotTrack {
    /// The track's mid in the answer.
    pub mid: String,
    /// Video (true) or audio.
    pub video: bool,
    /// RTP packets received.
    pub packets: u64,
    /// When the last packet arrived.
    pub last_packet: Option<Instant>,
    /// SSRCs seen (onair keeps one per track across source switches).
    pub ssrcs: BTreeSet<u32>,
    /// Size of the last decoded picture (video).
    pub picture: Option<(usize, usize)>,
    /// Every picture size decoded on this track.
    pub sizes: BTreeSet<(usize, usize)>,
    /// Pictures decoded.
    pub pictures: u64,
}

#[derive(Default)]
struct Shared {
    tracks: Mutex<HashMap<String, SlotTrack>>,
    closed: AtomicBool,
}

/// A connected multi-slot WHEP viewer.
pub struct StageViewer {
    pc: Arc<dyn PeerConnection>,
    events: Arc<PeerEvents>,
    shared: Arc<Shared>,
    resource_url: String,
    token: Option<String>,
    chat: Option<ChatChannel>,
    mids: Vec<(String, bool)>,
    closed: bool,
}

/// `(mid, track id)` of every m-section of an SDP with an `a=msid`.
fn mids_and_tracks(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut mid = None;
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            mid = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(msid) = line.strip_prefix("a=msid:")
            && let (Some(m), Some(track)) = (mid.clone(), msid.split_whitespace().nth(1))
        {
            out.push((m, track.to_owned()));
        }
    }
    out
}

impl StageViewer {
    /// Offers `slots` audio+video pairs, POSTs and applies the answer.
    pub async fn connect(opts: StageViewOptions) -> Result<Self, ClientError> {
        let url = signaling::endpoint_url(&opts.base_url, "whep", &opts.room)?;
        let bind_ip = signaling::bind_ip_for(&url).await?;
        let shared = Arc::new(Shared::default());
        let by_track: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let (for_tracks, names) = (Arc::clone(&shared), Arc::clone(&by_track));
        let on_track: OnTrack = Arc::new(move |track| {
            tokio::spawn(read(track, Arc::clone(&for_tracks), Arc::clone(&names)));
        });
        let peer = peer::build_peer(bind_ip, false, Some(on_track)).await?;
        let started = Self::start(&peer, url, &opts, shared, by_track).await;
        if started.is_err() {
            let _ = peer.pc.close().await;
        }
        started
    }

    async fn start(
        peer: &Peer,
        url: reqwest::Url,
        opts: &StageViewOptions,
        shared: Arc<Shared>,
        by_track: Arc<Mutex<HashMap<String, String>>>,
    ) -> Result<Self, ClientError> {
        for _ in 0..opts.slots {
            for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
                let init = RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                };
                peer.pc.add_transceiver_from_kind(kind, Some(init)).await?;
            }
        }
        let chat = if opts.chat {
            Some(ChatChannel::open(&peer.pc).await?)
        } else {
            None
        };
        let session = peer::negotiate(peer, url, opts.token.as_deref()).await?;
        let pairs = mids_and_tracks(&session.answer);
        let mids = pairs
            .iter()
            .map(|(mid, track)| (mid.clone(), track.contains("video")))
            .collect();
        by_track
            .lock()
            .expect("lock")
            .extend(pairs.into_iter().map(|(mid, track)| (track, mid)));
        Ok(Self {
            pc: Arc::clone(&peer.pc),
            events: Arc::clone(&peer.events),
            shared,
            resource_url: session.resource_url,
            token: opts.token.clone(),
            chat,
            mids,
            closed: false,
        })
    }

    /// `(mid, is_video)` of every track the server answered with, in SDP order.
    pub fn mids(&self) -> &[(String, bool)] {
        &self.mids
    }

    /// What arrived on the track of `mid` so far.
    pub fn track(&self, mid: &str) -> Option<SlotTrack> {
        self.shared.tracks.lock().expect("lock").get(mid).cloned()
    }

    /// Every track that received something, by mid.
    pub fn tracks(&self) -> HashMap<String, SlotTrack> {
        self.shared.tracks.lock().expect("lock").clone()
    }

    /// The `chat` data channel, if asked for.
    pub fn chat(&self) -> Option<&ChatChannel> {
        self.chat.as_ref()
    }

    /// Peer connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.events.state()
    }

    /// Waits for ICE+DTLS.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        self.events.wait_connected(timeout).await
    }

    /// DELETE the session, then close.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let deleted = signaling::delete(&self.resource_url, self.token.as_deref()).await;
        self.shutdown().await;
        deleted
    }

    async fn shutdown(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if !std::mem::replace(&mut self.closed, true) {
            let _ = self.pc.close().await;
        }
    }
}

impl Drop for StageViewer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if !self.closed {
            peer::close_in_background(Arc::clone(&self.pc));
        }
    }
}

/// Reads one remote track, recording by mid (found through the answer's msid).
async fn read(
    track: Arc<dyn TrackRemote>,
    shared: Arc<Shared>,
    by_track: Arc<Mutex<HashMap<String, String>>>,
) {
    let video = track.kind().await == RtpCodecKind::Video;
    let id = track.track_id().await;
    let mut decoding = if video {
        VideoDecoder::new().ok().map(|d| (Reassembler::new(), d))
    } else {
        None
    };
    let mut seq = SeqTracker::new();
    while !shared.closed.load(Ordering::Acquire) {
        let Some(event) = track.poll().await else {
            break;
        };
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let mut size = None;
        if let Some((reassembler, decoder)) = decoding.as_mut()
            && let (Some(ext), _) =
                seq.record(packet.header.sequence_number, packet.header.timestamp)
            && let Some(unit) = reassembler.push(
                ext,
                packet.header.timestamp,
                packet.header.marker,
                packet.payload.clone(),
            )
            && let Ok(Some(frame)) = decoder.decode(&unit.data)
        {
            size = Some((frame.width, frame.height));
        }
        let mid = by_track
            .lock()
            .expect("lock")
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.clone());
        let mut tracks = shared.tracks.lock().expect("lock");
        let t = tracks.entry(mid.clone()).or_default();
        t.mid = mid;
        t.video = video;
        t.packets += 1;
        t.last_packet = Some(Instant::now());
        t.ssrcs.insert(packet.header.ssrc);
        if let Some(size) = size {
            t.picture = Some(size);
            t.sizes.insert(size);
            t.pictures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_mids_map_to_track_ids() {
        let sdp = "v=0\r\nm=video 9 X 102\r\na=mid:0\r\na=msid:onair-0 onair-video-0\r\n\
                   m=audio 9 X 111\r\na=mid:1\r\na=msid:onair-0 onair-audio-0\r\n\
                   m=video 9 X 102\r\na=mid:2\r\na=inactive\r\n";
        assert_eq!(
            mids_and_tracks(sdp),
            vec![
                ("0".to_owned(), "onair-video-0".to_owned()),
                ("1".to_owned(), "onair-audio-0".to_owned())
            ]
        );
    }
}
