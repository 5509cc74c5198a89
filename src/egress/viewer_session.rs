//! A WHEP viewer session (egress side of the media path, I/O shell): its slots' tracks are
//! written to by the hubs themselves ([`super::viewer`]); this task follows the room's stage
//! and switches each slot's source as participants come and go ([`SlotMap`] decides), answers
//! the viewer's RTCP, tells the page which slot shows whom with a per-session `stage` message
//! on its `chat` (or `stage`) data channel, and ends when the session is ended or the
//! connection fails.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};
use webrtc::media_stream::track_local::TrackLocalEvent;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::RTCPeerConnectionState;

use super::viewer::Slot;
use crate::auth::Role;
use crate::core::stage::{Candidate, SlotMap, StageEntry, StageMessage};
use crate::http::App;
use crate::peer::session::Session;
use crate::peer::{PeerEvent, PeerEvents};
use crate::room::{Room, StageView};

/// Label of a data channel that carries only `stage` messages (a studio watching its guests
/// without a second chat connection).
pub const STAGE_LABEL: &str = "stage";
/// RTCP messages queued from the track readers to the session task.
const FEEDBACK_QUEUE: usize = 64;

/// What a viewer task needs.
pub struct ViewerCtx {
    pub app: App,
    pub room: Arc<Room>,
    pub session: Arc<Session>,
    pub slots: Vec<Slot>,
    pub events: PeerEvents,
}

/// Forwards a track's RTCP feedback to the session task (RTCP is rare; media is not).
async fn feedback(
    local: Arc<TrackLocalStaticRTP>,
    index: usize,
    tx: mpsc::Sender<(usize, Vec<Box<dyn rtc::rtcp::Packet>>)>,
    cancel: CancellationToken,
) {
    use webrtc::media_stream::track_local::TrackLocal;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = local.poll() => match event {
                Some(TrackLocalEvent::OnRtcpPacket(rtcp)) => {
                    let _ = tx.try_send((index, rtcp));
                }
                Some(_) => {}
                None => return,
            },
        }
    }
}

/// The session's slots and what they show.
struct Slots {
    slots: Vec<Slot>,
    map: SlotMap,
}

impl Slots {
    fn new(slots: Vec<Slot>, exclude: Option<&str>) -> Self {
        let map = SlotMap::new(slots.len(), exclude);
        Self { slots, map }
    }

    /// Follows a new stage: switches the slots whose participant changed.
    fn follow(&mut self, view: &StageView) {
        let candidates: Vec<Candidate<'_>> = view
            .members
            .iter()
            .map(|m| Candidate {
                user: &m.user,
                broadcaster: m.role == Role::Broadcaster,
            })
            .collect();
        for i in self.map.update(&candidates) {
            let member = self.map.user(i).and_then(|u| view.member(u));
            let slot = &mut self.slots[i];
            if let Some(v) = slot.video.as_mut() {
                v.switch(member.map(|m| m.video.clone()));
            }
            if let Some(a) = slot.audio.as_mut() {
                a.switch(member.map(|m| m.audio.clone()));
            }
            tracing::debug!(slot = i, user = ?member.map(|m| &m.user), "viewer slot switched");
        }
    }

    /// The per-session `stage` message.
    fn message(&self, view: &StageView, you: &str) -> String {
        let participants = view
            .members
            .iter()
            .map(|m| {
                let slot = self.map.slot_of(&m.user);
                StageEntry {
                    id: m.user.clone(),
                    name: m.name.clone(),
                    role: m.role.as_str(),
                    muted: m.is_muted(),
                    slot,
                    mids: slot.map(|i| self.slots[i].mids.clone()).unwrap_or_default(),
                }
            })
            .collect();
        StageMessage {
            you: you.to_owned(),
            participants,
        }
        .to_json()
    }
}

/// Sends the session's `stage` messages on a `stage`-labelled `channel` (this task's alone)
/// once it is open, then on every change, until the channel closes.
async fn stage_feed(
    channel: Arc<dyn DataChannel>,
    mut messages: watch::Receiver<Arc<str>>,
    cancel: CancellationToken,
) {
    let opened = async {
        loop {
            if matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open)) {
                return true;
            }
            match channel.poll().await {
                Some(DataChannelEvent::OnOpen) => return true,
                Some(DataChannelEvent::OnClose) | None => return false,
                Some(_) => {}
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => return,
        open = tokio::time::timeout(std::time::Duration::from_secs(30), opened) => {
            if !matches!(open, Ok(true)) {
                return;
            }
        }
    }
    loop {
        let message = messages.borrow_and_update().clone();
        if !message.is_empty() && channel.send_text(&message).await.is_err() {
            return;
        }
        // Nothing is read from a stage channel; wait for it to close.
        let drain = async {
            while let Some(event) = channel.poll().await {
                if matches!(event, DataChannelEvent::OnClose) {
                    break;
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = messages.changed() => if changed.is_err() { return },
            _ = drain => return,
        }
    }
}

/// Runs until the session is ended (DELETE, removal, shutdown) or the connection fails.
pub async fn run(ctx: ViewerCtx) {
    let ViewerCtx {
        app,
        room,
        session,
        slots,
        mut events,
    } = ctx;
    let you = session.user.id.clone();
    let exclude = (!session.user.anonymous).then_some(you.as_str());
    let mut slots = Slots::new(slots, exclude);
    let cancel = session.cancel.clone();
    let (feedback_tx, mut feedback_rx) = mpsc::channel(FEEDBACK_QUEUE);
    for (i, slot) in slots.slots.iter().enumerate() {
        for (k, track) in [&slot.video, &slot.audio].into_iter().enumerate() {
            if let Some(t) = track {
                let task = feedback(t.local(), 2 * i + k, feedback_tx.clone(), cancel.clone());
                app.tasks.spawn(task);
            }
        }
    }
    drop(feedback_tx);
    let mut stage_rx = room.watch_stage();
    let view = stage_rx.borrow_and_update().clone();
    slots.follow(&view);
    let stage_msg = watch::Sender::new(Arc::<str>::from(slots.message(&view, &you)));
    session.set_side_feed(stage_msg.subscribe());
    let connect_deadline = tokio::time::sleep(app.config.connect_timeout());
    tokio::pin!(connect_deadline);
    let mut connected = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            event = events.events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    connected = true;
                    for slot in &slots.slots {
                        for t in [&slot.video, &slot.audio].into_iter().flatten() {
                            t.set_connected();
                        }
                        if let Some(v) = &slot.video {
                            v.request_first_keyframe();
                        }
                    }
                    tracing::debug!(session = %session.id, "viewer connected");
                }
                Some(PeerEvent::State(state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed))) => {
                    tracing::info!(session = %session.id, %state, "viewer connection ended");
                    break;
                }
                Some(PeerEvent::DataChannel(channel)) => {
                    let label = channel.label().await.unwrap_or_default();
                    if label == STAGE_LABEL {
                        app.tasks.spawn(stage_feed(channel.clone(), stage_msg.subscribe(), cancel.clone()));
                    } else {
                        // A `chat` channel carries the stage after its `welcome` (the session's
                        // side feed, written by the chat shell in order with chat frames).
                        crate::chat::attach_data_channel(&app, &session, channel);
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut connect_deadline, if !connected => {
                tracing::warn!(session = %session.id, "viewer never connected (ICE/DTLS); closing");
                break;
            }
            changed = stage_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let view = stage_rx.borrow_and_update().clone();
                slots.follow(&view);
                stage_msg.send_replace(Arc::from(slots.message(&view, &you)));
            }
            Some((index, rtcp)) = feedback_rx.recv() => {
                let slot = &slots.slots[index / 2];
                let track = if index % 2 == 0 { &slot.video } else { &slot.audio };
                if let Some(t) = track {
                    t.on_rtcp(rtcp);
                }
            }
        }
    }
    for slot in &mut slots.slots {
        for t in [slot.video.as_mut(), slot.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            t.detach();
        }
    }
    app.sessions.remove(&session.id);
    app.ops.session_ended(&session);
    room.remove_viewer(&session.id);
    if let Err(e) = session.pc.close().await {
        tracing::debug!(error = %e, "closing viewer PeerConnection");
    }
    tracing::info!(room = room.name(), session = %session.id, "viewer left");
}
