//! Chat replay of recordings (egress path, end: `<data_dir>/chat/<room>/<started_ms>.jsonl`
//! written by `chat::log` beside `<data_dir>/recordings/<stem>.mp4`): the start time of each
//! recording (a `<stem>.json` sidecar), which chat log belongs to it, and the slice of that log
//! that covers it with each event's offset into the recording. The choice and the slicing are
//! pure functions; the rest is blocking file I/O (call from `spawn_blocking`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A log may start this long after its recording (the chat hub notices a publisher on its
/// next tick, and a hub starts only when someone joins the chat).
pub const START_SLACK_MS: u64 = 5_000;
/// Largest part of a log read for one replay (later lines are left out, `truncated`).
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// Most events in one replay.
pub const MAX_EVENTS: usize = 20_000;
/// Longest line kept (the hub's own lines are far shorter).
const MAX_LINE: usize = 64 * 1024;
/// Event types a replay carries; state, presence and the markers are left out.
const REPLAYED: [&str; 4] = ["chat", "reaction", "deleted", "cleared"];

/// The sidecar `<stem>.json` of a recording: when its time zero happened.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    /// Wall clock (Unix ms) of decode time zero in the fragmented file.
    pub origin_ms: u64,
    /// Wall clock (Unix ms) of presentation time zero of the finished file (`video.currentTime`
    /// 0), once it is finalised.
    #[serde(default)]
    pub start_ms: Option<u64>,
}

impl Sidecar {
    /// The wall clock of the recording's time zero; before finalising, the first sample is
    /// about a second after the decode origin (the recorder's slack).
    pub fn start(&self) -> u64 {
        self.start_ms.unwrap_or(self.origin_ms + 1_000)
    }
}

/// The sidecar's path.
pub fn sidecar_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.json"))
}

/// Reads the sidecar of `stem`, if it has a valid one.
pub fn read_sidecar(dir: &Path, stem: &str) -> Option<Sidecar> {
    let mut text = String::new();
    std::fs::File::open(sidecar_path(dir, stem))
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the sidecar of `stem` (replacing it atomically).
pub fn write_sidecar(dir: &Path, stem: &str, sidecar: &Sidecar) -> std::io::Result<()> {
    let tmp = dir.join(format!("{stem}.json.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(sidecar).expect("the sidecar serialises"),
    )?;
    std::fs::rename(tmp, sidecar_path(dir, stem))
}

/// One chat log of a room: when it started, and when it was last written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSpan {
    /// The `started` of its header (its file name), Unix ms.
    pub started: u64,
    /// Last modification, Unix ms.
    pub modified: u64,
}

/// The log of the broadcast recorded from `start_ms`: the latest one that started no later
/// than [`START_SLACK_MS`] after the recording and was still written after it started.
pub fn pick_log(logs: &[LogSpan], start_ms: u64) -> Option<u64> {
    logs.iter()
        .filter(|l| l.started <= start_ms.saturating_add(START_SLACK_MS) && l.modified >= start_ms)
        .map(|l| l.started)
        .max()
}

/// The logs of `room` under `chat_dir`.
pub fn logs(chat_dir: &Path, room: &str) -> Vec<LogSpan> {
    let Ok(entries) = std::fs::read_dir(chat_dir.join(room)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let started = e
                .file_name()
                .to_str()?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            let modified = e
                .metadata()
                .ok()?
                .modified()
                .ok()?
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_millis() as u64;
            Some(LogSpan { started, modified })
        })
        .collect()
}

/// The chat log paired with a recording of `room` that started at `start_ms`.
pub fn find_log(chat_dir: &Path, room: &str, start_ms: u64) -> Option<PathBuf> {
    if !valid_room(room) {
        return None;
    }
    let started = pick_log(&logs(chat_dir, room), start_ms)?;
    Some(chat_dir.join(room).join(format!("{started}.jsonl")))
}

fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && !room.starts_with('.')
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What `GET /recordings/{stem}/chat` answers.
#[derive(Debug, Serialize, PartialEq)]
pub struct Replay {
    /// Wall clock (Unix ms) of the recording's time zero.
    pub start: u64,
    /// The `started` of the log.
    pub log: u64,
    /// The log's public events up to the recording's end, each with `offset`: seconds from
    /// the recording's time zero (negative before it: shown from the start).
    pub events: Vec<Value>,
    /// Events were left out by the size limits.
    pub truncated: bool,
}

/// Slices the log `lines` for a recording from `start_ms` to `end_ms` (Unix ms). Lines that
/// are not JSON objects, or have no time, are skipped; `t` (when logged) is preferred over a
/// chat message's own `ts`.
pub fn slice<I: IntoIterator<Item = String>>(
    lines: I,
    start_ms: u64,
    end_ms: u64,
    log: u64,
) -> Replay {
    let mut events = Vec::new();
    let mut truncated = false;
    for line in lines {
        let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if !REPLAYED.contains(&kind) {
            continue;
        }
        let Some(t) = event
            .get("t")
            .or_else(|| event.get("ts"))
            .and_then(Value::as_u64)
        else {
            continue;
        };
        if t > end_ms {
            break;
        }
        if events.len() == MAX_EVENTS {
            truncated = true;
            break;
        }
        let offset = (t as f64 - start_ms as f64) / 1000.0;
        event.insert(
            "offset".into(),
            Value::from((offset * 1000.0).round() / 1000.0),
        );
        events.push(Value::Object(event));
    }
    Replay {
        start: start_ms,
        log,
        events,
        truncated,
    }
}

/// Reads the log at `path` (at most [`MAX_LOG_BYTES`]) and slices it.
pub fn replay(path: &Path, start_ms: u64, end_ms: u64) -> std::io::Result<Replay> {
    let log = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file.take(MAX_LOG_BYTES));
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && n > MAX_LINE {
            // An overlong line: skip the rest of it.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        if let Ok(text) = std::str::from_utf8(&buf) {
            lines.push(text.trim_end().to_owned());
        }
    }
    let mut replay = slice(lines, start_ms, end_ms, log);
    replay.truncated |= len > MAX_LOG_BYTES;
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_log_of_the_recorded_broadcast_is_chosen() {
        let logs = [
            LogSpan {
                started: 1_000,
                modified: 50_000,
            },
            LogSpan {
                started: 60_000,
                modified: 90_000,
            },
            LogSpan {
                started: 200_000,
                modified: 210_000,
            },
        ];
        // The broadcast's log started a little before or after the recording.
        assert_eq!(pick_log(&logs, 2_000), Some(1_000));
        assert_eq!(pick_log(&logs, 57_000), Some(60_000));
        assert_eq!(pick_log(&logs, 61_000), Some(60_000));
        // A log that ended before the recording started is another broadcast's.
        assert_eq!(pick_log(&logs, 95_000), None);
        // One that started well after the recording is too.
        assert_eq!(pick_log(&logs, 150_000), None);
        assert_eq!(pick_log(&[], 1), None);
    }

    #[test]
    fn the_slice_carries_offsets_and_stops_at_the_end() {
        let lines = [
            r#"{"type":"log","version":1,"room":"r","started":1000}"#,
            r#"{"t":1000,"type":"state","slow":0}"#,
            r#"{"t":1500,"type":"chat","id":"a","text":"early","ts":1500}"#,
            "not json",
            r#"[1,2]"#,
            r#"{"type":"chat","id":"b","text":"old format","ts":4000}"#,
            r#"{"t":5250,"type":"reaction","emoji":"🎉"}"#,
            r#"{"t":6000,"type":"deleted","id":"a"}"#,
            r#"{"t":6500,"type":"presence","viewers":3}"#,
            r#"{"type":"cleared"}"#,
            r#"{"t":9000,"type":"cleared"}"#,
            r#"{"t":9500,"type":"end"}"#,
        ]
        .map(String::from);
        let replay = slice(lines, 2_000, 8_000, 1_000);
        let kinds: Vec<_> = replay.events.iter().map(|e| e["type"].clone()).collect();
        assert_eq!(
            kinds,
            [
                json!("chat"),
                json!("chat"),
                json!("reaction"),
                json!("deleted")
            ]
        );
        let offsets: Vec<_> = replay
            .events
            .iter()
            .map(|e| e["offset"].as_f64().unwrap())
            .collect();
        assert_eq!(offsets, [-0.5, 2.0, 3.25, 4.0]);
        assert!(!replay.truncated);
        assert_eq!(replay.log, 1_000);
    }

    #[test]
    fn replays_are_bounded() {
        let lines = (0..MAX_EVENTS + 5).map(|i| format!(r#"{{"t":{i},"type":"cleared"}}"#));
        let replay = slice(lines, 0, u64::MAX, 0);
        assert_eq!(replay.events.len(), MAX_EVENTS);
        assert!(replay.truncated);
    }

    #[test]
    fn a_log_file_with_an_overlong_line_still_replays() {
        let dir = std::env::temp_dir().join(format!("onair-replay-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("r")).unwrap();
        let long = "x".repeat(MAX_LINE * 2);
        let text = format!(
            "{}\n{{\"t\":10,\"type\":\"chat\",\"text\":\"{long}\"}}\n{{\"t\":20,\"type\":\"chat\",\"text\":\"ok\"}}\n",
            r#"{"type":"log","version":1,"room":"r","started":5}"#
        );
        std::fs::write(dir.join("r/5.jsonl"), text).unwrap();
        let found = find_log(&dir, "r", 6).expect("paired");
        let replay = replay(&found, 0, 100).unwrap();
        assert_eq!(replay.events.len(), 1);
        assert_eq!(replay.events[0]["text"], "ok");
        assert_eq!(replay.log, 5);
        assert_eq!(find_log(&dir, "../r", 6), None);
        let s = Sidecar {
            origin_ms: 7,
            start_ms: Some(9),
        };
        write_sidecar(&dir, "st", &s).unwrap();
        assert_eq!(read_sidecar(&dir, "st"), Some(s));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
