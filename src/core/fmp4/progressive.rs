//! Progressive faststart MP4 from a fragmented recording (recording finalisation: the runs of a
//! `.live.mp4` -> `ftyp` + `moov` with full sample tables + `mdat`): sample tables
//! (ISO/IEC 14496-12 §8.6-§8.7), one chunk per fragment run, `co64` past 4 GiB, and edit lists
//! that start later tracks late and skip the Opus pre-skip (§8.6.6). Pure: it returns the
//! header bytes and the byte ranges of the source file to copy after them.

use mp4_atom::{
    Co64, Edts, Elst, ElstEntry, Encode, Ftyp, Moov, Mvhd, Stco, Stsc, StscEntry, Stss, Stsz,
    StszSamples, Stts, SttsEntry, Trak,
};

use super::scan::{InitInfo, Run};
use super::{Fmp4Error, is_sync};

/// Movie timescale of progressive files (milliseconds).
const MOVIE_TIMESCALE: u32 = 1000;

/// Bytes `[offset, offset + len)` of the source file, copied in order after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRange {
    /// Start in the source file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// A progressive file, as a header and a copy plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Progressive {
    /// `ftyp`, `moov` and the `mdat` header.
    pub header: Vec<u8>,
    /// Source ranges whose concatenation is the `mdat` payload.
    pub copy: Vec<CopyRange>,
    /// Presentation duration in milliseconds (the longest track's edit list).
    pub duration_ms: u64,
}

impl Progressive {
    /// Size of the finished file.
    pub fn file_len(&self) -> u64 {
        self.header.len() as u64 + self.copy.iter().map(|c| c.len).sum::<u64>()
    }
}

struct TrackTables {
    trak: Trak,
    /// Indices into `runs` of this track's runs, in order.
    chunks: Vec<usize>,
}

/// Builds the progressive version of a fragmented file whose init is `init` and whose
/// fragments hold `runs` (in file order). `creation_time` is in seconds since 1904.
pub fn progressive(
    init: &InitInfo,
    runs: &[Run],
    creation_time: u64,
) -> Result<Progressive, Fmp4Error> {
    // Where each track starts, in seconds, to line the tracks up with edit lists.
    let start_of = |track_id: u32| -> Option<f64> {
        let track = init.track(track_id)?;
        let first = runs
            .iter()
            .find(|r| r.track_id == track_id && !r.samples.is_empty())?;
        Some(first.base_decode_time as f64 / f64::from(track.timescale))
    };
    let earliest = init
        .tracks
        .iter()
        .filter_map(|t| start_of(t.track_id))
        .fold(f64::INFINITY, f64::min);
    if !earliest.is_finite() {
        return Err(Fmp4Error::Empty);
    }
    let data_len: u64 = runs.iter().map(Run::data_len).sum();
    let mdat_header_len: u64 = if data_len + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let large = data_len + 1_000_000 > u64::from(u32::MAX);

    let mut tracks = Vec::new();
    let mut duration_ms = 0;
    for (index, trak) in init.moov.trak.iter().enumerate() {
        let info = &init.tracks[index];
        let Some(start) = start_of(info.track_id) else {
            continue;
        };
        let chunks: Vec<usize> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.track_id == info.track_id && !r.samples.is_empty())
            .map(|(i, _)| i)
            .collect();
        let mut sizes = Vec::new();
        let mut durations: Vec<u32> = Vec::new();
        let mut sync = Vec::new();
        let mut next_time: Option<u64> = None;
        for &i in &chunks {
            let run = &runs[i];
            if let (Some(expected), Some(last)) = (next_time, durations.last_mut()) {
                // A hole or overlap between fragments: the previous sample absorbs it.
                let adjusted = i64::from(*last) + run.base_decode_time as i64 - expected as i64;
                *last = adjusted.clamp(1, i64::from(u32::MAX)) as u32;
            }
            for s in &run.samples {
                sizes.push(s.size);
                durations.push(s.duration);
                sync.push(is_sync(s.flags));
            }
            next_time = Some(run.base_decode_time + run.duration());
        }
        let media_duration: u64 = durations.iter().map(|&d| u64::from(d)).sum();
        let timescale = u64::from(info.timescale.max(1));
        let to_movie = |t: u64| t * u64::from(MOVIE_TIMESCALE) / timescale;
        let mut entries = Vec::new();
        let delay_ms = ((start - earliest) * f64::from(MOVIE_TIMESCALE)).round() as u64;
        if delay_ms > 0 {
            entries.push(ElstEntry {
                segment_duration: delay_ms,
                media_time: None,
                media_rate: 1i16.into(),
            });
        }
        let skip = u64::from(info.pre_skip.unwrap_or(0)).min(media_duration);
        entries.push(ElstEntry {
            segment_duration: to_movie(media_duration - skip),
            media_time: Some(skip),
            media_rate: 1i16.into(),
        });
        let presentation: u64 = entries.iter().map(|e| e.segment_duration).sum();
        duration_ms = duration_ms.max(presentation);

        let mut trak = trak.clone();
        trak.tkhd.duration = presentation;
        trak.tkhd.creation_time = creation_time;
        trak.tkhd.modification_time = creation_time;
        trak.mdia.mdhd.duration = media_duration;
        trak.mdia.mdhd.creation_time = creation_time;
        trak.mdia.mdhd.modification_time = creation_time;
        trak.edts = Some(Edts {
            elst: Some(Elst { entries }),
        });
        let stbl = &mut trak.mdia.minf.stbl;
        stbl.stts = Stts {
            entries: run_lengths(&durations)
                .into_iter()
                .map(|(sample_delta, sample_count)| SttsEntry {
                    sample_count,
                    sample_delta,
                })
                .collect(),
        };
        stbl.stss = (!sync.iter().all(|&s| s)).then(|| Stss {
            entries: sync
                .iter()
                .enumerate()
                .filter(|(_, s)| **s)
                .map(|(i, _)| i as u32 + 1)
                .collect(),
        });
        let per_chunk: Vec<u32> = chunks
            .iter()
            .map(|&i| runs[i].samples.len() as u32)
            .collect();
        let mut stsc = Vec::new();
        let mut first_chunk = 1;
        for (samples_per_chunk, count) in run_lengths(&per_chunk) {
            stsc.push(StscEntry {
                first_chunk,
                samples_per_chunk,
                sample_description_index: 1,
            });
            first_chunk += count;
        }
        stbl.stsc = Stsc { entries: stsc };
        stbl.stsz = Stsz {
            samples: StszSamples::Different { sizes },
        };
        tracks.push(TrackTables { trak, chunks });
    }

    // Chunk offsets: runs are copied in file order, so a run's new offset is the data start
    // plus every earlier run's length.
    let mut relative = vec![0u64; runs.len()];
    let mut at = 0;
    for (i, run) in runs.iter().enumerate() {
        relative[i] = at;
        at += run.data_len();
    }
    let encode = |data_start: u64, tracks: &mut [TrackTables]| -> Result<Vec<u8>, Fmp4Error> {
        for t in tracks.iter_mut() {
            let offsets: Vec<u64> = t.chunks.iter().map(|&i| data_start + relative[i]).collect();
            let stbl = &mut t.trak.mdia.minf.stbl;
            if large {
                stbl.co64 = Some(Co64 { entries: offsets });
                stbl.stco = None;
            } else {
                let entries = offsets
                    .into_iter()
                    .map(u32::try_from)
                    .collect::<Result<_, _>>()
                    .map_err(|_| Fmp4Error::Unsupported("chunk offset past 4 GiB"))?;
                stbl.stco = Some(Stco { entries });
                stbl.co64 = None;
            }
        }
        let mut out = Vec::new();
        Ftyp {
            major_brand: b"isom".into(),
            minor_version: 512,
            compatible_brands: vec![
                b"isom".into(),
                b"iso2".into(),
                b"avc1".into(),
                b"mp41".into(),
            ],
        }
        .encode(&mut out)?;
        Moov {
            mvhd: Mvhd {
                creation_time,
                modification_time: creation_time,
                timescale: MOVIE_TIMESCALE,
                duration: duration_ms,
                rate: 1u16.into(),
                volume: 1u8.into(),
                next_track_id: init.tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1,
                ..Default::default()
            },
            trak: tracks.iter().map(|t| t.trak.clone()).collect(),
            ..Default::default()
        }
        .encode(&mut out)?;
        Ok(out)
    };
    let probe = encode(0, &mut tracks)?;
    let data_start = probe.len() as u64 + mdat_header_len;
    let mut header = encode(data_start, &mut tracks)?;
    if header.len() != probe.len() {
        return Err(Fmp4Error::Unsupported("moov size changed with its offsets"));
    }
    if mdat_header_len == 16 {
        header.extend_from_slice(&1u32.to_be_bytes());
        header.extend_from_slice(b"mdat");
        header.extend_from_slice(&(data_len + 16).to_be_bytes());
    } else {
        header.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
        header.extend_from_slice(b"mdat");
    }
    let mut copy: Vec<CopyRange> = Vec::new();
    for run in runs {
        let len = run.data_len();
        if len == 0 {
            continue;
        }
        match copy.last_mut() {
            Some(last) if last.offset + last.len == run.data_offset => last.len += len,
            _ => copy.push(CopyRange {
                offset: run.data_offset,
                len,
            }),
        }
    }
    Ok(Progressive {
        header,
        copy,
        duration_ms,
    })
}

/// `(value, how many times in a row)` for each run of equal values.
fn run_lengths(values: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

#[cfg(test)]
#[path = "progressive_tests.rs"]
mod tests;
