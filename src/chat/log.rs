//! The chat log of each broadcast (chat path, I/O shell): while a room is live, every public
//! chat event is appended as one JSON line to `<data_dir>/chat/<room>/<started_ms>.jsonl`, next
//! to the recording of the same broadcast. A writer task does the disk I/O; the hub only queues
//! the already-serialised frames (a full queue or a disk error loses log lines, never chat).

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::conn::Frame;

/// Lines queued for the writer before lines are dropped.
const LOG_QUEUE: usize = 8192;

/// The hub's side of the current broadcast's log file.
pub struct ChatLog {
    dir: Option<PathBuf>,
    room: String,
    tx: Option<mpsc::Sender<Frame>>,
    dropped: u64,
}

/// The first line of every log file.
#[derive(serde::Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    room: &'a str,
    /// Start of the broadcast (Unix ms); also the file name.
    started: u64,
}

impl ChatLog {
    /// Logging for `room` under `dir` (`None`: logging is off).
    pub fn new(dir: Option<PathBuf>, room: &str) -> Self {
        Self {
            dir,
            room: room.to_owned(),
            tx: None,
            dropped: 0,
        }
    }

    /// The path of the log of a broadcast of `room` that started at `started_ms`.
    pub fn path(dir: &std::path::Path, room: &str, started_ms: u64) -> PathBuf {
        dir.join(room).join(format!("{started_ms}.jsonl"))
    }

    /// A log file is open.
    pub fn is_open(&self) -> bool {
        self.tx.is_some()
    }

    /// Starts a new file for a broadcast that starts now; `state` is written after the header.
    pub fn open(&mut self, now_ms: u64, state: &Frame) {
        self.close();
        let Some(dir) = &self.dir else {
            return;
        };
        let path = Self::path(dir, &self.room, now_ms);
        let header = serde_json::to_string(&Header {
            kind: "log",
            version: 1,
            room: &self.room,
            started: now_ms,
        })
        .expect("the log header serialises");
        let (tx, rx) = mpsc::channel(LOG_QUEUE);
        let _ = tx.try_send(Frame::from(header));
        let _ = tx.try_send(state.clone());
        tracing::info!(room = %self.room, path = %path.display(), "writing the broadcast's chat log");
        tokio::spawn(write(path, rx));
        self.tx = Some(tx);
    }

    /// Appends one line (a serialised public event).
    pub fn line(&mut self, frame: &Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send(frame.clone()).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(room = %self.room, dropped = self.dropped, "chat log lines dropped (disk too slow or failing)");
            }
        }
    }

    /// Ends the current file (the writer flushes what is queued).
    pub fn close(&mut self) {
        self.tx = None;
    }
}

async fn write(path: PathBuf, mut rx: mpsc::Receiver<Frame>) {
    if let Err(e) = write_lines(&path, &mut rx).await {
        tracing::warn!(path = %path.display(), error = %e, "chat log stopped");
    }
}

async fn write_lines(
    path: &std::path::Path,
    rx: &mut mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let mut out = tokio::io::BufWriter::new(file);
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for line in batch.drain(..) {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
    }
    out.flush().await
}
