//! The fMP4 init segment (`ftyp` + `moov` with `mvex`/`trex`) for the HLS renditions and the
//! recordings (media path: SPS/PPS from `core::h264` -> here -> `EXT-X-MAP` / recording
//! header): `avc1`+`avcC` built from the SPS and PPS (ISO/IEC 14496-15 §5.3.3), or `avc3`
//! (§5.4.2: parameter sets also in-band, so one track carries resolution changes) for the
//! recordings, `Opus`+`dOps` version 0 with pre-skip 312 (Opus in ISOBMFF §4.3). Pure.

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avc3, Avcc, AvccExt, Codec, Dinf, Dops, Dref, DrefEntry, Encode, Ftyp, Hdlr, Mdhd,
    Mdia, Minf, Moov, Mvex, Mvhd, Opus, Smhd, Stbl, Stsd, Tkhd, Trak, Trex, Url, Visual, Vmhd,
};

use super::{AUDIO_TIMESCALE, AUDIO_TRACK_ID, Fmp4Error, VIDEO_TIMESCALE, VIDEO_TRACK_ID};
use crate::core::h264::{Sps, parse_sps};
use crate::core::opus::PRE_SKIP;

/// Profiles whose `avcC` carries chroma format and bit depths (ISO/IEC 14496-15 §5.3.3.1.2).
const AVCC_EXT_PROFILES: [u8; 4] = [100, 110, 122, 144];

/// One track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackConfig {
    /// H.264 from its parameter sets (NAL headers included).
    Video {
        /// Sequence parameter set.
        sps: Bytes,
        /// Picture parameter set.
        pps: Bytes,
    },
    /// H.264 whose samples carry their own SPS/PPS before every IDR (`avc3`, ISO/IEC
    /// 14496-15 §5.4.2): the parameter sets may change mid-track, e.g. when the publisher
    /// raises its resolution. `sps`/`pps` are the first ones (the `avcC`, the track size).
    VideoInBand {
        /// First sequence parameter set.
        sps: Bytes,
        /// First picture parameter set.
        pps: Bytes,
    },
    /// Opus at 48 kHz.
    Audio {
        /// Output channels (1 or 2, channel mapping family 0).
        channels: u8,
    },
}

/// Width and height of the picture an SPS describes.
pub fn video_dimensions(sps: &[u8]) -> Result<(u32, u32), Fmp4Error> {
    let parsed = parse_sps(sps)?;
    Ok((parsed.width, parsed.height))
}

/// `ftyp` + `moov` for `tracks` (ISO/IEC 14496-12 §8.8.1: `mvex` with one `trex` per track
/// makes the file fragmented). Video is track 1, audio track 2.
pub fn init_segment(tracks: &[TrackConfig]) -> Result<Vec<u8>, Fmp4Error> {
    if tracks.is_empty() {
        return Err(Fmp4Error::Empty);
    }
    let mut out = Vec::with_capacity(1024);
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    }
    .encode(&mut out)?;
    let mut trak = Vec::new();
    let mut trex = Vec::new();
    for track in tracks {
        let (t, id) = match track {
            TrackConfig::Video { sps, pps } => (video_trak(sps, pps, false)?, VIDEO_TRACK_ID),
            TrackConfig::VideoInBand { sps, pps } => (video_trak(sps, pps, true)?, VIDEO_TRACK_ID),
            TrackConfig::Audio { channels } => (audio_trak(*channels), AUDIO_TRACK_ID),
        };
        trak.push(t);
        trex.push(Trex {
            track_id: id,
            default_sample_description_index: 1,
            ..Default::default()
        });
    }
    Moov {
        mvhd: Mvhd {
            timescale: 1000,
            rate: 1u16.into(),
            volume: 1u8.into(),
            next_track_id: AUDIO_TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Default::default()
    }
    .encode(&mut out)?;
    Ok(out)
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![DrefEntry::Url(Url::default())],
        },
    }
}

fn video_trak(sps: &[u8], pps: &[u8], in_band: bool) -> Result<Trak, Fmp4Error> {
    let parsed: Sps = parse_sps(sps)?;
    let mut avcc = Avcc::new(sps, pps)?;
    if AVCC_EXT_PROFILES.contains(&parsed.profile_idc) {
        avcc.ext = Some(AvccExt {
            chroma_format: parsed.chroma_format_idc,
            bit_depth_luma: parsed.bit_depth_luma,
            bit_depth_chroma: parsed.bit_depth_chroma,
            sequence_parameter_sets_ext: Vec::new(),
        });
    }
    let width = u16::try_from(parsed.width).map_err(|_| Fmp4Error::Unsupported("width"))?;
    let height = u16::try_from(parsed.height).map_err(|_| Fmp4Error::Unsupported("height"))?;
    let visual = Visual {
        data_reference_index: 1,
        width,
        height,
        ..Default::default()
    };
    let codec = if in_band {
        Codec::Avc3(Avc3 {
            visual,
            avcc,
            ..Default::default()
        })
    } else {
        Codec::Avc1(Avc1 {
            visual,
            avcc,
            btrt: None,
            colr: None,
            pasp: None,
            taic: None,
            fiel: None,
            spatial: None,
        })
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "onair video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn audio_trak(channels: u8) -> Trak {
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            alternate_group: 1,
            volume: 1u8.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: AUDIO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "onair audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![Codec::Opus(Opus {
                            audio: Audio {
                                data_reference_index: 1,
                                channel_count: u16::from(channels),
                                sample_size: 16,
                                sample_rate: 48_000u16.into(),
                            },
                            dops: Dops {
                                output_channel_count: channels,
                                pre_skip: PRE_SKIP,
                                input_sample_rate: AUDIO_TIMESCALE,
                                output_gain: 0,
                                channel_mapping: None,
                            },
                            btrt: None,
                        })],
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Moov};

    /// x264's constrained-baseline SPS and PPS for 320x240.
    pub(crate) const SPS_320X240: [u8; 24] = [
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    pub(crate) const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

    #[test]
    fn init_has_ftyp_iso6_trex_avcc_and_dops() {
        let bytes = init_segment(&[
            TrackConfig::Video {
                sps: Bytes::from_static(&SPS_320X240),
                pps: Bytes::from_static(&PPS),
            },
            TrackConfig::Audio { channels: 2 },
        ])
        .unwrap();
        let mut buf = &bytes[..];
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty());
        let trex = &moov.mvex.as_ref().unwrap().trex;
        assert_eq!(trex.iter().map(|t| t.track_id).collect::<Vec<_>>(), [1, 2]);
        let Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("avc1 expected");
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
        assert_eq!(
            avc1.avcc.sequence_parameter_sets,
            vec![SPS_320X240.to_vec()]
        );
        assert_eq!(avc1.avcc.avc_profile_indication, 0x42);
        let Codec::Opus(opus) = &moov.trak[1].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("Opus expected");
        };
        assert_eq!(opus.dops.pre_skip, 312);
        assert_eq!(opus.dops.output_channel_count, 2);
        assert_eq!(moov.trak[1].mdia.mdhd.timescale, 48_000);
        // dOps version 0 on the wire.
        let at = bytes.windows(4).position(|w| w == b"dOps").unwrap();
        assert_eq!(bytes[at + 4], 0);
    }

    #[test]
    fn in_band_video_is_avc3_with_the_first_parameter_sets() {
        let bytes = init_segment(&[TrackConfig::VideoInBand {
            sps: Bytes::from_static(&SPS_320X240),
            pps: Bytes::from_static(&PPS),
        }])
        .unwrap();
        let mut buf = &bytes[..];
        Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        let Codec::Avc3(avc3) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("avc3 expected");
        };
        assert_eq!((avc3.visual.width, avc3.visual.height), (320, 240));
        assert_eq!(avc3.avcc.picture_parameter_sets, vec![PPS.to_vec()]);
        assert!(!bytes.windows(4).any(|w| w == b"avc1"));
    }

    #[test]
    fn bad_parameter_sets_are_an_error() {
        let err = init_segment(&[TrackConfig::Video {
            sps: Bytes::from_static(&[0x67]),
            pps: Bytes::from_static(&PPS),
        }]);
        assert!(err.is_err());
        assert_eq!(init_segment(&[]), Err(Fmp4Error::Empty));
        assert_eq!(video_dimensions(&SPS_320X240), Ok((320, 240)));
    }
}
