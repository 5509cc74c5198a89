//! The `chat` data channel of a WHIP or WHEP session (chat path, I/O shell): joins the room's
//! hub as the session's user once the channel is open, then reads messages into the hub and
//! writes the connection's queue out. Back-pressure: the PeerConnection's send-buffer limit
//! makes a send wait for a slow peer, so the bounded queue fills and the hub drops frames for
//! this connection only.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};

use super::conn::ConnRx;
use super::{CHAT_LABEL, Joined, error_frame, identity, join};
use crate::core::chat::Transport;
use crate::http::App;
use crate::peer::session::Session;

/// Frames written per wake-up.
const BATCH: usize = 64;
/// How long a kicked connection waits for the peer to acknowledge its last frames.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Serves one data channel until it closes, the session ends or the user is banned.
pub(super) async fn run(app: App, session: Arc<Session>, channel: Arc<dyn DataChannel>) {
    let label = channel.label().await.unwrap_or_default();
    if label != CHAT_LABEL {
        tracing::debug!(session = %session.id, %label, "data channel is not `chat`; closed");
        let _ = channel.close().await;
        return;
    }
    let cancel = session.cancel.clone();
    if !matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open)) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                event = channel.poll() => match event {
                    Some(DataChannelEvent::OnOpen) => break,
                    Some(DataChannelEvent::OnClose) | None => return,
                    Some(_) => {}
                },
            }
        }
    }
    let joined = join(
        &app,
        &session.room,
        identity(&session.user),
        Transport::DataChannel,
    )
    .await;
    let Joined {
        conn,
        hub,
        mut rx,
        mut inbound,
    } = match joined {
        Ok(joined) => joined,
        Err(e) => {
            let _ = channel.send_text(&error_frame(&e)).await;
            let _ = channel.close().await;
            return;
        }
    };
    tracing::debug!(room = %session.room, session = %session.id, conn, "chat data channel joined");
    let reader = async {
        loop {
            match channel.poll().await {
                Some(DataChannelEvent::OnMessage(message)) => {
                    if !inbound.frame(&message.data).await {
                        break;
                    }
                }
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = reader => {}
        _ = write(channel.as_ref(), &mut rx, session.side_feed()) => {}
    }
    hub.leave(conn).await;
    tracing::debug!(room = %session.room, session = %session.id, conn, "chat data channel left");
}

/// Writes queued frames until the channel fails or the hub kicks the connection; a kicked
/// connection writes what is left, waits (bounded) for the peer to take it, and closes.
/// The session's side feed (its stage layout) is interleaved once the first batch, which
/// starts with the `welcome`, has gone out.
async fn write(
    channel: &dyn DataChannel,
    rx: &mut ConnRx,
    mut side: Option<watch::Receiver<Arc<str>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut welcomed = false;
    if let Some(feed) = side.as_mut() {
        // The current value is sent after the welcome; only later changes wake the loop.
        feed.mark_changed();
    }
    loop {
        let side_changed = async {
            match side.as_mut() {
                Some(feed) => feed.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            open = side_changed, if welcomed => {
                if !open {
                    side = None;
                    continue;
                }
                let message = side.as_mut().map(|feed| feed.borrow_and_update().clone());
                if let Some(message) = message.filter(|m| !m.is_empty())
                    && channel.send_text(&message).await.is_err()
                {
                    return;
                }
            }
            _ = rx.kick.cancelled() => {
                while let Ok(frame) = rx.frames.try_recv() {
                    if channel.send_text(&frame).await.is_err() {
                        return;
                    }
                }
                let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
                while channel.outstanding_bytes().await.is_ok_and(|n| n > 0)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = channel.close().await;
                return;
            }
            n = rx.frames.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                for frame in batch.drain(..) {
                    if channel.send_text(&frame).await.is_err() {
                        return;
                    }
                }
                welcomed = true;
            }
        }
    }
}
