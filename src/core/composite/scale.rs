//! Bilinear I420 scaling into a tile of the composite canvas (egress path: a participant's
//! latest decoded picture -> its rectangle in the output picture). Pure and allocation-free per
//! frame: the column tables are computed once per size pair and reused; a 1:1 tile is a row
//! copy.

use super::Rect;
use super::frame::{I420Frame, PlanesRef};

/// Fixed-point precision of the interpolation weights (8 bits: 0..=256).
const FRAC_BITS: u32 = 8;
const ONE: u32 = 1 << FRAC_BITS;

/// Source position of every destination column or row: index and weight of the next sample.
#[derive(Debug, Clone, Default)]
struct Axis {
    len: (usize, usize),
    taps: Vec<(u32, u32)>,
}

impl Axis {
    /// Recomputes the taps when the source or destination length changed.
    fn prepare(&mut self, src: usize, dst: usize) {
        if self.len == (src, dst) && self.taps.len() == dst {
            return;
        }
        self.len = (src, dst);
        self.taps.clear();
        let last = src.saturating_sub(1) as u64;
        for d in 0..dst as u64 {
            // Pixel centres aligned: s = (d + 0.5) * src / dst - 0.5, in 1/ONE units.
            let num = (2 * d + 1) * src as u64 * u64::from(ONE);
            let pos = (num / (2 * dst as u64)).saturating_sub(u64::from(ONE / 2));
            let index = (pos >> FRAC_BITS).min(last);
            let weight = if index >= last {
                0
            } else {
                (pos & u64::from(ONE - 1)) as u32
            };
            self.taps.push((index as u32, weight));
        }
    }
}

/// Scales pictures into rectangles of a canvas; keeps its tables between calls (one scaler per
/// tile keeps them stable).
#[derive(Debug, Clone, Default)]
pub struct Scaler {
    luma_x: Axis,
    luma_y: Axis,
    chroma_x: Axis,
    chroma_y: Axis,
}

impl Scaler {
    /// A scaler with empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Draws `src` scaled to fill `rect` of `dst` (clamped to the canvas, edges even).
    /// Inconsistent source planes leave the canvas untouched and return false.
    pub fn draw(&mut self, src: &PlanesRef<'_>, dst: &mut I420Frame, rect: Rect) -> bool {
        if !src.is_consistent() {
            return false;
        }
        let rect = rect.clamped(dst.width(), dst.height());
        if rect.w == 0 || rect.h == 0 {
            return true;
        }
        let stride = dst.width();
        let (y, u, v) = dst.planes_mut();
        self.luma_x.prepare(src.width, rect.w);
        self.luma_y.prepare(src.height, rect.h);
        let (cw, ch) = (src.width.div_ceil(2), src.height.div_ceil(2));
        self.chroma_x.prepare(cw, rect.w / 2);
        self.chroma_y.prepare(ch, rect.h / 2);
        let luma = Plane {
            data: src.y,
            stride: src.y_stride,
        };
        scale_plane(&luma, &self.luma_x, &self.luma_y, y, stride, rect.x, rect.y);
        let chroma_rect = (rect.x / 2, rect.y / 2);
        for (plane, out) in [(src.u, u), (src.v, v)] {
            let plane = Plane {
                data: plane,
                stride: src.uv_stride,
            };
            scale_plane(
                &plane,
                &self.chroma_x,
                &self.chroma_y,
                out,
                stride / 2,
                chroma_rect.0,
                chroma_rect.1,
            );
        }
        true
    }
}

struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
}

impl Plane<'_> {
    fn row(&self, index: u32) -> &[u8] {
        let start = index as usize * self.stride;
        &self.data[start.min(self.data.len())..]
    }
}

fn scale_plane(
    src: &Plane<'_>,
    xs: &Axis,
    ys: &Axis,
    dst: &mut [u8],
    dst_stride: usize,
    x0: usize,
    y0: usize,
) {
    let same_width = xs.len.0 == xs.len.1;
    for (dy, &(sy, wy)) in ys.taps.iter().enumerate() {
        let out = &mut dst[(y0 + dy) * dst_stride + x0..][..xs.taps.len()];
        let top = src.row(sy);
        if same_width && wy == 0 {
            out.copy_from_slice(&top[..out.len()]);
            continue;
        }
        let bottom = if wy == 0 { top } else { src.row(sy + 1) };
        for (o, &(sx, wx)) in out.iter_mut().zip(&xs.taps) {
            let sx = sx as usize;
            let a = u32::from(top[sx]);
            let c = u32::from(bottom[sx]);
            let (b, d) = if wx == 0 {
                (a, c)
            } else {
                (u32::from(top[sx + 1]), u32::from(bottom[sx + 1]))
            };
            let upper = a * (ONE - wx) + b * wx;
            let lower = c * (ONE - wx) + d * wx;
            let value =
                (upper * (ONE - wy) + lower * wy + (1 << (2 * FRAC_BITS - 1))) >> (2 * FRAC_BITS);
            *o = value as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::composite::frame::BLACK_Y;

    /// A picture whose left half is luma 60 and right half luma 200; chroma (90, 170).
    fn halves(width: usize, height: usize) -> I420Frame {
        let mut f = I420Frame::new(width, height);
        f.fill(60, 90, 170);
        f.fill_rect(Rect::new(width / 2, 0, width / 2, height), (200, 90, 170));
        f
    }

    #[test]
    fn one_to_one_is_an_exact_copy_at_the_offset() {
        let src = halves(16, 8);
        let mut canvas = I420Frame::new(64, 32);
        let mut scaler = Scaler::new();
        assert!(scaler.draw(&src.as_planes(), &mut canvas, Rect::new(10, 4, 16, 8)));
        for y in 0..8 {
            for x in 0..16 {
                assert_eq!(canvas.luma_at(10 + x, 4 + y), src.luma_at(x, y));
            }
        }
        assert_eq!(canvas.luma_at(9, 4), Some(BLACK_Y));
        assert_eq!(canvas.luma_at(26, 4), Some(BLACK_Y));
        assert_eq!(canvas.luma_at(10, 12), Some(BLACK_Y));
        assert_eq!(canvas.chroma_at(12, 6), Some((90, 170)));
    }

    #[test]
    fn upscaling_keeps_flat_regions_and_blends_only_at_the_edge() {
        let src = halves(64, 36);
        let mut canvas = I420Frame::new(1280, 720);
        let mut scaler = Scaler::new();
        scaler.draw(&src.as_planes(), &mut canvas, Rect::new(0, 0, 1280, 720));
        assert_eq!(canvas.luma_at(100, 360), Some(60));
        assert_eq!(canvas.luma_at(1180, 360), Some(200));
        assert_eq!(canvas.luma_at(0, 0), Some(60));
        assert_eq!(canvas.luma_at(1279, 719), Some(200));
        let mid = canvas.luma_at(640, 360).unwrap();
        assert!(mid > 60 && mid < 200, "the edge blends: {mid}");
        assert_eq!(canvas.chroma_at(1000, 500), Some((90, 170)));
        // Monotonic across the edge.
        let row: Vec<u8> = (600..680).map(|x| canvas.luma_at(x, 10).unwrap()).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn downscaling_lands_in_the_rectangle_only() {
        let src = halves(1280, 720);
        let mut canvas = I420Frame::new(1280, 720);
        let mut scaler = Scaler::new();
        let tile = Rect::new(640, 180, 640, 360);
        scaler.draw(&src.as_planes(), &mut canvas, tile);
        assert_eq!(canvas.luma_at(650, 200), Some(60));
        assert_eq!(canvas.luma_at(1270, 530), Some(200));
        assert_eq!(canvas.luma_at(639, 200), Some(BLACK_Y));
        assert_eq!(canvas.luma_at(650, 179), Some(BLACK_Y));
        assert_eq!(canvas.luma_at(650, 540), Some(BLACK_Y));
        // Tables are reused: a second draw gives the same picture.
        let before = canvas.clone();
        scaler.draw(&src.as_planes(), &mut canvas, tile);
        assert_eq!(before, canvas);
    }

    #[test]
    fn odd_sources_and_overhanging_rectangles_do_not_panic() {
        let y = vec![77u8; 5 * 3];
        let c = vec![128u8; 3 * 2];
        let src = PlanesRef {
            width: 5,
            height: 3,
            y: &y,
            u: &c,
            v: &c,
            y_stride: 5,
            uv_stride: 3,
        };
        let mut canvas = I420Frame::new(32, 32);
        let mut scaler = Scaler::new();
        assert!(scaler.draw(&src, &mut canvas, Rect::new(20, 20, 40, 40)));
        assert_eq!(canvas.luma_at(31, 31), Some(77));
        let short = PlanesRef { y: &y[..4], ..src };
        assert!(!scaler.draw(&short, &mut canvas, Rect::new(0, 0, 8, 8)));
    }
}
