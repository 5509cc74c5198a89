//! VOD HLS over a finished recording (egress path, after the broadcast: a progressive MP4's
//! `moov` -> sample index -> fMP4 init + one fragment per GOP): expands the sample tables
//! (ISO/IEC 14496-12 §8.6-§8.7), writes a fragmented init from the same sample entries, cuts
//! segments at video sync samples, and writes a VOD media playlist (RFC 8216bis §4.4.3.5).
//! Pure: the shell reads the sample bytes.

use std::fmt::Write;

use mp4_atom::{Encode, Ftyp, Moov, Mvex, Stbl, Trak, Trex};

use super::{Fmp4Error, Sample, TrackRun, fragment};

/// One sample of a progressive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedSample {
    /// Where its bytes are in the file.
    pub offset: u64,
    /// Bytes.
    pub size: u32,
    /// Decode time, track timescale, including the track's initial empty edit.
    pub dts: u64,
    /// Decode duration.
    pub duration: u32,
    /// A decoder can start here.
    pub sync: bool,
}

/// Every sample of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackIndex {
    /// `track_ID`.
    pub track_id: u32,
    /// Media timescale.
    pub timescale: u32,
    /// `vide` or `soun`.
    pub video: bool,
    /// In decoding order.
    pub samples: Vec<IndexedSample>,
}

/// The samples of every track of a progressive `moov`.
pub fn sample_index(moov: &Moov) -> Result<Vec<TrackIndex>, Fmp4Error> {
    let movie_scale = u64::from(moov.mvhd.timescale.max(1));
    moov.trak
        .iter()
        .map(|trak| {
            let timescale = trak.mdia.mdhd.timescale.max(1);
            // An initial empty edit delays the track (how `progressive` lines tracks up).
            let delay = trak
                .edts
                .as_ref()
                .and_then(|e| e.elst.as_ref())
                .and_then(|l| l.entries.first())
                .filter(|e| e.media_time.is_none())
                .map_or(0, |e| {
                    e.segment_duration * u64::from(timescale) / movie_scale
                });
            Ok(TrackIndex {
                track_id: trak.tkhd.track_id,
                timescale,
                video: trak.mdia.hdlr.handler == b"vide".into(),
                samples: expand(&trak.mdia.minf.stbl, delay)?,
            })
        })
        .collect()
}

fn expand(stbl: &Stbl, delay: u64) -> Result<Vec<IndexedSample>, Fmp4Error> {
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, size } => vec![*size; *count as usize],
        mp4_atom::StszSamples::Different { sizes } => sizes.clone(),
    };
    let offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(Fmp4Error::Unsupported("no chunk offsets")),
    };
    let mut durations = Vec::with_capacity(sizes.len());
    for e in &stbl.stts.entries {
        durations.extend(std::iter::repeat_n(e.sample_delta, e.sample_count as usize));
    }
    if durations.len() != sizes.len() {
        return Err(Fmp4Error::Unsupported("stts and stsz disagree"));
    }
    let sync = |i: usize| {
        stbl.stss
            .as_ref()
            .is_none_or(|s| s.entries.binary_search(&(i as u32 + 1)).is_ok())
    };
    let mut out = Vec::with_capacity(sizes.len());
    let mut dts = delay;
    let mut sample = 0usize;
    for (chunk, &offset) in offsets.iter().enumerate() {
        let chunk_number = chunk as u32 + 1;
        let per_chunk = stbl
            .stsc
            .entries
            .iter()
            .rev()
            .find(|e| e.first_chunk <= chunk_number)
            .map_or(0, |e| e.samples_per_chunk);
        let mut at = offset;
        for _ in 0..per_chunk {
            let (Some(&size), Some(&duration)) = (sizes.get(sample), durations.get(sample)) else {
                return Err(Fmp4Error::Unsupported("stsc names more samples than stsz"));
            };
            out.push(IndexedSample {
                offset: at,
                size,
                dts,
                duration,
                sync: sync(sample),
            });
            at += u64::from(size);
            dts += u64::from(duration);
            sample += 1;
        }
    }
    if out.len() != sizes.len() {
        return Err(Fmp4Error::Unsupported("stsc names fewer samples than stsz"));
    }
    Ok(out)
}

/// A fragmented init segment with the sample entries (and edit lists) of a progressive file.
pub fn fragmented_init(moov: &Moov) -> Result<Vec<u8>, Fmp4Error> {
    let mut out = Vec::new();
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    }
    .encode(&mut out)?;
    let trak: Vec<Trak> = moov
        .trak
        .iter()
        .map(|t| {
            let mut t = t.clone();
            let stsd = std::mem::take(&mut t.mdia.minf.stbl.stsd);
            t.mdia.minf.stbl = Stbl {
                stsd,
                ..Default::default()
            };
            t.tkhd.duration = 0;
            t.mdia.mdhd.duration = 0;
            t
        })
        .collect();
    let mut mvhd = moov.mvhd.clone();
    mvhd.duration = 0;
    Moov {
        mvhd,
        mvex: Some(Mvex {
            mehd: None,
            trex: trak
                .iter()
                .map(|t| Trex {
                    track_id: t.tkhd.track_id,
                    default_sample_description_index: 1,
                    ..Default::default()
                })
                .collect(),
        }),
        trak,
        ..Default::default()
    }
    .encode(&mut out)?;
    Ok(out)
}

/// One VOD segment: for each track, the range of its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct VodSegment {
    /// Seconds.
    pub duration: f64,
    /// Per track (same order as the index): `[first, end)` sample indices.
    pub ranges: Vec<(usize, usize)>,
}

/// Cuts the recording at video sync samples at least `target` seconds apart (by time when there
/// is no video); every track's samples go to the segment their decode time falls in.
pub fn vod_segments(tracks: &[TrackIndex], target: f64) -> Vec<VodSegment> {
    let leader = tracks.iter().find(|t| t.video).or_else(|| tracks.first());
    let Some(leader) = leader else {
        return Vec::new();
    };
    let secs = |t: &TrackIndex, i: usize| t.samples[i].dts as f64 / f64::from(t.timescale);
    let mut cuts = vec![0.0];
    let mut last = leader.samples.first().map_or(0.0, |_| secs(leader, 0));
    for (i, s) in leader.samples.iter().enumerate() {
        let t = secs(leader, i);
        if i > 0 && (s.sync || !leader.video) && t - last >= target {
            cuts.push(t);
            last = t;
        }
    }
    let end = tracks
        .iter()
        .filter_map(|t| {
            t.samples
                .last()
                .map(|s| (s.dts + u64::from(s.duration)) as f64 / f64::from(t.timescale))
        })
        .fold(0.0, f64::max);
    let mut segments = Vec::new();
    for (k, &start) in cuts.iter().enumerate() {
        let stop = cuts.get(k + 1).copied().unwrap_or(f64::INFINITY);
        let ranges = tracks
            .iter()
            .map(|t| {
                let first = t
                    .samples
                    .partition_point(|s| (s.dts as f64 / f64::from(t.timescale)) < start && k > 0);
                let last = t
                    .samples
                    .partition_point(|s| (s.dts as f64 / f64::from(t.timescale)) < stop);
                (first, last.max(first))
            })
            .collect();
        let duration = stop.min(end) - if k == 0 { 0.0 } else { start };
        segments.push(VodSegment { duration, ranges });
    }
    segments
}

/// One segment as a fragment; `read` gives the bytes of a sample.
pub fn vod_fragment(
    tracks: &[TrackIndex],
    segment: &VodSegment,
    sequence: u32,
    mut read: impl FnMut(&IndexedSample) -> Result<bytes::Bytes, Fmp4Error>,
) -> Result<Vec<u8>, Fmp4Error> {
    let mut runs = Vec::new();
    for (t, &(first, end)) in tracks.iter().zip(&segment.ranges) {
        if first >= end {
            continue;
        }
        let samples = t.samples[first..end]
            .iter()
            .map(|s| {
                Ok(Sample {
                    duration: s.duration,
                    data: read(s)?,
                    sync: s.sync,
                })
            })
            .collect::<Result<Vec<_>, Fmp4Error>>()?;
        runs.push(TrackRun {
            track_id: t.track_id,
            base_decode_time: t.samples[first].dts,
            samples,
        });
    }
    fragment(sequence, &runs)
}

/// The VOD media playlist of `segments` (`EXT-X-PLAYLIST-TYPE:VOD`, `EXT-X-ENDLIST`), with the
/// init at `init.mp4` and segment `i` at `i.m4s` beside it.
pub fn vod_playlist(segments: &[VodSegment]) -> String {
    let target = segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    let _ = writeln!(
        out,
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:{target}"
    );
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
    for (i, s) in segments.iter().enumerate() {
        let _ = writeln!(out, "#EXTINF:{:.5},\n{i}.m4s", s.duration);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

#[cfg(test)]
#[path = "vod_tests.rs"]
mod tests;
