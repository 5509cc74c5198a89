//! The room composite's pure parts (egress path: stage participants' decoded pictures and PCM ->
//! one picture and one mixed audio frame for the LL-HLS tap and the recording): layout, I420
//! scaling and blitting, audio mixing, the output frame clock, and H.264 framing at the codec
//! edge. Sans-IO: no codecs, no tokio; time is passed in. The I/O shell is
//! `egress::composite`.

mod avcc;
mod clock;
mod frame;
mod layout;
mod mix;
mod scale;

pub use avcc::{EncodedPicture, annexb_nals, annexb_to_picture, avcc_to_annexb};
pub use clock::{FrameClock, Tick};
pub use frame::{BLACK_Y, I420Frame, NEUTRAL_UV, PlanesRef};
pub use layout::{Rect, fit, grid};
pub use mix::{
    FRAME_LEN, FRAME_SAMPLES, FifoStats, MIX_CHANNELS, PcmFifo, SAMPLE_RATE, mix_into, soft_clip,
};
pub use scale::Scaler;

/// Canvas colour behind the tiles (letterbox bars): a dark grey, video range.
pub const BACKGROUND: (u8, u8, u8) = (24, 128, 128);

/// Composes the stage into one picture: a grid with one tile per participant, each picture
/// scaled into its tile with its aspect ratio kept. Buffers and scaling tables are kept between
/// frames, so composing allocates nothing once the stage is stable.
#[derive(Debug, Clone)]
pub struct Composer {
    canvas: I420Frame,
    scalers: Vec<Scaler>,
    cells: Vec<Rect>,
}

impl Composer {
    /// A composer producing `width` x `height` pictures (rounded down to even).
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            canvas: I420Frame::new(width, height),
            scalers: Vec::new(),
            cells: Vec::new(),
        }
    }

    /// The tile of participant `index` of `count` for a `src_w` x `src_h` picture.
    pub fn tile(&self, index: usize, count: usize, src_w: usize, src_h: usize) -> Rect {
        let cells = grid(count, self.canvas.width(), self.canvas.height());
        cells
            .get(index)
            .map_or(Rect::default(), |cell| fit(src_w, src_h, *cell))
    }

    /// Composes one picture. `pictures[i]` is participant `i`'s latest picture, `None` when it
    /// has none yet (its cell stays background).
    pub fn compose(&mut self, pictures: &[Option<PlanesRef<'_>>]) -> &I420Frame {
        let n = pictures.len();
        if self.cells.len() != n {
            self.cells = grid(n, self.canvas.width(), self.canvas.height());
        }
        if self.scalers.len() != n {
            self.scalers.resize_with(n, Scaler::new);
        }
        let (y, u, v) = BACKGROUND;
        self.canvas.fill(y, u, v);
        for ((picture, cell), scaler) in pictures.iter().zip(&self.cells).zip(&mut self.scalers) {
            if let Some(p) = picture {
                scaler.draw(p, &mut self.canvas, fit(p.width, p.height, *cell));
            }
        }
        &self.canvas
    }

    /// The last composed picture.
    pub fn canvas(&self) -> &I420Frame {
        &self.canvas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: usize, height: usize, y: u8, u: u8, v: u8) -> I420Frame {
        let mut f = I420Frame::new(width, height);
        f.fill(y, u, v);
        f
    }

    #[test]
    fn two_participants_land_in_their_tiles() {
        let a = solid(640, 360, 60, 90, 200);
        let b = solid(320, 240, 200, 160, 60);
        let mut composer = Composer::new(1280, 720);
        let out = composer.compose(&[Some(a.as_planes()), Some(b.as_planes())]);
        // a: 640x360 in the left 640x720 cell -> (0, 180, 640, 360).
        assert_eq!(out.luma_at(320, 360), Some(60));
        assert_eq!(out.chroma_at(320, 360), Some((90, 200)));
        assert_eq!(out.luma_at(320, 100), Some(BACKGROUND.0), "letterbox bar");
        // b: 4:3 in the right cell -> 640x480 at (640, 120).
        let tile = composer.tile(1, 2, 320, 240);
        assert_eq!(tile, Rect::new(640, 120, 640, 480));
        let out = composer.canvas();
        let (cx, cy) = tile.center();
        assert_eq!(out.luma_at(cx, cy), Some(200));
        assert_eq!(out.chroma_at(cx, cy), Some((160, 60)));
        assert_eq!(out.luma_at(660, 130), Some(200));
        assert_eq!(out.luma_at(660, 110), Some(BACKGROUND.0));
    }

    #[test]
    fn a_participant_without_a_picture_leaves_its_cell_blank_and_a_leaver_frees_the_stage() {
        let a = solid(640, 360, 100, 128, 128);
        let mut composer = Composer::new(1280, 720);
        composer.compose(&[None, Some(a.as_planes())]);
        assert_eq!(composer.canvas().luma_at(320, 360), Some(BACKGROUND.0));
        assert_eq!(composer.canvas().luma_at(960, 360), Some(100));
        // One left: the remaining one fills the whole picture.
        let out = composer.compose(&[Some(a.as_planes())]);
        assert_eq!(out.luma_at(10, 10), Some(100));
        assert_eq!(out.luma_at(1270, 710), Some(100));
    }
}
