//! Sequence parameter set parsing (ITU-T H.264 §7.3.2.1.1) for stream info and the HLS tap's
//! `avcC` (media path: `ingest::Publisher` -> `egress::hls`). Pure; called per SPS, not per
//! packet.

use super::bit_reader::{BitReader, remove_emulation_prevention};
use super::error::H264Error;
use super::nal::{SPS, nal_type};

/// Profiles whose SPS carries chroma format, bit depths and scaling lists (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// What onair needs from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The byte holding `constraint_set0_flag` .. `constraint_set5_flag` and two reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` (level x 10, e.g. 31 for 3.1).
    pub level_idc: u8,
    /// Displayed width in luma samples, after frame cropping.
    pub width: u32,
    /// Displayed height in luma samples, after frame cropping (whole frames, not fields).
    pub height: u32,
    /// `seq_parameter_set_id`.
    pub id: u8,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 when absent).
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8 + 8`.
    pub bit_depth_luma: u8,
    /// `bit_depth_chroma_minus8 + 8`.
    pub bit_depth_chroma: u8,
    /// `frame_mbs_only_flag`: false for streams that may contain field (interlaced) pictures.
    pub frame_mbs_only: bool,
}

impl Sps {
    /// The RFC 6381 §3.3 codecs parameter, e.g. `avc1.42c01e` for HLS `CODECS`.
    pub fn codecs_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Parse an SPS NAL unit, header byte included (NAL type 7).
pub fn parse_sps(nal: &[u8]) -> Result<Sps, H264Error> {
    let (&header, body) = nal.split_first().ok_or(H264Error::Empty)?;
    if nal_type(header) != SPS {
        return Err(H264Error::WrongNalType {
            expected: SPS,
            found: nal_type(header),
        });
    }
    let rbsp = remove_emulation_prevention(body);
    let mut r = BitReader::new(&rbsp);

    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let id = ranged(r.ue()?, 31, "seq_parameter_set_id")?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = ranged(r.ue()?, 3, "chroma_format_idc")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        bit_depth_luma = 8 + ranged(r.ue()?, 6, "bit_depth_luma_minus8")?;
        bit_depth_chroma = 8 + ranged(r.ue()?, 6, "bit_depth_chroma_minus8")?;
        let _qpprime_y_zero_transform_bypass = r.bit()?;
        if r.bit()? {
            // seq_scaling_matrix_present_flag: 8 lists, or 12 with 4:4:4.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    ranged(r.ue()?, 12, "log2_max_frame_num_minus4")?;
    match r.ue()? {
        0 => {
            ranged(r.ue()?, 12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.bit()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = ranged(r.ue()?, 255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.se()?;
            }
        }
        2 => {}
        _ => {
            return Err(H264Error::OutOfRange {
                field: "pic_order_cnt_type",
            });
        }
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_value_allowed = r.bit()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.bit()?;
    }
    let _direct_8x8_inference = r.bit()?;
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.bit()? {
        for c in &mut crop {
            *c = u64::from(r.ue()?);
        }
    }

    // §7.4.2.1.1 (frame_crop_*_offset): crop units depend on ChromaArrayType and field coding.
    let fields = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (false, 0) => (1, fields),
        (false, 1) => (2, 2 * fields),
        (false, 2) => (2, fields),
        (false, _) => (1, fields),
    };
    let full_width = width_mbs * 16;
    let full_height = fields * height_map_units * 16;
    let width = cropped(
        full_width,
        crop_unit_x * (crop[0] + crop[1]),
        "frame_crop_left/right",
    )?;
    let height = cropped(
        full_height,
        crop_unit_y * (crop[2] + crop[3]),
        "frame_crop_top/bottom",
    )?;

    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
        id,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        frame_mbs_only,
    })
}

/// Read past one `scaling_list()` (§7.3.2.1.1.1) of `size` coefficients.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::OutOfRange {
                    field: "delta_scale",
                });
            }
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

fn ranged(value: u32, max: u32, field: &'static str) -> Result<u8, H264Error> {
    if value > max {
        return Err(H264Error::OutOfRange { field });
    }
    u8::try_from(value).map_err(|_| H264Error::OutOfRange { field })
}

fn cropped(full: u64, crop: u64, field: &'static str) -> Result<u32, H264Error> {
    full.checked_sub(crop)
        .filter(|&size| size > 0)
        .and_then(|size| u32::try_from(size).ok())
        .ok_or(H264Error::OutOfRange { field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::h264::sps_writer::{Fields, build};

    // Real SPS NAL units written by libx264 (`ffmpeg -f lavfi -i testsrc=size=WxH -c:v libx264
    // -profile:v P -pix_fmt F -f h264`); expected values are the encode settings, and the
    // emulation-prevention bytes (00 00 03) in their VUI are kept as on the wire.
    const BASELINE_640X480_L30: [u8; 24] = [
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x3d, 0xb0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
    ];
    const HIGH_1280X720_L31: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    const HIGH_1920X1080_L40: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
    ];
    const HIGH_INTERLACED_720X576: [u8; 24] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xd8, 0x08, 0x80, 0x00, 0x00, 0x03,
        0x00, 0x80, 0x00, 0x00, 0x1e, 0x0f, 0x8b, 0x16, 0xcb,
    ];
    const HIGH422_854X480: [u8; 26] = [
        0x67, 0x7a, 0x00, 0x1f, 0xbc, 0xd9, 0x40, 0xd8, 0x3d, 0xe6, 0xf0, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x31, 0x96,
    ];
    const HIGH444_854X480: [u8; 27] = [
        0x67, 0xf4, 0x00, 0x1f, 0x91, 0x9b, 0x28, 0x1b, 0x07, 0xbc, 0x5f, 0x80, 0x88, 0x00, 0x00,
        0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe0, 0x78, 0xc1, 0x8c, 0xb0,
    ];

    fn dims(nal: &[u8]) -> (u32, u32) {
        let sps = parse_sps(nal).expect("valid SPS");
        (sps.width, sps.height)
    }

    #[test]
    fn constrained_baseline_640x480() {
        let sps = parse_sps(&BASELINE_640X480_L30).expect("valid");
        assert_eq!((sps.profile_idc, sps.level_idc), (66, 30));
        // Constrained baseline: constraint_set0 and constraint_set1 (RFC 6184 §8.1).
        assert_eq!(sps.constraint_flags & 0xc0, 0xc0);
        assert_eq!((sps.width, sps.height), (640, 480));
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
        assert!(sps.frame_mbs_only);
        assert_eq!(sps.codecs_string(), "avc1.42c01e");
    }

    #[test]
    fn high_profiles_and_cropping() {
        let sps = parse_sps(&HIGH_1280X720_L31).expect("valid");
        assert_eq!((sps.profile_idc, sps.level_idc), (100, 31));
        assert_eq!((sps.width, sps.height), (1280, 720));
        // 1080 is not a multiple of 16: coded as 1088 and cropped.
        assert_eq!(dims(&HIGH_1920X1080_L40), (1920, 1080));
        let intl = parse_sps(&HIGH_INTERLACED_720X576).expect("valid");
        assert!(!intl.frame_mbs_only);
        assert_eq!((intl.width, intl.height), (720, 576));
    }

    #[test]
    fn high_422_and_444_crop_units() {
        let s422 = parse_sps(&HIGH422_854X480).expect("valid");
        assert_eq!((s422.profile_idc, s422.chroma_format_idc), (122, 2));
        assert_eq!((s422.width, s422.height), (854, 480));
        let s444 = parse_sps(&HIGH444_854X480).expect("valid");
        assert_eq!((s444.profile_idc, s444.chroma_format_idc), (244, 3));
        assert_eq!((s444.width, s444.height), (854, 480));
    }

    #[test]
    fn every_truncation_errors_or_agrees() {
        for full in [
            &BASELINE_640X480_L30[..],
            &HIGH_1920X1080_L40,
            &HIGH444_854X480,
        ] {
            let whole = parse_sps(full).expect("valid");
            for len in 0..full.len() {
                match parse_sps(&full[..len]) {
                    Ok(sps) => assert_eq!(sps, whole, "a prefix past the crop fields"),
                    Err(e) if len == 0 => assert_eq!(e, H264Error::Empty),
                    Err(e) => assert_eq!(e, H264Error::Truncated),
                }
            }
            // The VUI is not read, so losing its tail does not matter.
            assert_eq!(parse_sps(&full[..full.len() - 1]), Ok(whole));
        }
    }

    #[test]
    fn rejects_other_nal_types_and_empty() {
        assert_eq!(parse_sps(&[]), Err(H264Error::Empty));
        assert_eq!(
            parse_sps(&[0x68, 0xce, 0x3c, 0x80]),
            Err(H264Error::WrongNalType {
                expected: 7,
                found: 8
            })
        );
    }

    #[test]
    fn scaling_lists_are_skipped_exactly() {
        let f = Fields {
            scaling: true,
            ..Fields::high(80, 45)
        };
        assert_eq!(dims(&build(&f)), (1280, 720));
        let f444 = Fields {
            chroma: 3,
            scaling: true,
            ..Fields::high(80, 45)
        };
        let sps = parse_sps(&build(&f444)).expect("4:4:4 with 12 lists");
        assert_eq!(
            (sps.width, sps.height, sps.chroma_format_idc),
            (1280, 720, 3)
        );
    }

    #[test]
    fn poc_type_1_monochrome_and_separate_planes() {
        let f = Fields {
            poc_type: 1,
            ..Fields::high(40, 30)
        };
        assert_eq!(dims(&build(&f)), (640, 480));
        // Monochrome: crop unit 1 x (2 - frame_mbs_only) (§7.4.2.1.1).
        let mono = Fields {
            chroma: 0,
            crop: [1, 2, 3, 4],
            ..Fields::high(40, 30)
        };
        assert_eq!(dims(&build(&mono)), (640 - 3, 480 - 7));
        let mono_fields = Fields {
            frame_mbs_only: false,
            ..mono
        };
        assert_eq!(dims(&build(&mono_fields)), (640 - 3, 960 - 14));
        let separate = Fields {
            chroma: 3,
            separate: true,
            crop: [1, 0, 0, 1],
            ..Fields::high(40, 30)
        };
        assert_eq!(dims(&build(&separate)), (639, 479));
        // 4:2:0 field coding: vertical crop unit 4.
        let fields420 = Fields {
            frame_mbs_only: false,
            crop: [0, 0, 0, 2],
            ..Fields::high(45, 18)
        };
        assert_eq!(dims(&build(&fields420)), (720, 576 - 8));
    }

    #[test]
    fn escaped_large_picture() {
        // ue(65535) twice: a run of 32 zero bits forces an emulation-prevention byte.
        let nal = build(&Fields::high(65_536, 65_536));
        assert!(
            nal.windows(3).any(|w| w == [0, 0, 3]),
            "test needs an escape in the fields"
        );
        assert_eq!(dims(&nal), (1 << 20, 1 << 20));
    }

    #[test]
    fn out_of_range_fields() {
        let bad = |f: Fields, field: &'static str| {
            assert_eq!(parse_sps(&build(&f)), Err(H264Error::OutOfRange { field }));
        };
        bad(
            Fields {
                id: 32,
                ..Fields::high(40, 30)
            },
            "seq_parameter_set_id",
        );
        bad(
            Fields {
                chroma: 4,
                ..Fields::high(40, 30)
            },
            "chroma_format_idc",
        );
        bad(
            Fields {
                poc_type: 3,
                ..Fields::high(40, 30)
            },
            "pic_order_cnt_type",
        );
        bad(
            Fields {
                crop: [160, 160, 0, 0],
                ..Fields::high(40, 30)
            },
            "frame_crop_left/right",
        );
        bad(
            Fields {
                crop: [0, 0, 0, 240],
                ..Fields::high(40, 30)
            },
            "frame_crop_top/bottom",
        );
    }
}
