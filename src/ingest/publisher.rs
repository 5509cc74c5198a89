//! A publisher session (ingest side of the media path, I/O): reads RTP from the WHIP
//! PeerConnection's tracks into its stage member's [`TrackHub`]s (the broadcaster's are the
//! room's), drops a muted guest's audio, meters RFC 6464 audio levels for the active speaker,
//! sends keyframe requests upstream, and releases its stage place when the session ends.

use std::sync::Arc;
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::core::h264::is_keyframe_start;
use crate::http::App;
use crate::peer::session::Session;
use crate::peer::{MIME_H264, MIME_OPUS, PeerEvent, PeerEvents};
use crate::room::{MediaPacket, Room, StageMember, TrackHub, TrackKind};

/// What a publisher task needs.
pub struct PublisherCtx {
    pub app: App,
    pub room: Arc<Room>,
    pub session: Arc<Session>,
    pub source: u64,
    /// The stage place: hubs, mute flag, level.
    pub member: StageMember,
    /// Negotiated `a=extmap` id of the RFC 6464 audio level, if any.
    pub audio_level_ext: Option<u8>,
}

/// Runs until the session is ended (DELETE, replaced, shutdown) or its connection fails.
pub async fn run(ctx: PublisherCtx, mut peer: PeerEvents) {
    let PublisherCtx {
        app,
        room,
        session,
        source,
        member,
        audio_level_ext,
    } = ctx;
    let cancel = session.cancel.clone();
    let connect_deadline = tokio::time::sleep(app.config.connect_timeout());
    tokio::pin!(connect_deadline);
    let mut connected = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = &mut connect_deadline, if !connected => {
                tracing::warn!(session = %session.id, "publisher never connected (ICE/DTLS); closing");
                break;
            }
            event = peer.events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    connected = true;
                    room.set_publisher_connected(&session.id);
                    app.ops.publisher_live(&session);
                    crate::egress::hls::start_tap(&app, &room);
                    crate::stage::ensure_task(&app, &room);
                    tracing::info!(room = room.name(), session = %session.id, "publisher connected");
                }
                Some(PeerEvent::State(state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed))) => {
                    tracing::info!(room = room.name(), session = %session.id, %state, "publisher connection ended");
                    break;
                }
                Some(PeerEvent::Track(track)) => {
                    app.tasks.spawn(tracing::Instrument::in_current_span(read_track(track, member.clone(), source, session.clone(), audio_level_ext)));
                }
                Some(PeerEvent::DataChannel(channel)) => {
                    crate::chat::attach_data_channel(&app, &session, channel);
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    cancel.cancel();
    app.sessions.remove(&session.id);
    app.ops.session_ended(&session);
    room.release_publisher(&session.id);
    if let Err(e) = session.pc.close().await {
        tracing::debug!(error = %e, "closing publisher PeerConnection");
    }
    tracing::info!(room = room.name(), session = %session.id, "publisher left");
}

async fn track_kind(track: &dyn TrackRemote) -> Option<(TrackKind, u32)> {
    let ssrc = *track.ssrcs().await.first()?;
    let codec = track.codec(ssrc).await?;
    let kind = if codec.mime_type.eq_ignore_ascii_case(MIME_H264) {
        TrackKind::Video
    } else if codec.mime_type.eq_ignore_ascii_case(MIME_OPUS) {
        TrackKind::Audio
    } else {
        return None;
    };
    Some((kind, ssrc))
}

/// Reads one remote track into its hub until the track or the session ends.
async fn read_track(
    track: Arc<dyn TrackRemote>,
    member: StageMember,
    source: u64,
    session: Arc<Session>,
    audio_level_ext: Option<u8>,
) {
    let Some((kind, media_ssrc)) = track_kind(track.as_ref()).await else {
        tracing::warn!(session = %session.id, "publisher sent a track onair does not forward; ignored");
        return;
    };
    let hub: &TrackHub = match kind {
        TrackKind::Video => &member.video,
        TrackKind::Audio => &member.audio,
    };
    let level_ext = audio_level_ext.filter(|_| kind == TrackKind::Audio);
    let mut meter = crate::core::stage::LevelMeter::new();
    let started = Instant::now();
    if kind == TrackKind::Video {
        // Sequence numbers of the new source must not hit an old source's cache entries.
        hub.clear_cache();
    }
    tracing::debug!(session = %session.id, ?kind, media_ssrc, "reading publisher track");
    let cancel = session.cancel.clone();
    loop {
        let deadline = hub
            .next_keyframe_deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => break,
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    if kind == TrackKind::Audio {
                        if let Some(loudness) = level_ext
                            .and_then(|id| packet.header.get_extension(id))
                            .and_then(|ext| crate::core::stage::loudness(&ext))
                        {
                            let now_ms = started.elapsed().as_millis() as u64;
                            meter.observe(loudness, now_ms);
                            member.level.store(meter.read(now_ms), std::sync::atomic::Ordering::Relaxed);
                        }
                        if member.is_muted() {
                            // Muted by the broadcaster: nobody gets this audio, not even HLS.
                            member.level.store(0, std::sync::atomic::Ordering::Relaxed);
                            continue;
                        }
                    }
                    let keyframe = kind == TrackKind::Video && is_keyframe_start(&packet.payload);
                    hub.publish(MediaPacket {
                        source,
                        seq: packet.header.sequence_number,
                        ts: packet.header.timestamp,
                        marker: packet.header.marker,
                        keyframe,
                        payload: packet.payload,
                    });
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(other) => super::sender_reports::observe(&other, hub, kind == TrackKind::Audio, source),
            },
            _ = hub.keyframe_wanted(), if kind == TrackKind::Video => {
                send_pli_if_due(track.as_ref(), hub, media_ssrc).await;
            }
            _ = tokio::time::sleep_until(deadline), if kind == TrackKind::Video => {
                send_pli_if_due(track.as_ref(), hub, media_ssrc).await;
            }
        }
    }
    tracing::debug!(session = %session.id, ?kind, "publisher track ended");
}

async fn send_pli_if_due(track: &dyn TrackRemote, hub: &TrackHub, media_ssrc: u32) {
    if !hub.take_keyframe_request() {
        return;
    }
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
        tracing::debug!(error = %e, "PLI to publisher failed");
    } else {
        tracing::trace!(media_ssrc, at = ?Instant::now(), "PLI sent upstream");
    }
}
