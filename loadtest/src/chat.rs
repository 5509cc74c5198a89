//! Test/load client: the `chat` data channel a publisher or viewer opens in its offer — send
//! text, receive text. Does I/O (SCTP through webrtc-rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::PeerConnection;

use crate::error::ClientError;

/// Label of the chat data channel (DESIGN §4).
pub const CHAT_LABEL: &str = "chat";
/// Received messages kept until read; beyond this, new ones are dropped and counted.
const INBOX: usize = 4096;

/// Open/closed state of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatState {
    /// Created, not yet open.
    Connecting,
    /// Open: messages flow.
    Open,
    /// Closed by either side.
    Closed,
}

/// A client's `chat` data channel. One message per data-channel message, UTF-8 text (the
/// server's JSON protocol).
pub struct ChatChannel {
    channel: Arc<dyn DataChannel>,
    state: watch::Receiver<ChatState>,
    inbox: Mutex<mpsc::Receiver<String>>,
    dropped: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ChatChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatChannel")
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl ChatChannel {
    /// Creates the channel on `pc` (before the offer, so it is negotiated in it) and starts the
    /// task that reads its events.
    pub(crate) async fn open(pc: &Arc<dyn PeerConnection>) -> Result<Self, ClientError> {
        let channel = pc.create_data_channel(CHAT_LABEL, None).await?;
        let (state_tx, state) = watch::channel(ChatState::Connecting);
        let (inbox_tx, inbox) = mpsc::channel(INBOX);
        let dropped = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn(read_events(
            Arc::clone(&channel),
            state_tx,
            inbox_tx,
            Arc::clone(&dropped),
        ));
        Ok(Self {
            channel,
            state,
            inbox: Mutex::new(inbox),
            dropped,
            reader,
        })
    }

    /// The current state.
    pub fn state(&self) -> ChatState {
        *self.state.borrow()
    }

    /// Waits until the channel is open.
    pub async fn wait_open(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| *s != ChatState::Connecting);
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(ClientError::Timeout(format!(
                "chat channel not open after {timeout:?}"
            ))),
            Ok(Ok(s)) if *s == ChatState::Open => Ok(()),
            Ok(_) => Err(ClientError::Closed("chat channel closed".into())),
        }
    }

    /// Sends one text message (e.g. `{"type":"chat","text":"hi"}`).
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        Ok(self.channel.send_text(text).await?)
    }

    /// Serializes `value` as JSON and sends it.
    pub async fn send_json(&self, value: &serde_json::Value) -> Result<(), ClientError> {
        self.send_text(&value.to_string()).await
    }

    /// The next received message, waiting up to `timeout`; `Ok(None)` once the channel closed
    /// and everything received has been read.
    pub async fn recv(&self, timeout: Duration) -> Result<Option<String>, ClientError> {
        let mut inbox = self.inbox.lock().await;
        tokio::time::timeout(timeout, inbox.recv())
            .await
            .map_err(|_| ClientError::Timeout(format!("no chat message within {timeout:?}")))
    }

    /// Messages dropped because the inbox was full (nobody read them).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for ChatChannel {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_events(
    channel: Arc<dyn DataChannel>,
    state: watch::Sender<ChatState>,
    inbox: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnOpen => {
                state.send_replace(ChatState::Open);
            }
            DataChannelEvent::OnClose => break,
            DataChannelEvent::OnMessage(message) => {
                let text = String::from_utf8_lossy(&message.data).into_owned();
                if inbox.try_send(text).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
    state.send_replace(ChatState::Closed);
}
