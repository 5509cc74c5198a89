//! `moof` + `mdat` fragments (ISO/IEC 14496-12 §8.8.4-§8.8.8) for HLS parts and recording
//! fragments (media path: samples from the segmenter -> here -> `egress::hls` store / disk):
//! `tfhd` with default-base-is-moof, `tfdt` version 1, `trun` with per-sample duration, size
//! and sync flags, and one `mdat` holding each track's samples contiguously. Pure.

use bytes::Bytes;
use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry, TrunSamples};

use super::{Fmp4Error, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};

/// One coded sample (an H.264 access unit in AVCC form, or one Opus packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode duration in the track's timescale.
    pub duration: u32,
    /// The sample bytes.
    pub data: Bytes,
    /// A decoder can start here (an IDR; every Opus packet).
    pub sync: bool,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRun {
    /// `track_ID` of the init segment.
    pub track_id: u32,
    /// Decode time of the first sample in the track's timescale (`tfdt`).
    pub base_decode_time: u64,
    /// The samples, in decoding order.
    pub samples: Vec<Sample>,
}

impl TrackRun {
    /// Total decode duration of the run.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }

    fn data_len(&self) -> usize {
        self.samples.iter().map(|s| s.data.len()).sum()
    }
}

/// Encodes one fragment: `moof` (sequence number `sequence`, one `traf` per non-empty run) and
/// its `mdat`. Runs without samples are left out; all empty is [`Fmp4Error::Empty`].
pub fn fragment(sequence: u32, runs: &[TrackRun]) -> Result<Vec<u8>, Fmp4Error> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    if runs.is_empty() {
        return Err(Fmp4Error::Empty);
    }
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: runs
            .iter()
            .map(|run| Traf {
                tfhd: Tfhd {
                    track_id: run.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: run.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: TrunSamples::Explicit(
                        run.samples
                            .iter()
                            .map(|s| TrunEntry {
                                duration: Some(s.duration),
                                size: Some(s.data.len() as u32),
                                flags: Some(if s.sync {
                                    SYNC_SAMPLE_FLAGS
                                } else {
                                    NON_SYNC_SAMPLE_FLAGS
                                }),
                                cts: None,
                            })
                            .collect(),
                    ),
                }],
                ..Default::default()
            })
            .collect(),
    };
    // The offsets do not change the size of the moof: measure, then fill them in.
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    let data_len: usize = runs.iter().map(|r| r.data_len()).sum();
    let mdat_header = 8;
    let mut offset = probe.len() + mdat_header;
    for (traf, run) in moof.traf.iter_mut().zip(&runs) {
        traf.trun[0].data_offset =
            Some(i32::try_from(offset).map_err(|_| Fmp4Error::Unsupported("fragment > 2 GiB"))?);
        offset += run.data_len();
    }
    let mut out = Vec::with_capacity(probe.len() + mdat_header + data_len);
    moof.encode(&mut out)?;
    debug_assert_eq!(out.len(), probe.len());
    let mdat_size = u32::try_from(mdat_header + data_len)
        .map_err(|_| Fmp4Error::Unsupported("fragment > 4 GiB"))?;
    out.extend_from_slice(&mdat_size.to_be_bytes());
    out.extend_from_slice(b"mdat");
    for run in &runs {
        for sample in &run.samples {
            out.extend_from_slice(&sample.data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fmp4::{box_header, is_sync};
    use mp4_atom::Decode;

    fn run(track_id: u32, base: u64, samples: &[(u32, &'static [u8], bool)]) -> TrackRun {
        TrackRun {
            track_id,
            base_decode_time: base,
            samples: samples
                .iter()
                .map(|&(duration, data, sync)| Sample {
                    duration,
                    data: Bytes::from_static(data),
                    sync,
                })
                .collect(),
        }
    }

    #[test]
    fn moof_points_at_each_runs_bytes_in_mdat() {
        let bytes = fragment(
            7,
            &[
                run(1, 90_000, &[(3000, b"key", true), (3000, b"p1p1", false)]),
                run(2, (1 << 33) + 5, &[(960, b"op", true)]),
                run(3, 0, &[]),
            ],
        )
        .unwrap();
        let moof_len = box_header(&bytes).unwrap().size.unwrap() as usize;
        let moof = Moof::decode(&mut &bytes[..moof_len]).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 2, "the empty run is left out");
        let video = &moof.traf[0];
        assert!(video.tfhd.default_base_is_moof);
        assert_eq!(video.tfdt.as_ref().unwrap().base_media_decode_time, 90_000);
        // tfdt version 1 on the wire (64-bit decode time).
        let at = bytes.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(bytes[at + 4], 1);
        let entries: Vec<_> = video.trun[0].samples.iter().collect();
        assert!(is_sync(entries[0].flags.unwrap()));
        assert!(!is_sync(entries[1].flags.unwrap()));
        let offset = video.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[offset..offset + 7], b"keyp1p1");
        let audio = &moof.traf[1];
        assert_eq!(
            audio.tfdt.as_ref().unwrap().base_media_decode_time,
            (1 << 33) + 5
        );
        let offset = audio.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[offset..], b"op");
        assert_eq!(&bytes[moof_len + 4..moof_len + 8], b"mdat");
    }

    #[test]
    fn nothing_to_write_is_an_error() {
        assert_eq!(fragment(1, &[]), Err(Fmp4Error::Empty));
        assert_eq!(fragment(1, &[run(1, 0, &[])]), Err(Fmp4Error::Empty));
    }
}
