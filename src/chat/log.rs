//! The chat log of each broadcast (chat path, I/O shell): while a room is live, every public
//! chat event is appended as one JSON line to `<data_dir>/chat/<room>/<started_ms>.jsonl`, next
//! to the recording of the same broadcast. A writer task does the disk I/O; the hub only queues
//! the already-serialised frames (a full queue or a disk error loses log lines, never chat).
//!
//! Format (version 1): the header `{"type":"log","version":1,"room","started"}`, then one
//! public event a line with `"t"` (server Unix ms when it was sent) put first, and a last
//! `{"t":…,"type":"end"}` when the broadcast ends cleanly. The recordings page replays it.

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
    tx: Option<mpsc::Sender<Line>>,
    dropped: u64,
}

/// One line for the writer: a serialised JSON object, stamped with `t` unless it is the header.
struct Line {
    t: Option<u64>,
    frame: Frame,
}

/// The end marker's body (the writer puts `"t"` before it).
const END: &str = r#"{"type":"end"}"#;

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
        let _ = tx.try_send(Line {
            t: None,
            frame: Frame::from(header),
        });
        let _ = tx.try_send(Line {
            t: Some(now_ms),
            frame: state.clone(),
        });
        tracing::info!(room = %self.room, path = %path.display(), "writing the broadcast's chat log");
        tokio::spawn(write(path, rx));
        self.tx = Some(tx);
    }

    /// Appends one line (a serialised public event).
    pub fn line(&mut self, frame: &Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
        let line = Line {
            t: Some(super::now_ms()),
            frame: frame.clone(),
        };
        if tx.try_send(line).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(room = %self.room, dropped = self.dropped, "chat log lines dropped (disk too slow or failing)");
            }
        }
    }

    /// Ends the current file with the end marker (the writer flushes what is queued).
    pub fn close(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Line {
                t: Some(super::now_ms()),
                frame: Frame::from(END),
            });
        }
    }
}

async fn write(path: PathBuf, mut rx: mpsc::Receiver<Line>) {
    if let Err(e) = write_lines(&path, &mut rx).await {
        tracing::warn!(path = %path.display(), error = %e, "chat log stopped");
    }
}

async fn write_lines(path: &std::path::Path, rx: &mut mpsc::Receiver<Line>) -> std::io::Result<()> {
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
            let text = line.frame.as_str();
            match (line.t, text.strip_prefix('{')) {
                // `{"t":N,` + the object's members; the events are never empty objects.
                (Some(t), Some(rest)) if rest.trim_start().starts_with('"') => {
                    out.write_all(format!("{{\"t\":{t},").as_bytes()).await?;
                    out.write_all(rest.as_bytes()).await?;
                }
                _ => out.write_all(text.as_bytes()).await?,
            }
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_stamped_and_the_log_ends_with_a_marker() {
        let dir =
            std::env::temp_dir().join(format!("onair-chatlog-{:016x}", rand::random::<u64>()));
        let mut log = ChatLog::new(Some(dir.clone()), "r");
        log.open(1_000, &Frame::from(r#"{"type":"state","slow":0}"#));
        log.line(&Frame::from(
            r#"{"type":"chat","id":"a","text":"x \"{t\""}"#,
        ));
        log.close();
        let path = ChatLog::path(&dir, "r", 1_000);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines: Vec<serde_json::Value> = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 4 {
                break text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            }
            assert!(std::time::Instant::now() < deadline, "log: {text}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(
            lines[0],
            serde_json::json!({"type": "log", "version": 1, "room": "r", "started": 1000})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"t": 1000, "type": "state", "slow": 0})
        );
        assert_eq!(lines[2]["text"], "x \"{t\"");
        assert!(lines[2]["t"].as_u64().unwrap() > 1_000);
        assert_eq!(lines[3]["type"], "end");
        assert!(lines[3]["t"].as_u64().unwrap() >= lines[2]["t"].as_u64().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
