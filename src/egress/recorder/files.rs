//! Recording files on disk (egress path, end: `<name>.live.mp4` -> `<name>.mp4`): naming,
//! finalising a fragmented recording into a progressive faststart MP4 (also after a crash, at
//! start), and listing what is there. Blocking file I/O: call from `spawn_blocking`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use mp4_atom::{Decode, Mvhd};
use serde::Serialize;

use super::chat::{Sidecar, find_log, read_sidecar, sidecar_path, write_sidecar};
use crate::core::fmp4::{
    Fmp4Error, InitInfo, Run, VIDEO_TRACK_ID, box_header, parse_init, parse_moof, progressive,
};
use crate::core::hls::format_pdt;

/// Seconds between 1904-01-01 (MP4 times) and 1970-01-01.
const MP4_EPOCH_OFFSET: u64 = 2_082_844_800;
/// Largest `moov`/`moof` read into memory.
const MAX_BOX: u64 = 256 * 1024 * 1024;

/// Why a recording could not be finalised or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The MP4 structure is not what onair writes.
    #[error("{0}")]
    Mp4(#[from] Fmp4Error),
    /// The file has no init segment.
    #[error("no moov in the recording")]
    NoInit,
}

/// One recording as `GET /api/recordings` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordingInfo {
    /// File name under `/recordings/`.
    pub file: String,
    /// Room it was recorded in.
    pub room: String,
    /// Start, ISO 8601 UTC.
    pub start: String,
    /// Start, Unix seconds.
    pub start_unix: u64,
    /// Seconds.
    pub duration: f64,
    /// Bytes.
    pub size: u64,
    /// `complete`, `recording` (being written) or `interrupted` (a crash left it fragmented).
    pub state: &'static str,
    /// Where to download it.
    pub url: String,
    /// The VOD HLS playlist of a complete recording.
    pub playlist: Option<String>,
    /// The broadcast's chat, replayable beside the player (`None`: no chat log).
    pub chat: Option<String>,
}

/// A new file stem `<room>-<YYYYmmdd-HHMMSS>` that no file in `dir` uses yet.
pub(super) fn new_stem(dir: &Path, room: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let iso = format_pdt(now);
    let stamp: String = iso[..19].chars().filter(|c| c.is_ascii_digit()).collect();
    let base = format!("{room}-{}-{}", &stamp[..8], &stamp[8..]);
    let taken = |stem: &str| {
        dir.join(format!("{stem}.mp4")).exists() || dir.join(format!("{stem}.live.mp4")).exists()
    };
    let mut stem = base.clone();
    let mut n = 2;
    while taken(&stem) {
        stem = format!("{base}-{n}");
        n += 1;
    }
    stem
}

/// Reads the init and every complete fragment's runs of a fragmented file. A fragment cut
/// short by a crash (its `moof` or `mdat` ends past the file) ends the scan.
fn scan(file: &mut BufReader<File>, len: u64) -> Result<(InitInfo, Vec<Run>, u64), RecordingError> {
    let mut at = 0u64;
    let mut init = None;
    let mut runs = Vec::new();
    let mut creation = 0;
    let mut header = [0u8; 16];
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at))?;
        let n = (len - at).min(16) as usize;
        file.read_exact(&mut header[..n])?;
        let Some(h) = box_header(&header[..n]) else {
            break;
        };
        let size = h.size.unwrap_or(len - at);
        if at + size > len {
            break;
        }
        match &h.kind {
            b"moov" | b"moof" => {
                if size > MAX_BOX {
                    return Err(Fmp4Error::Unsupported("box too large").into());
                }
                let mut body = vec![0u8; size as usize];
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut body)?;
                if h.kind == *b"moov" {
                    let info = parse_init(&body)?;
                    creation = info.moov.mvhd.creation_time;
                    init = Some(info);
                } else {
                    let info = init.as_ref().ok_or(RecordingError::NoInit)?;
                    let fragment = parse_moof(&body, at, info)?;
                    // The mdat after the moof must be whole for its samples to count.
                    let end = fragment
                        .iter()
                        .map(|r| r.data_offset + r.data_len())
                        .max()
                        .unwrap_or(at);
                    if end > len {
                        break;
                    }
                    runs.extend(fragment);
                }
            }
            _ => {}
        }
        at += size;
    }
    Ok((init.ok_or(RecordingError::NoInit)?, runs, creation))
}

/// Finalises `<stem>.live.mp4` in `dir` into `<stem>.mp4` (progressive, faststart, edit
/// lists) and removes the fragmented file. `None` when it held no media (it is removed).
pub fn finalise(dir: &Path, stem: &str) -> Result<Option<RecordingInfo>, RecordingError> {
    let live = dir.join(format!("{stem}.live.mp4"));
    let done = dir.join(format!("{stem}.mp4"));
    let tmp = dir.join(format!("{stem}.mp4.tmp"));
    let mut source = BufReader::new(File::open(&live)?);
    let len = source.get_ref().metadata()?.len();
    let (init, runs, _) = scan(&mut source, len)?;
    if runs.iter().all(|r| r.samples.is_empty()) {
        std::fs::remove_file(&live)?;
        let _ = std::fs::remove_file(sidecar_path(dir, stem));
        return Ok(None);
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The start of the broadcast, from the file's name, is its creation time.
    let start = start_from_stem(stem).unwrap_or(created);
    let plan = progressive(&init, &runs, start + MP4_EPOCH_OFFSET)?;
    // Presentation time zero is the earliest first sample of any track.
    let earliest_ms = init
        .tracks
        .iter()
        .filter_map(|t| {
            let first = runs
                .iter()
                .find(|r| r.track_id == t.track_id && !r.samples.is_empty())?;
            Some(first.base_decode_time * 1000 / u64::from(t.timescale.max(1)))
        })
        .min()
        .unwrap_or(0);
    {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        out.write_all(&plan.header)?;
        for range in &plan.copy {
            source.seek(SeekFrom::Start(range.offset))?;
            let copied = std::io::copy(&mut (&mut source).take(range.len), &mut out)?;
            if copied != range.len {
                return Err(Fmp4Error::Truncated.into());
            }
        }
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    std::fs::rename(&tmp, &done)?;
    std::fs::remove_file(&live)?;
    let sidecar = read_sidecar(dir, stem).map(|s| Sidecar {
        origin_ms: s.origin_ms,
        start_ms: Some(s.origin_ms + earliest_ms),
    });
    if let Some(sidecar) = &sidecar
        && let Err(e) = write_sidecar(dir, stem, sidecar)
    {
        tracing::warn!(stem, error = %e, "recording start time not kept; its chat will not replay");
    }
    Ok(Some(RecordingInfo {
        file: format!("{stem}.mp4"),
        room: room_from_stem(stem),
        start: format_pdt(start * 1000),
        start_unix: start,
        duration: plan.duration_ms as f64 / 1000.0,
        size: plan.file_len(),
        state: "complete",
        url: format!("/recordings/{stem}.mp4"),
        playlist: Some(format!("/recordings/{stem}/index.m3u8")),
        chat: None,
    }))
}

/// Finalises every fragmented recording left in `dir` by a crash (none is being written at
/// start). Returns how many were turned into MP4s.
pub fn recover(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut done = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".live.mp4") else {
            continue;
        };
        match finalise(dir, stem) {
            Ok(Some(info)) => {
                tracing::info!(file = %info.file, duration = info.duration, "interrupted recording recovered");
                done += 1;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "interrupted recording left as it is")
            }
        }
    }
    done
}

/// Start (Unix seconds) from a stem `<room>-YYYYmmdd-HHMMSS[-n]`.
pub(super) fn start_from_stem(stem: &str) -> Option<u64> {
    // <room>-YYYYmmdd-HHMMSS[-n]
    let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
    let (date, time) = match parts.as_slice() {
        [n, time, date, _] if n.bytes().all(|b| b.is_ascii_digit()) && n.len() < 4 => {
            (*date, *time)
        }
        [time, date, ..] => (*date, *time),
        _ => return None,
    };
    if date.len() != 8 || time.len() != 6 {
        return None;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, mo, d) = (num(&date[..4])?, num(&date[4..6])?, num(&date[6..])?);
    let (h, mi, s) = (num(&time[..2])?, num(&time[2..4])?, num(&time[4..])?);
    // Days from civil (H. Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// The room of a stem `<room>-YYYYmmdd-HHMMSS[-n]`.
pub(super) fn room_from_stem(stem: &str) -> String {
    let start = start_from_stem(stem);
    let mut parts: Vec<&str> = stem.split('-').collect();
    // Drop "-YYYYmmdd-HHMMSS" and an optional "-n".
    if start.is_some() {
        if parts.last().is_some_and(|p| p.len() < 4) && parts.len() > 3 {
            parts.pop();
        }
        parts.truncate(parts.len().saturating_sub(2));
    }
    parts.join("-")
}

/// Duration (seconds) and creation time (Unix seconds) of a progressive MP4, from `mvhd`.
fn progressive_header(path: &Path) -> Option<(f64, u64)> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let len = file.get_ref().metadata().ok()?.len();
    let mut at = 0u64;
    let mut header = [0u8; 16];
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at)).ok()?;
        file.read_exact(&mut header[..8]).ok()?;
        let h = box_header(&header[..8])?;
        if h.header_len != 8 {
            return None;
        }
        if h.kind == *b"moov" {
            // mvhd is the first box inside moov.
            let mut mvhd = [0u8; 128];
            let n = file.read(&mut mvhd).ok()?;
            let m = Mvhd::decode(&mut &mvhd[..n]).ok()?;
            let secs = m.duration as f64 / f64::from(m.timescale.max(1));
            return Some((secs, m.creation_time.saturating_sub(MP4_EPOCH_OFFSET)));
        }
        at += h.size?;
    }
    None
}

/// Duration (seconds) of a fragmented recording: its video track's fragments (or audio's).
fn fragmented_duration(path: &Path) -> Option<f64> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let len = file.get_ref().metadata().ok()?.len();
    let (init, runs, _) = scan(&mut file, len).ok()?;
    let track = init
        .track(VIDEO_TRACK_ID)
        .or_else(|| init.tracks.first())?
        .clone();
    let ticks: u64 = runs
        .iter()
        .filter(|r| r.track_id == track.track_id)
        .map(Run::duration)
        .sum();
    Some(ticks as f64 / f64::from(track.timescale.max(1)))
}

/// Duration (seconds) of a recording: a finished one's from `mvhd`, a fragmented one's from
/// its fragments.
pub(super) fn duration_of(path: &Path) -> Option<f64> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".live.mp4") {
        fragmented_duration(path)
    } else {
        progressive_header(path).map(|(d, _)| d)
    }
}

/// Every recording in `dir`, newest first; `active` names the `.live.mp4` files being written;
/// each is paired with its broadcast's chat log under `chat_dir`.
pub fn list(
    dir: &Path,
    chat_dir: &Path,
    active: &std::collections::HashSet<String>,
) -> Vec<RecordingInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let (stem, state) = if let Some(stem) = name.strip_suffix(".live.mp4") {
            let state = if active.contains(&name) {
                "recording"
            } else {
                "interrupted"
            };
            (stem, state)
        } else if let Some(stem) = name.strip_suffix(".mp4") {
            (stem, "complete")
        } else {
            continue;
        };
        let path = entry.path();
        let (duration, start) = if state == "complete" {
            match progressive_header(&path) {
                Some((d, s)) => (d, s),
                None => continue,
            }
        } else {
            (
                fragmented_duration(&path).unwrap_or(0.0),
                start_from_stem(stem).unwrap_or(0),
            )
        };
        let room = room_from_stem(stem);
        let start_ms = read_sidecar(dir, stem).map_or(start * 1000, |s| s.start());
        let chat = find_log(chat_dir, &room, start_ms).map(|_| format!("/recordings/{stem}/chat"));
        out.push(RecordingInfo {
            file: name.clone(),
            room,
            start: format_pdt(start * 1000),
            start_unix: start,
            duration: (duration * 1000.0).round() / 1000.0,
            size: meta.len(),
            state,
            url: format!("/recordings/{name}"),
            playlist: (state == "complete").then(|| format!("/recordings/{stem}/index.m3u8")),
            chat,
        });
    }
    out.sort_by(|a, b| b.start_unix.cmp(&a.start_unix).then(b.file.cmp(&a.file)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_carry_room_and_start() {
        assert_eq!(start_from_stem("demo-20231114-221320"), Some(1_700_000_000));
        assert_eq!(
            start_from_stem("my-room-20231114-221320-2"),
            Some(1_700_000_000)
        );
        assert_eq!(room_from_stem("my-room-20231114-221320-2"), "my-room");
        assert_eq!(room_from_stem("demo-20231114-221320"), "demo");
        assert_eq!(start_from_stem("odd"), None);
        assert_eq!(room_from_stem("odd"), "odd");
        let dir = std::env::temp_dir().join(format!("onair-stem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = new_stem(&dir, "r");
        std::fs::write(dir.join(format!("{a}.mp4")), b"").unwrap();
        let b = new_stem(&dir, "r");
        assert_ne!(a, b);
        assert_eq!(room_from_stem(&b), "r");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn finalising_a_file_that_is_not_mp4_fails_and_keeps_it() {
        let dir = std::env::temp_dir().join(format!("onair-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x-20231114-221320.live.mp4"), b"garbage garbage").unwrap();
        assert!(finalise(&dir, "x-20231114-221320").is_err());
        assert!(dir.join("x-20231114-221320.live.mp4").exists());
        assert_eq!(recover(&dir), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
