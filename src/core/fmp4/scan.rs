//! Reading fragmented MP4 back (recording finalisation and crash recovery: a `.live.mp4` file
//! on disk -> sample index -> `progressive`): box headers, the init `moov`, and each `moof`'s
//! runs with absolute sample offsets (ISO/IEC 14496-12 §8.8). Pure: the shell reads the bytes.

use mp4_atom::{Codec, Decode, Moof, Moov};

use super::Fmp4Error;

/// The header of one box (ISO/IEC 14496-12 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// Four-character type.
    pub kind: [u8; 4],
    /// 8, or 16 with a 64-bit `largesize`.
    pub header_len: usize,
    /// Whole box size, header included; `None` when the box runs to the end of the file.
    pub size: Option<u64>,
}

/// Reads a box header from the start of `buf`; `None` when `buf` is shorter than the header
/// or the size is smaller than the header itself.
pub fn box_header(buf: &[u8]) -> Option<BoxHeader> {
    let size = u32::from_be_bytes(buf.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
    let (header_len, size) = match size {
        0 => (8, None),
        1 => {
            let large = u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?);
            (16, Some(large))
        }
        n => (8, Some(u64::from(n))),
    };
    if size.is_some_and(|s| s < header_len as u64) {
        return None;
    }
    Some(BoxHeader {
        kind,
        header_len,
        size,
    })
}

/// What a fragment reader needs from one `trak` and its `trex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// `track_ID`.
    pub track_id: u32,
    /// Media timescale (`mdhd`).
    pub timescale: u32,
    /// `vide` or `soun`.
    pub handler: [u8; 4],
    /// Opus pre-skip from `dOps`, for the edit list of a progressive file.
    pub pre_skip: Option<u16>,
    /// `trex` defaults: duration, size, flags.
    pub defaults: (u32, u32, u32),
}

/// A decoded init segment.
#[derive(Debug, Clone, PartialEq)]
pub struct InitInfo {
    /// The `moov` as written.
    pub moov: Moov,
    /// Its tracks.
    pub tracks: Vec<TrackInfo>,
}

impl InitInfo {
    /// The track with `track_id`.
    pub fn track(&self, track_id: u32) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

/// Decodes a whole `moov` box.
pub fn parse_init(moov_box: &[u8]) -> Result<InitInfo, Fmp4Error> {
    let moov = Moov::decode(&mut &moov_box[..])?;
    let tracks = moov
        .trak
        .iter()
        .map(|trak| {
            let id = trak.tkhd.track_id;
            let trex = moov
                .mvex
                .as_ref()
                .and_then(|m| m.trex.iter().find(|t| t.track_id == id));
            let pre_skip = trak
                .mdia
                .minf
                .stbl
                .stsd
                .codecs
                .iter()
                .find_map(|c| match c {
                    Codec::Opus(opus) => Some(opus.dops.pre_skip),
                    _ => None,
                });
            TrackInfo {
                track_id: id,
                timescale: trak.mdia.mdhd.timescale,
                handler: trak.mdia.hdlr.handler.into(),
                pre_skip,
                defaults: trex.map_or((0, 0, 0), |t| {
                    (
                        t.default_sample_duration,
                        t.default_sample_size,
                        t.default_sample_flags,
                    )
                }),
            }
        })
        .collect();
    Ok(InitInfo { moov, tracks })
}

/// One sample of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSample {
    /// Bytes.
    pub size: u32,
    /// Decode duration in the track's timescale.
    pub duration: u32,
    /// `sample_flags`.
    pub flags: u32,
}

/// One `trun`: samples stored back to back from `data_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// `track_ID`.
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`).
    pub base_decode_time: u64,
    /// Absolute offset of the first sample's bytes in the file.
    pub data_offset: u64,
    /// The samples.
    pub samples: Vec<RunSample>,
}

impl Run {
    /// Bytes of all samples.
    pub fn data_len(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }

    /// Decode duration of all samples.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Decodes a whole `moof` box found at absolute offset `moof_offset`: its runs, with sample
/// fields resolved against `tfhd` and `trex` defaults.
pub fn parse_moof(
    moof_box: &[u8],
    moof_offset: u64,
    init: &InitInfo,
) -> Result<Vec<Run>, Fmp4Error> {
    let moof = Moof::decode(&mut &moof_box[..])?;
    let mut runs = Vec::new();
    for traf in &moof.traf {
        let tfhd = &traf.tfhd;
        let track = init.track(tfhd.track_id).ok_or(Fmp4Error::Unsupported(
            "fragment for a track not in the init",
        ))?;
        let base = tfhd.base_data_offset.unwrap_or(moof_offset);
        let mut decode_time = traf
            .tfdt
            .as_ref()
            .ok_or(Fmp4Error::Unsupported("traf without tfdt"))?
            .base_media_decode_time;
        let duration = tfhd.default_sample_duration.unwrap_or(track.defaults.0);
        let size = tfhd.default_sample_size.unwrap_or(track.defaults.1);
        let flags = tfhd.default_sample_flags.unwrap_or(track.defaults.2);
        for trun in &traf.trun {
            let offset = i64::from(trun.data_offset.unwrap_or(0));
            let data_offset = base
                .checked_add_signed(offset)
                .ok_or(Fmp4Error::Unsupported("negative data offset"))?;
            let samples: Vec<RunSample> = trun
                .samples
                .iter()
                .map(|e| RunSample {
                    size: e.size.unwrap_or(size),
                    duration: e.duration.unwrap_or(duration),
                    flags: e.flags.unwrap_or(flags),
                })
                .collect();
            let run = Run {
                track_id: tfhd.track_id,
                base_decode_time: decode_time,
                data_offset,
                samples,
            };
            decode_time += run.duration();
            runs.push(run);
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_headers() {
        assert_eq!(
            box_header(b"\0\0\0\x10moofxxxxxxxx"),
            Some(BoxHeader {
                kind: *b"moof",
                header_len: 8,
                size: Some(16)
            })
        );
        let mut large = vec![0, 0, 0, 1];
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(5u64 << 32).to_be_bytes());
        assert_eq!(box_header(&large).unwrap().size, Some(5 << 32));
        assert_eq!(box_header(&large[..12]), None, "largesize cut");
        assert_eq!(box_header(b"\0\0\0\0mdat").unwrap().size, None);
        assert_eq!(box_header(b"\0\0\0\x04mdat"), None, "smaller than a header");
        assert_eq!(box_header(b"\0\0"), None);
    }
}
