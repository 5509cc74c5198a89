//! A finished recording as a VOD HLS playlist (egress path after the broadcast: the progressive
//! `<name>.mp4` -> `core::fmp4` sample index -> `/recordings/<name>/index.m3u8`, `init.mp4`,
//! `N.m4s` made on request). Blocking file I/O: call from `spawn_blocking`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use mp4_atom::{Decode, Moov};

use super::files::RecordingError;
use crate::core::fmp4::{
    Fmp4Error, TrackIndex, VodSegment, box_header, fragmented_init, sample_index, vod_fragment,
    vod_playlist, vod_segments,
};

/// Target length of VOD segments (they start at the recording's IDRs).
const SEGMENT_TARGET: f64 = 2.0;
/// Recordings whose index is kept in memory.
const CACHED: usize = 16;

/// The index of one finished recording.
#[derive(Debug)]
pub struct Vod {
    tracks: Vec<TrackIndex>,
    segments: Vec<VodSegment>,
    init: Bytes,
    playlist: Bytes,
}

/// Indexes of recently played recordings, by file name and modification time.
#[derive(Debug, Default)]
pub struct VodCache {
    entries: Mutex<HashMap<String, (SystemTime, Arc<Vod>)>>,
}

impl VodCache {
    /// The index of `dir/file`, from the cache when the file did not change.
    pub fn get(&self, dir: &Path, file: &str) -> Result<Arc<Vod>, RecordingError> {
        let path = dir.join(file);
        let modified = std::fs::metadata(&path)?.modified()?;
        if let Some((m, vod)) = self.entries.lock().expect("vod cache lock").get(file)
            && *m == modified
        {
            return Ok(vod.clone());
        }
        let vod = Arc::new(load(&path)?);
        let mut entries = self.entries.lock().expect("vod cache lock");
        if entries.len() >= CACHED
            && let Some(old) = entries.keys().next().cloned()
        {
            entries.remove(&old);
        }
        entries.insert(file.to_owned(), (modified, vod.clone()));
        Ok(vod)
    }
}

fn load(path: &Path) -> Result<Vod, RecordingError> {
    let mut file = BufReader::new(File::open(path)?);
    let len = file.get_ref().metadata()?.len();
    let mut at = 0;
    let mut header = [0u8; 16];
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at))?;
        let n = (len - at).min(16) as usize;
        file.read_exact(&mut header[..n])?;
        let h = box_header(&header[..n]).ok_or(Fmp4Error::Truncated)?;
        let size = h.size.unwrap_or(len - at);
        if h.kind == *b"moov" {
            let mut body = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut body)?;
            let moov = Moov::decode(&mut &body[..]).map_err(Fmp4Error::from)?;
            if moov.mvex.is_some() {
                return Err(Fmp4Error::Unsupported("a fragmented file is not finished").into());
            }
            let tracks = sample_index(&moov)?;
            let segments = vod_segments(&tracks, SEGMENT_TARGET);
            return Ok(Vod {
                init: Bytes::from(fragmented_init(&moov)?),
                playlist: Bytes::from(vod_playlist(&segments)),
                tracks,
                segments,
            });
        }
        at += size;
    }
    Err(RecordingError::NoInit)
}

impl Vod {
    /// `index.m3u8`.
    pub fn playlist(&self) -> Bytes {
        self.playlist.clone()
    }

    /// `init.mp4`.
    pub fn init(&self) -> Bytes {
        self.init.clone()
    }

    /// `N.m4s`: the samples of segment `n`, read from `path`.
    pub fn segment(&self, path: &Path, n: usize) -> Result<Option<Bytes>, RecordingError> {
        let Some(segment) = self.segments.get(n) else {
            return Ok(None);
        };
        let mut file = BufReader::new(File::open(path)?);
        let bytes = vod_fragment(&self.tracks, segment, n as u32 + 1, |s| {
            let mut data = vec![0u8; s.size as usize];
            file.seek(SeekFrom::Start(s.offset))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(|_| Fmp4Error::Truncated)?;
            Ok(Bytes::from(data))
        })?;
        Ok(Some(Bytes::from(bytes)))
    }
}
