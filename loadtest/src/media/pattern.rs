//! Test/load client: the synthetic moving picture a publisher encodes (pure, no I/O).
//!
//! Every frame is I420 (8-bit, 4:2:0, video range) and laid out so a test can check the decoded
//! picture pixel by pixel:
//!
//! ```text
//!  +----+----+----+-- ... --+----+   rows [0, band_height)
//!  | b0 | b1 | b2 |         |b15 |   frame counter: cell i is white (235) when bit i of the
//!  +----+----+----+-- ... --+----+   frame index is set, else black (16); bit 0 is leftmost
//!  |        |###|                |   rows [band_height, height)
//!  | grey   |###| ramp: luma     |   background: a horizontal luma ramp from 32 (x = 0) up to
//!  | ramp   |###| 32 + 144*x/w   |   176 (right edge), identical on every row
//!  |        |###|                |   bar: columns [bar_x, bar_x + bar_width) are 235 and move
//!  +--------+---+----------------+   right by `bar_step` pixels per frame, wrapping around
//! ```
//!
//! Chroma is constant over time: U is a vertical ramp (64 at the top to 192 at the bottom), V is
//! 128. Only luma moves, so luma is what tests check: [`TestPattern::expected_luma`] gives the
//! exact source value of any pixel, and [`TestPattern::read_counter`] recovers the frame index
//! from a decoded picture (the counter cells are large and black/white, so they survive lossy
//! coding at any sane bitrate).

/// Number of frame-counter cells (bits) across the top band.
pub const COUNTER_BITS: usize = 16;
/// Luma of a set counter bit and of the moving bar.
pub const LUMA_WHITE: u8 = 235;
/// Luma of a clear counter bit.
pub const LUMA_BLACK: u8 = 16;
/// Luma of the background ramp at x = 0.
pub const RAMP_LEFT: u8 = 32;
/// Span of the background ramp: it reaches `RAMP_LEFT + RAMP_SPAN` at the right edge.
pub const RAMP_SPAN: u8 = 144;

/// An axis-aligned pixel rectangle, `x0..x1` by `y0..y1` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
}

impl Rect {
    /// The centre pixel, the safest place to sample after lossy coding.
    pub fn center(&self) -> (usize, usize) {
        ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)
    }
}

/// One raw I420 picture; implements openh264's `YUVSource` so it can be encoded directly.
#[derive(Debug, Clone)]
pub struct I420Frame {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Frame {
    /// A black picture; `width` and `height` must be even (checked by `VideoConfig`).
    pub fn new(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        Self {
            width,
            height,
            y: vec![LUMA_BLACK; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
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
    pub fn y_plane(&self) -> &[u8] {
        &self.y
    }

    /// Luma at `(x, y)`; `None` outside the picture.
    pub fn luma_at(&self, x: usize, y: usize) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.y[y * self.width + x])
    }
}

impl openh264::formats::YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Geometry and renderer of the moving test picture for one resolution and frame rate.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    band_height: usize,
    bar_width: usize,
    bar_step: usize,
    ramp_row: Vec<u8>,
}

impl TestPattern {
    /// The pattern for `width` x `height` at `fps` (the bar crosses the picture in ~2 s).
    pub fn new(width: usize, height: usize, fps: u32) -> Self {
        let width = width.max(2);
        let height = height.max(2);
        let band_height = ((height / 8) & !1).max(2).min(height);
        let bar_width = ((width / 16) & !1).max(2).min(width);
        let bar_step = (width / (2 * fps.max(1) as usize)).max(1);
        let ramp_row = (0..width)
            .map(|x| RAMP_LEFT + (x * usize::from(RAMP_SPAN) / width) as u8)
            .collect();
        Self {
            width,
            height,
            band_height,
            bar_width,
            bar_step,
            ramp_row,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Height of the frame-counter band at the top (`height / 8`, even, at least 2).
    pub fn band_height(&self) -> usize {
        self.band_height
    }

    /// Width of the moving bar (`width / 16`, even, at least 2).
    pub fn bar_width(&self) -> usize {
        self.bar_width
    }

    /// Pixels the bar moves per frame (`width / (2 * fps)`, at least 1).
    pub fn bar_step(&self) -> usize {
        self.bar_step
    }

    /// Left column of the bar in frame `frame_index`: `(frame_index * bar_step) % (width -
    /// bar_width + 1)`, so the bar is always wholly inside the picture.
    pub fn bar_x(&self, frame_index: u64) -> usize {
        let positions = (self.width - self.bar_width + 1) as u64;
        ((frame_index.wrapping_mul(self.bar_step as u64)) % positions) as usize
    }

    /// The bar's rectangle in frame `frame_index` (below the counter band).
    pub fn bar_rect(&self, frame_index: u64) -> Rect {
        let x0 = self.bar_x(frame_index);
        Rect {
            x0,
            x1: x0 + self.bar_width,
            y0: self.band_height,
            y1: self.height,
        }
    }

    /// The rectangle of counter bit `bit` (0 = leftmost); `bit` must be below [`COUNTER_BITS`].
    pub fn counter_cell(&self, bit: usize) -> Rect {
        Rect {
            x0: bit * self.width / COUNTER_BITS,
            x1: (bit + 1) * self.width / COUNTER_BITS,
            y0: 0,
            y1: self.band_height,
        }
    }

    /// The exact source luma of pixel `(x, y)` in frame `frame_index` (before coding).
    pub fn expected_luma(&self, frame_index: u64, x: usize, y: usize) -> u8 {
        if y < self.band_height {
            let bit = (x * COUNTER_BITS / self.width).min(COUNTER_BITS - 1);
            return if (frame_index >> bit) & 1 == 1 {
                LUMA_WHITE
            } else {
                LUMA_BLACK
            };
        }
        let bar = self.bar_x(frame_index);
        if (bar..bar + self.bar_width).contains(&x) {
            LUMA_WHITE
        } else {
            self.ramp_row[x.min(self.width - 1)]
        }
    }

    /// Reads the frame counter (the frame index modulo 2^16) from a decoded picture by sampling
    /// the centre of each cell through `luma(x, y)` and thresholding at mid-grey.
    pub fn read_counter(&self, luma: impl Fn(usize, usize) -> u8) -> u16 {
        let threshold = (u16::from(LUMA_WHITE) + u16::from(LUMA_BLACK)) / 2;
        (0..COUNTER_BITS).fold(0u16, |acc, bit| {
            let (x, y) = self.counter_cell(bit).center();
            if u16::from(luma(x, y)) >= threshold {
                acc | (1 << bit)
            } else {
                acc
            }
        })
    }

    /// A fresh picture with this pattern's constant chroma, ready for [`Self::render`].
    pub fn blank_frame(&self) -> I420Frame {
        let mut frame = I420Frame::new(self.width, self.height);
        let (cw, ch) = (self.width / 2, self.height / 2);
        for row in 0..ch {
            let value = 64 + (row * 128 / ch.max(1)) as u8;
            frame.u[row * cw..(row + 1) * cw].fill(value);
        }
        frame
    }

    /// Draws frame `frame_index` into `frame`'s luma plane (chroma is left as
    /// [`Self::blank_frame`] made it). Costs one pass over the luma plane, no allocation.
    pub fn render(&self, frame_index: u64, frame: &mut I420Frame) {
        debug_assert_eq!((frame.width, frame.height), (self.width, self.height));
        let w = self.width;
        for row in frame.y.chunks_exact_mut(w).take(self.band_height) {
            for bit in 0..COUNTER_BITS {
                let cell = self.counter_cell(bit);
                let value = if (frame_index >> bit) & 1 == 1 {
                    LUMA_WHITE
                } else {
                    LUMA_BLACK
                };
                row[cell.x0..cell.x1].fill(value);
            }
        }
        let bar = self.bar_x(frame_index);
        for row in frame.y.chunks_exact_mut(w).skip(self.band_height) {
            row.copy_from_slice(&self.ramp_row);
            row[bar..bar + self.bar_width].fill(LUMA_WHITE);
        }
    }
}

/// Per-frame random luma over the bottom rows of the picture: incompressible detail that makes
/// the encoder spend its whole bitrate, as camera content does, where the plain pattern codes
/// to a few kbit/s. The counter band is never covered (so [`TestPattern::read_counter`] still
/// works), but [`TestPattern::expected_luma`] no longer holds inside the band.
#[derive(Debug, Clone)]
pub struct NoiseBand {
    first_row: usize,
    state: u64,
}

impl NoiseBand {
    /// A band over the bottom `percent` % of `pattern`'s height, rounded to whole rows (at
    /// most everything below the counter band); `None` when that is no row at all.
    pub fn new(pattern: &TestPattern, percent: f64) -> Option<Self> {
        let below_counter = pattern.height - pattern.band_height;
        let rows = (pattern.height as f64 * percent.clamp(0.0, 100.0) / 100.0).round() as usize;
        let rows = rows.min(below_counter);
        (rows > 0).then(|| Self {
            first_row: pattern.height - rows,
            state: 0x2545_f491_4f6c_dd1d,
        })
    }

    /// Overwrites the band's rows of `frame` with fresh noise in the video range (16..=235).
    pub fn render(&mut self, frame: &mut I420Frame) {
        let start = self.first_row * frame.width;
        for chunk in frame.y[start..].chunks_mut(8) {
            // xorshift64*: fast, and different on every call.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let bytes = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            for (pixel, byte) in chunk.iter_mut().zip(bytes) {
                *pixel = LUMA_BLACK + ((u16::from(byte) * 220) >> 8) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_covers_the_bottom_and_changes_every_frame() {
        let pattern = TestPattern::new(64, 48, 30);
        assert!(NoiseBand::new(&pattern, 0.0).is_none());
        let mut noise = NoiseBand::new(&pattern, 50.0).expect("band");
        let mut frame = pattern.blank_frame();
        pattern.render(3, &mut frame);
        noise.render(&mut frame);
        let first = frame.y_plane().to_vec();
        noise.render(&mut frame);
        // The top half (counter band included) is untouched, the bottom half changed.
        assert_eq!(first[..64 * 24], frame.y_plane()[..64 * 24]);
        assert_ne!(first[64 * 24..], frame.y_plane()[64 * 24..]);
        assert!(frame.y_plane().iter().all(|&y| (16..=235).contains(&y)));
        assert_eq!(
            pattern.read_counter(|x, y| frame.luma_at(x, y).unwrap_or(0)),
            3
        );
        // 100 % stops at the counter band.
        let all = NoiseBand::new(&pattern, 100.0).expect("band");
        assert_eq!(all.first_row, pattern.band_height());
    }

    #[test]
    fn render_matches_expected_luma_everywhere() {
        let pattern = TestPattern::new(96, 64, 30);
        let mut frame = pattern.blank_frame();
        for index in [0u64, 1, 5, 77, 65_535] {
            pattern.render(index, &mut frame);
            for y in 0..64 {
                for x in 0..96 {
                    assert_eq!(
                        frame.luma_at(x, y),
                        Some(pattern.expected_luma(index, x, y)),
                        "frame {index} pixel ({x},{y})"
                    );
                }
            }
            assert_eq!(
                u64::from(pattern.read_counter(|x, y| frame.luma_at(x, y).unwrap_or(0))),
                index & 0xffff
            );
        }
    }

    #[test]
    fn bar_moves_and_stays_inside() {
        let pattern = TestPattern::new(640, 360, 30);
        assert_ne!(pattern.bar_x(0), pattern.bar_x(1));
        for index in 0..1000 {
            let rect = pattern.bar_rect(index);
            assert!(rect.x1 <= 640);
        }
    }
}
