//! I420 pictures for the room composite (egress path: decoded guest pictures -> composite canvas
//! -> encoder). Pure: plain buffers, reused from frame to frame so compositing allocates nothing
//! per frame once sizes are stable.

/// Luma of black in video range (ITU-R BT.601/BT.709 8-bit: 16..=235).
pub const BLACK_Y: u8 = 16;
/// Neutral chroma.
pub const NEUTRAL_UV: u8 = 128;

/// A borrowed I420 picture: three planes with their strides (a decoder's output, or a frame).
#[derive(Debug, Clone, Copy)]
pub struct PlanesRef<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luma plane, at least `y_stride * height` bytes (the last row may be short).
    pub y: &'a [u8],
    /// Cb plane, `uv_stride` bytes per row, `height / 2` rows (rounded up).
    pub u: &'a [u8],
    /// Cr plane, like `u`.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
}

impl PlanesRef<'_> {
    /// Whether the planes are big enough for the stated size and strides.
    pub fn is_consistent(&self) -> bool {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let enough = |plane: &[u8], stride: usize, w: usize, h: usize| {
            h == 0 || (stride >= w && plane.len() >= stride * (h - 1) + w)
        };
        self.width > 0
            && self.height > 0
            && enough(self.y, self.y_stride, self.width, self.height)
            && enough(self.u, self.uv_stride, cw, ch)
            && enough(self.v, self.uv_stride, cw, ch)
    }
}

/// An owned I420 picture with tightly packed planes (stride = width). Width and height are
/// even, as H.264 4:2:0 needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420Frame {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Frame {
    /// A black picture of `width` x `height`, each rounded down to even (at least 2).
    pub fn new(width: usize, height: usize) -> Self {
        let mut frame = Self::default();
        frame.resize(width, height);
        frame.fill(BLACK_Y, NEUTRAL_UV, NEUTRAL_UV);
        frame
    }

    /// Changes the size, reusing the buffers (content is unspecified afterwards).
    pub fn resize(&mut self, width: usize, height: usize) {
        let width = (width & !1).max(2);
        let height = (height & !1).max(2);
        self.width = width;
        self.height = height;
        self.y.resize(width * height, BLACK_Y);
        self.u.resize(width / 2 * (height / 2), NEUTRAL_UV);
        self.v.resize(width / 2 * (height / 2), NEUTRAL_UV);
    }

    /// Paints the whole picture one colour.
    pub fn fill(&mut self, y: u8, u: u8, v: u8) {
        self.y.fill(y);
        self.u.fill(u);
        self.v.fill(v);
    }

    /// Copies `src` in, taking its size (rounded down to even); the buffers are reused.
    pub fn copy_from(&mut self, src: &PlanesRef<'_>) {
        self.resize(src.width, src.height);
        copy_plane(src.y, src.y_stride, &mut self.y, self.width, self.height);
        let (cw, ch) = (self.width / 2, self.height / 2);
        copy_plane(src.u, src.uv_stride, &mut self.u, cw, ch);
        copy_plane(src.v, src.uv_stride, &mut self.v, cw, ch);
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The luma plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// The Cb plane, `width / 2` bytes per row.
    pub fn u(&self) -> &[u8] {
        &self.u
    }

    /// The Cr plane, `width / 2` bytes per row.
    pub fn v(&self) -> &[u8] {
        &self.v
    }

    /// Luma at `(x, y)`; `None` outside the picture.
    pub fn luma_at(&self, x: usize, y: usize) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.y[y * self.width + x])
    }

    /// Chroma `(u, v)` at luma position `(x, y)`; `None` outside the picture.
    pub fn chroma_at(&self, x: usize, y: usize) -> Option<(u8, u8)> {
        let i = (y / 2) * (self.width / 2) + x / 2;
        (x < self.width && y < self.height).then(|| (self.u[i], self.v[i]))
    }

    /// Mutable planes `(y, u, v)`.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        (&mut self.y, &mut self.u, &mut self.v)
    }

    /// Paints the rectangle `x, y, w, h` (luma coordinates, even) one colour.
    pub fn fill_rect(&mut self, rect: super::Rect, (y, u, v): (u8, u8, u8)) {
        let r = rect.clamped(self.width, self.height);
        for row in r.y..r.y + r.h {
            self.y[row * self.width + r.x..][..r.w].fill(y);
        }
        let cw = self.width / 2;
        for row in r.y / 2..(r.y + r.h) / 2 {
            self.u[row * cw + r.x / 2..][..r.w / 2].fill(u);
            self.v[row * cw + r.x / 2..][..r.w / 2].fill(v);
        }
    }

    /// A borrowed view.
    pub fn as_planes(&self) -> PlanesRef<'_> {
        PlanesRef {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.width,
            uv_stride: self.width / 2,
        }
    }
}

fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], width: usize, height: usize) {
    for (row, out) in dst.chunks_exact_mut(width).take(height).enumerate() {
        let start = row * stride;
        let available = src.len().saturating_sub(start).min(width);
        out[..available].copy_from_slice(&src[start..start + available]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_strided_planes_drops_padding() {
        // 4x2 picture stored with a luma stride of 6 and a chroma stride of 4.
        let y = [1, 2, 3, 4, 99, 99, 5, 6, 7, 8, 99, 99];
        let u = [10, 11, 99, 99];
        let v = [20, 21, 99, 99];
        let src = PlanesRef {
            width: 4,
            height: 2,
            y: &y,
            u: &u,
            v: &v,
            y_stride: 6,
            uv_stride: 4,
        };
        assert!(src.is_consistent());
        let mut f = I420Frame::new(64, 64);
        f.copy_from(&src);
        assert_eq!((f.width(), f.height()), (4, 2));
        assert_eq!(f.y(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.u(), &[10, 11]);
        assert_eq!(f.v(), &[20, 21]);
        assert_eq!(f.chroma_at(3, 1), Some((11, 21)));
    }

    #[test]
    fn inconsistent_planes_are_detected() {
        let y = [0u8; 10];
        let src = PlanesRef {
            width: 4,
            height: 4,
            y: &y,
            u: &y,
            v: &y,
            y_stride: 4,
            uv_stride: 2,
        };
        assert!(!src.is_consistent(), "16 luma bytes needed, 10 given");
    }

    #[test]
    fn fill_rect_paints_luma_and_chroma() {
        let mut f = I420Frame::new(8, 8);
        f.fill_rect(super::super::Rect::new(2, 2, 4, 4), (200, 50, 60));
        assert_eq!(f.luma_at(1, 1), Some(BLACK_Y));
        assert_eq!(f.luma_at(2, 2), Some(200));
        assert_eq!(f.luma_at(5, 5), Some(200));
        assert_eq!(f.luma_at(6, 6), Some(BLACK_Y));
        assert_eq!(f.chroma_at(3, 3), Some((50, 60)));
        assert_eq!(f.chroma_at(7, 7), Some((NEUTRAL_UV, NEUTRAL_UV)));
    }
}
