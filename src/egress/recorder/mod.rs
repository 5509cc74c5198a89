//! Recordings (egress path: the HLS tap's samples -> fMP4 fragments -> `<data_dir>/recordings/`):
//! every broadcast is written fragment by fragment to `<name>.live.mp4` as it happens (a crash,
//! even `kill -9`, loses at most the fragment in flight and leaves a file players read), and on
//! a clean end it is rewritten as a progressive faststart `<name>.mp4`. A write error (disk
//! full) is logged and counted and stops that recording, never the live stream. Does file I/O
//! in its own task; the tap only `try_send`s. A finished recording also plays as a VOD HLS
//! playlist made from its sample tables.

pub mod chat;
mod files;
mod http;
mod vod;

pub use files::{RecordingInfo, finalise, list, recover};
pub use http::routes;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::core::fmp4::{RecordingFragmenter, Sample};

/// Fragments queued for the writer before new ones are dropped (~50 s of 200 ms fragments).
const WRITER_QUEUE: usize = 256;

/// The recordings of the server: where they go, whether they are on, and their counters.
#[derive(Debug)]
pub struct Recordings {
    dir: PathBuf,
    chat_dir: PathBuf,
    enabled: bool,
    write_errors: AtomicU64,
    dropped_fragments: AtomicU64,
    /// Counters and the `recording_ready` webhook, set once at start.
    pub ops: std::sync::OnceLock<std::sync::Arc<crate::ops::Ops>>,
    active: Mutex<HashSet<String>>,
    vod: vod::VodCache,
}

impl Recordings {
    /// Recordings under `<data_dir>/recordings`, written only when `enabled`.
    pub fn new(data_dir: &Path, enabled: bool) -> Self {
        Self {
            dir: data_dir.join("recordings"),
            chat_dir: data_dir.join("chat"),
            enabled,
            write_errors: AtomicU64::new(0),
            dropped_fragments: AtomicU64::new(0),
            ops: std::sync::OnceLock::new(),
            active: Mutex::new(HashSet::new()),
            vod: vod::VodCache::default(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the chat logs of broadcasts are (`chat::log`), for replays.
    pub fn chat_dir(&self) -> &Path {
        &self.chat_dir
    }

    /// Whether broadcasts are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Write errors so far (each stopped a recording).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Fragments dropped because the writer fell behind.
    pub fn dropped_fragments(&self) -> u64 {
        self.dropped_fragments.load(Ordering::Relaxed)
    }

    /// File names (`.live.mp4`) being written now.
    pub fn active(&self) -> HashSet<String> {
        self.active
            .lock()
            .expect("recordings lock poisoned")
            .clone()
    }

    fn set_active(&self, name: &str, on: bool) {
        let mut active = self.active.lock().expect("recordings lock poisoned");
        if on {
            active.insert(name.to_owned());
        } else {
            active.remove(name);
        }
    }
}

enum WriterMsg {
    Bytes(Bytes),
    Finish,
}

/// One broadcast being recorded; owned by the room's tap.
pub struct Recording {
    tx: mpsc::Sender<WriterMsg>,
    fragmenter: RecordingFragmenter,
    recordings: std::sync::Arc<Recordings>,
    stopped: bool,
    name: String,
}

impl Recording {
    /// Starts recording `room` with `init` (both tracks' init segment); media time `origin`
    /// (90 kHz) becomes zero in the file, and happened at `origin_ms` (Unix ms; kept in the
    /// `<stem>.json` sidecar for chat replay). `None` when recordings are off.
    pub fn start(
        recordings: &std::sync::Arc<Recordings>,
        tasks: &TaskTracker,
        room: &str,
        init: Vec<u8>,
        origin: u64,
        origin_ms: u64,
    ) -> Option<Self> {
        if !recordings.enabled {
            return None;
        }
        let stem = files::new_stem(&recordings.dir, room);
        let name = format!("{stem}.live.mp4");
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        recordings.set_active(&name, true);
        tasks.spawn(writer(recordings.clone(), stem, origin_ms, rx));
        let mut recording = Self {
            tx,
            fragmenter: RecordingFragmenter::new(origin),
            recordings: recordings.clone(),
            stopped: false,
            name,
        };
        recording.send(Bytes::from(init));
        tracing::info!(room, file = %recording.name, "recording started");
        Some(recording)
    }

    /// Adds a sample (video, or audio when `audio`) at its media decode time.
    pub fn push(&mut self, audio: bool, decode_time: u64, sample: Sample) {
        match self.fragmenter.push(audio, decode_time, sample) {
            Ok(Some(fragment)) => self.send(Bytes::from(fragment)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "recording fragment not written"),
        }
    }

    /// Writes what is pending as one fragment (called at every video part).
    pub fn flush(&mut self) {
        match self.fragmenter.flush() {
            Ok(Some(fragment)) => self.send(Bytes::from(fragment)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "recording fragment not written"),
        }
    }

    /// Ends the broadcast: the file is finalised in the background. Never waits; with the
    /// writer's queue full, the end is handed over by a task of its own.
    pub fn finish(mut self) {
        self.flush();
        if self.stopped {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.tx.try_send(WriterMsg::Finish) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(msg).await;
            });
        }
    }

    fn send(&mut self, bytes: Bytes) {
        if self.stopped {
            return;
        }
        match self.tx.try_send(WriterMsg::Bytes(bytes)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self
                    .recordings
                    .dropped_fragments
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if n.is_power_of_two() {
                    tracing::warn!(file = %self.name, dropped = n, "recording writer behind: fragment dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The writer stopped after an error it logged; the live stream goes on.
                self.stopped = true;
            }
        }
    }
}

/// Writes one recording's bytes as they come, then finalises it.
async fn writer(
    recordings: std::sync::Arc<Recordings>,
    stem: String,
    origin_ms: u64,
    mut rx: mpsc::Receiver<WriterMsg>,
) {
    let live = recordings.dir.join(format!("{stem}.live.mp4"));
    let name = format!("{stem}.live.mp4");
    let fail = |e: std::io::Error, what: &str| {
        recordings.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(file = %live.display(), error = %e, "recording stopped: {what}");
    };
    let opened = async {
        tokio::fs::create_dir_all(&recordings.dir).await?;
        let sidecar = chat::Sidecar {
            origin_ms,
            start_ms: None,
        };
        let json = serde_json::to_vec(&sidecar).expect("the sidecar serialises");
        tokio::fs::write(chat::sidecar_path(&recordings.dir, &stem), json).await?;
        tokio::fs::File::create(&live).await
    }
    .await;
    let mut file = match opened {
        Ok(f) => f,
        Err(e) => {
            fail(e, "cannot create the file");
            recordings.set_active(&name, false);
            return;
        }
    };
    let mut failed = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            WriterMsg::Bytes(bytes) => {
                if let Err(e) = file.write_all(&bytes).await {
                    fail(e, "write failed (disk full?)");
                    failed = true;
                    break;
                }
                if let Some(ops) = recordings.ops.get() {
                    let n = bytes.len() as u64;
                    ops.counters.recording_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
            WriterMsg::Finish => break,
        }
    }
    // Dropping the receiver tells the tap to stop sending.
    drop(rx);
    if !failed && let Err(e) = file.flush().await {
        fail(e, "write failed (disk full?)");
        failed = true;
    }
    drop(file);
    recordings.set_active(&name, false);
    if failed {
        // The fragments written so far stay readable as they are.
        return;
    }
    let dir = recordings.dir.clone();
    let result = tokio::task::spawn_blocking(move || finalise(&dir, &stem)).await;
    match result {
        Ok(Ok(Some(info))) => {
            if let Some(ops) = recordings.ops.get() {
                ops.recording_ready(&info);
            }
            tracing::info!(file = %info.file, duration = info.duration, size = info.size, "recording finalised");
        }
        Ok(Ok(None)) => tracing::info!(file = %name, "empty recording removed"),
        Ok(Err(e)) => {
            recordings.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(file = %name, error = %e, "recording not finalised; the fragmented file is kept");
        }
        Err(e) => tracing::error!(error = %e, "finalising task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_disk_stops_the_recording_and_is_counted() {
        let data = std::env::temp_dir().join(format!("onair-full-{:016x}", rand::random::<u64>()));
        let recordings = std::sync::Arc::new(Recordings::new(&data, true));
        std::fs::create_dir_all(recordings.dir()).unwrap();
        // Every write to /dev/full fails with ENOSPC, like a full disk.
        std::os::unix::fs::symlink("/dev/full", recordings.dir().join("x.live.mp4")).unwrap();
        recordings.set_active("x.live.mp4", true);
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(writer(recordings.clone(), "x".into(), 0, rx));
        // tokio's File reports a failed write at the next operation: the tap keeps sending.
        for _ in 0..2 {
            tx.send(WriterMsg::Bytes(Bytes::from(vec![0u8; 256 * 1024])))
                .await
                .map_err(|_| "writer alive")
                .unwrap();
        }
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("the writer stops by itself")
            .unwrap();
        assert_eq!(recordings.write_errors(), 1);
        assert!(recordings.active().is_empty());
        assert!(
            matches!(
                tx.try_send(WriterMsg::Finish),
                Err(mpsc::error::TrySendError::Closed(_))
            ),
            "the tap learns that the recording stopped"
        );
        let _ = std::fs::remove_dir_all(&data);
    }
}
