//! Test-only SPS builder: writes ITU-T H.264 §7.3.2.1.1 syntax with Exp-Golomb codes and
//! emulation prevention, so SPS parsing tests can state their inputs as field values. Pure.

/// The SPS fields a test chooses; everything else is written with fixed values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// `profile_idc`.
    pub profile: u8,
    /// `level_idc`.
    pub level: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// `chroma_format_idc` (written for profiles 100 and 244 only).
    pub chroma: u32,
    /// `separate_colour_plane_flag` (written when `chroma` is 3).
    pub separate: bool,
    /// Write a scaling matrix with present, absent and early-ended lists.
    pub scaling: bool,
    /// `pic_order_cnt_type`.
    pub poc_type: u32,
    /// Width in macroblocks.
    pub width_mbs: u32,
    /// Height in map units (macroblocks, or macroblock pairs for fields).
    pub height_map_units: u32,
    /// `frame_mbs_only_flag`.
    pub frame_mbs_only: bool,
    /// left, right, top, bottom; all zero means no cropping.
    pub crop: [u32; 4],
}

impl Fields {
    /// High profile 4:2:0 progressive, `width_mbs` x `height_map_units` macroblocks.
    pub fn high(width_mbs: u32, height_map_units: u32) -> Self {
        Self {
            profile: 100,
            level: 31,
            id: 0,
            chroma: 1,
            separate: false,
            scaling: false,
            poc_type: 0,
            width_mbs,
            height_map_units,
            frame_mbs_only: true,
            crop: [0; 4],
        }
    }
}

/// Bit writer, most significant bit first.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
    used: u32,
}

impl Writer {
    fn u(&mut self, n: u32, value: u64) {
        for i in (0..n).rev() {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if (value >> i) & 1 == 1
                && let Some(last) = self.bytes.last_mut()
            {
                *last |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
        }
    }

    fn ue(&mut self, value: u32) {
        let x = u64::from(value) + 1;
        let len = 64 - x.leading_zeros();
        self.u(len - 1, 0);
        self.u(len, x);
    }

    fn se(&mut self, value: i32) {
        let k = if value > 0 { 2 * value - 1 } else { -2 * value };
        self.ue(k as u32);
    }
}

/// The SPS NAL unit (header 0x67) for `f`, escaped as on the wire.
pub(crate) fn build(f: &Fields) -> Vec<u8> {
    let mut w = Writer::default();
    w.u(8, u64::from(f.profile));
    w.u(8, 0);
    w.u(8, u64::from(f.level));
    w.ue(f.id);
    if f.profile == 100 || f.profile == 244 {
        w.ue(f.chroma);
        if f.chroma == 3 {
            w.u(1, u64::from(f.separate));
        }
        w.ue(0); // bit_depth_luma_minus8
        w.ue(0); // bit_depth_chroma_minus8
        w.u(1, 0);
        w.u(1, u64::from(f.scaling));
        if f.scaling {
            let lists = if f.chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                let size = if i < 6 { 16 } else { 64 };
                match i % 3 {
                    0 => {
                        w.u(1, 1);
                        w.se(-8); // next_scale becomes 0: the rest of the list is implied
                    }
                    1 => w.u(1, 0),
                    _ => {
                        w.u(1, 1);
                        for _ in 0..size {
                            w.se(3); // 8 + 3k mod 256 is not 0 for k <= 64: every delta is written
                        }
                    }
                }
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(f.poc_type);
    match f.poc_type {
        0 => w.ue(2),
        1 => {
            w.u(1, 0);
            w.se(-5);
            w.se(7);
            w.ue(3);
            for offset in [1, -2, 300] {
                w.se(offset);
            }
        }
        _ => {}
    }
    w.ue(2); // max_num_ref_frames
    w.u(1, 0);
    w.ue(f.width_mbs - 1);
    w.ue(f.height_map_units - 1);
    w.u(1, u64::from(f.frame_mbs_only));
    if !f.frame_mbs_only {
        w.u(1, 0);
    }
    w.u(1, 1); // direct_8x8_inference_flag
    let cropping = f.crop != [0; 4];
    w.u(1, u64::from(cropping));
    if cropping {
        for c in f.crop {
            w.ue(c);
        }
    }
    w.u(1, 0); // vui_parameters_present_flag
    w.u(1, 1); // rbsp_stop_one_bit, then zero padding
    let mut nal = vec![0x67];
    let mut zeros = 0;
    for byte in w.bytes {
        if zeros >= 2 && byte <= 3 {
            nal.push(3);
            zeros = 0;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        nal.push(byte);
    }
    nal
}
