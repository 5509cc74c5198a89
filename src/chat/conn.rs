//! Chat connections (chat path, I/O shell): the bounded outgoing queue of each connection, the
//! hub's fan-out into those queues (one shared frame per message, never awaiting a reader), and
//! the inbound side every transport shares (gate, then hub).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::HubHandle;
use super::now_ms;
use crate::core::chat::{Audience, ChatLimits, ConnGate, ConnId, GateVerdict, ServerEvent};

/// One serialised server message, shared by every recipient (a reference-counted buffer).
pub type Frame = Utf8Bytes;

/// Serialises `event` once.
pub fn frame(event: &ServerEvent) -> Frame {
    Utf8Bytes::from(event.to_json())
}

/// The hub's end of a connection.
pub struct ConnTx {
    /// The user behind the connection.
    pub user: String,
    tx: mpsc::Sender<Frame>,
    kick: CancellationToken,
    finished: CancellationToken,
    dropped: Arc<AtomicU64>,
}

/// The transport's end of a connection.
pub struct ConnRx {
    /// Frames to write, in order.
    pub frames: mpsc::Receiver<Frame>,
    /// Cancelled when the hub closes the connection (ban): write what is queued, then close.
    pub kick: CancellationToken,
    /// Cancelled when the connection task ends (dropped guard), so a ban can wait for the
    /// last frames to be written before it ends the user's media sessions.
    pub finished: tokio_util::sync::DropGuard,
}

/// A connection's pair of ends, the queue bounded at `capacity` frames.
pub fn pair(user: &str, capacity: usize) -> (ConnTx, ConnRx, mpsc::Sender<Frame>) {
    let (tx, frames) = mpsc::channel(capacity);
    let kick = CancellationToken::new();
    let finished = CancellationToken::new();
    let conn_tx = ConnTx {
        user: user.to_owned(),
        tx: tx.clone(),
        kick: kick.clone(),
        finished: finished.clone(),
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let conn_rx = ConnRx {
        frames,
        kick,
        finished: finished.drop_guard(),
    };
    (conn_tx, conn_rx, tx)
}

/// What queueing one frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The reader is too slow: dropped for this connection only.
    Dropped,
    /// The connection is gone.
    Closed,
}

impl ConnTx {
    /// Queues `frame` without waiting.
    pub fn push(&self, frame: &Frame) -> Push {
        match self.tx.try_send(frame.clone()) {
            Ok(()) => Push::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Push::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Push::Closed,
        }
    }

    /// Asks the connection to close once it has written what is queued.
    pub fn kick(&self) {
        self.kick.cancel();
    }

    /// Resolves when the connection task has ended.
    pub fn finished(&self) -> CancellationToken {
        self.finished.clone()
    }

    /// Frames dropped for this connection so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    /// Frames queued.
    pub queued: u64,
    /// Frames dropped for slow readers.
    pub dropped: u64,
}

/// Queues `frame` for `to`. Never waits: a full queue drops the frame for that connection.
pub fn fan_out(conns: &HashMap<ConnId, ConnTx>, to: &Audience, frame: &Frame) -> FanOut {
    let mut result = FanOut::default();
    let mut count = |push| match push {
        Push::Queued => result.queued += 1,
        Push::Dropped => result.dropped += 1,
        Push::Closed => {}
    };
    match to {
        Audience::All => conns.values().for_each(|c| count(c.push(frame))),
        Audience::Conns(ids) => ids
            .iter()
            .filter_map(|id| conns.get(id))
            .for_each(|c| count(c.push(frame))),
    }
    result
}

/// Queues `frames`, in order, for every connection: all of one connection's frames before the
/// next connection's, so a reader is woken once for the lot. Never waits: a full queue drops
/// the frames that do not fit, for that connection only.
pub fn fan_out_all(conns: &HashMap<ConnId, ConnTx>, frames: &[Frame]) -> FanOut {
    let mut result = FanOut::default();
    for conn in conns.values() {
        for frame in frames {
            match conn.push(frame) {
                Push::Queued => result.queued += 1,
                Push::Dropped => result.dropped += 1,
                Push::Closed => break,
            }
        }
    }
    result
}

/// The inbound half every transport shares: each frame passes the connection's gate, then
/// goes to the hub; refusals are answered on the connection's own queue.
pub struct Inbound {
    conn: ConnId,
    gate: ConnGate,
    hub: HubHandle,
    reply: mpsc::Sender<Frame>,
}

impl Inbound {
    /// The inbound side of `conn`.
    pub fn new(
        conn: ConnId,
        limits: &ChatLimits,
        hub: HubHandle,
        reply: mpsc::Sender<Frame>,
    ) -> Self {
        Self {
            conn,
            gate: ConnGate::new(limits, now_ms()),
            hub,
            reply,
        }
    }

    /// Handles one received frame; false when the hub is gone (the connection should end).
    pub async fn frame(&mut self, bytes: &[u8]) -> bool {
        match self.gate.inbound(bytes, now_ms()) {
            GateVerdict::Pass(message) => self.hub.message(self.conn, message).await,
            GateVerdict::Reply(e) => {
                // Best effort: a reader too slow for its own errors loses them.
                let _ = self.reply.try_send(frame(&ServerEvent::error(&e)));
                true
            }
            GateVerdict::Silent => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::ServerEvent;

    #[test]
    fn a_slow_reader_loses_frames_and_nobody_else_does() {
        let mut conns = HashMap::new();
        let (slow, mut slow_rx, _) = pair("slow", 4);
        let (fast, mut fast_rx, _) = pair("fast", 64);
        conns.insert(1, slow);
        conns.insert(2, fast);
        let f = frame(&ServerEvent::Cleared { ts: 1 });
        let mut total = FanOut::default();
        for _ in 0..10 {
            let r = fan_out(&conns, &Audience::All, &f);
            total.queued += r.queued;
            total.dropped += r.dropped;
            // The fast reader keeps up.
            assert_eq!(fast_rx.frames.try_recv().ok().as_deref(), Some(&*f));
        }
        assert_eq!(
            total,
            FanOut {
                queued: 14,
                dropped: 6
            }
        );
        assert_eq!(conns[&1].dropped(), 6);
        assert_eq!(conns[&2].dropped(), 0);
        let mut got = 0;
        while slow_rx.frames.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 4, "the slow reader keeps what fitted");
    }

    #[test]
    fn targeted_frames_reach_only_their_connections_and_closed_ones_are_skipped() {
        let mut conns = HashMap::new();
        let (a, mut a_rx, _) = pair("a", 4);
        let (b, mut b_rx, _) = pair("b", 4);
        let (c, c_rx, _) = pair("c", 4);
        conns.insert(1, a);
        conns.insert(2, b);
        conns.insert(3, c);
        drop(c_rx);
        let f = frame(&ServerEvent::Cleared { ts: 2 });
        let r = fan_out(&conns, &Audience::Conns(vec![2, 3, 99]), &f);
        assert_eq!(
            r,
            FanOut {
                queued: 1,
                dropped: 0
            }
        );
        assert!(a_rx.frames.try_recv().is_err());
        assert!(b_rx.frames.try_recv().is_ok());
    }

    #[test]
    fn a_batch_reaches_everyone_in_order_and_a_full_queue_drops_only_its_own() {
        let mut conns = HashMap::new();
        let (slow, mut slow_rx, _) = pair("slow", 2);
        let (fast, mut fast_rx, _) = pair("fast", 8);
        let (gone, gone_rx, _) = pair("gone", 8);
        conns.insert(1, slow);
        conns.insert(2, fast);
        conns.insert(3, gone);
        drop(gone_rx);
        let frames: Vec<Frame> = (0..3)
            .map(|ts| frame(&ServerEvent::Cleared { ts }))
            .collect();
        let r = fan_out_all(&conns, &frames);
        assert_eq!(
            r,
            FanOut {
                queued: 5,
                dropped: 1
            }
        );
        for f in &frames {
            assert_eq!(fast_rx.frames.try_recv().ok().as_ref(), Some(f));
        }
        for f in &frames[..2] {
            assert_eq!(slow_rx.frames.try_recv().ok().as_ref(), Some(f));
        }
        assert!(slow_rx.frames.try_recv().is_err());
        assert_eq!(conns[&1].dropped(), 1);
    }

    #[test]
    fn the_finished_token_fires_when_the_connection_end_is_dropped() {
        let (tx, rx, _) = pair("u", 4);
        let finished = tx.finished();
        assert!(!finished.is_cancelled());
        tx.kick();
        assert!(rx.kick.is_cancelled());
        drop(rx);
        assert!(finished.is_cancelled());
    }
}
