//! Load bench: joining and leaving as a WHEP viewer, shared by the fan-out and churn scenarios
//! — connect with a deadline, wait for keyframes, close many viewers at once, and the join-time
//! figures. Does network I/O; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Target;
use super::report::{JoinSteps, MsSummary};
use crate::histogram::HistogramSnapshot;
use crate::probe::LatencyProbe;
use crate::whep::{ViewOptions, Viewer, ViewerStats};

/// Extra time `Viewer::connect` may take beyond the join timeout (its own HTTP and ICE
/// gathering timeouts are 15 s and 5 s).
const CONNECT_SLACK: Duration = Duration::from_secs(25);
/// Viewers closed at the same time.
const CLOSE_CONCURRENCY: usize = 32;
/// Longest a DELETE plus close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Non-decoding viewer options for the target's room.
pub(super) fn view_options(target: &Target, probe: Option<Arc<LatencyProbe>>) -> ViewOptions {
    ViewOptions {
        base_url: target.base_url.clone(),
        room: target.room.clone(),
        token: None,
        decode: false,
        chat: false,
        request_keyframes: false,
        latency_probe: probe,
    }
}

/// POSTs an offer and waits until ICE and DTLS are up, within `timeout` (plus the client's own
/// request timeouts). A viewer that does not connect is DELETEd again.
pub(super) async fn join(opts: ViewOptions, timeout: Duration) -> Result<Viewer, String> {
    let connect = tokio::time::timeout(timeout + CONNECT_SLACK, Viewer::connect(opts));
    let viewer = match connect.await {
        Ok(Ok(viewer)) => viewer,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err("WHEP POST timed out".to_owned()),
    };
    match viewer.wait_connected(timeout).await {
        Ok(()) => Ok(viewer),
        Err(error) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, viewer.close()).await;
            Err(error.to_string())
        }
    }
}

/// Waits (polling every 100 ms, at most `timeout`) until every viewer received a keyframe.
pub(super) async fn wait_keyframes(viewers: &[Viewer], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let waiting = viewers
            .iter()
            .filter(|v| v.first_keyframe_at().is_none())
            .count();
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// DELETEs and closes every viewer, a few at a time; returns how many DELETEs failed.
pub(super) async fn close_all(viewers: Vec<Viewer>) -> usize {
    let mut pending = viewers.into_iter();
    let mut closing = JoinSet::new();
    let mut failed = 0;
    loop {
        while closing.len() < CLOSE_CONCURRENCY {
            let Some(viewer) = pending.next() else { break };
            closing.spawn(tokio::time::timeout(CLOSE_TIMEOUT, viewer.close()));
        }
        match closing.join_next().await {
            Some(Ok(Ok(Ok(())))) => {}
            Some(_) => failed += 1,
            None => return failed,
        }
    }
}

/// Join times from viewers' stats: POST to first keyframe, and its steps.
#[derive(Debug, Default)]
pub(super) struct JoinTimes {
    join: HistogramSnapshot,
    signaling: HistogramSnapshot,
    ice: HistogramSnapshot,
    dtls: HistogramSnapshot,
    ice_dtls: HistogramSnapshot,
    first_packet: HistogramSnapshot,
    keyframe_wait: HistogramSnapshot,
}

impl JoinTimes {
    /// Adds one viewer's timeline (ignored if it never received a keyframe).
    pub(super) fn add(&mut self, stats: &ViewerStats) {
        let t = &stats.timeline;
        let Some(join) = t.join_to_keyframe() else {
            return;
        };
        let us = |d: Duration| d.as_micros() as u64;
        self.join.record(us(join));
        let step = |h: &mut HistogramSnapshot, from: Option<Duration>, to: Option<Duration>| {
            if let (Some(from), Some(to)) = (from, to) {
                h.record(us(to.saturating_sub(from)));
            }
        };
        step(&mut self.signaling, t.posted, t.answered);
        step(&mut self.ice, t.answered, t.ice_connected);
        step(&mut self.dtls, t.ice_connected, t.connected);
        step(&mut self.ice_dtls, t.answered, t.connected);
        step(&mut self.first_packet, t.connected, t.first_packet);
        step(&mut self.keyframe_wait, t.connected, t.first_keyframe);
    }

    /// Viewers that received a keyframe.
    pub(super) fn with_keyframe(&self) -> usize {
        self.join.count() as usize
    }

    /// POST to first keyframe.
    pub(super) fn summary(&self) -> Option<MsSummary> {
        MsSummary::from_us(&self.join)
    }

    /// The steps at quantile `q` each (0.5: medians; they need not add up to the join's).
    pub(super) fn steps(&self, q: f64) -> Option<JoinSteps> {
        let at = |h: &HistogramSnapshot| super::report::ms(h.quantile(q));
        (self.join.count() > 0).then(|| JoinSteps {
            signaling: at(&self.signaling),
            ice: at(&self.ice),
            dtls: at(&self.dtls),
            ice_dtls: at(&self.ice_dtls),
            first_packet: at(&self.first_packet),
            keyframe_wait: at(&self.keyframe_wait),
        })
    }
}
