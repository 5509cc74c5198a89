//! Test/load client: H.264 decoding of received access units with openh264, keeping the luma
//! plane for pixel checks. CPU only, no I/O.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;

use crate::error::MediaError;

/// Size of a decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// A copy of a decoded picture's luma (Y) plane, `width` bytes per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LumaFrame {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl LumaFrame {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The plane, row after row.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Luma at `(x, y)`; `None` outside the picture.
    pub fn at(&self, x: usize, y: usize) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.data[y * self.width + x])
    }

    /// Copies `rows` rows of `width` bytes out of a plane with the given stride, reusing the
    /// buffer.
    fn copy_from(&mut self, plane: &[u8], stride: usize, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.clear();
        self.data.reserve(width * height);
        for row in plane.chunks(stride).take(height) {
            self.data.extend_from_slice(&row[..width.min(row.len())]);
        }
    }
}

/// openh264 decoder for one stream.
pub struct VideoDecoder {
    decoder: Decoder,
    luma: LumaFrame,
    has_picture: bool,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder")
            .field("width", &self.luma.width)
            .field("height", &self.luma.height)
            .finish()
    }
}

impl VideoDecoder {
    /// A decoder expecting an Annex-B stream starting with SPS/PPS and an IDR.
    pub fn new() -> Result<Self, MediaError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())?;
        Ok(Self {
            decoder,
            luma: LumaFrame::default(),
            has_picture: false,
        })
    }

    /// Decodes one access unit (Annex-B). Returns the picture size when a picture came out
    /// (openh264 runs without reordering delay, so every complete access unit of a baseline
    /// stream yields one); `Ok(None)` when it needs more data (e.g. SPS/PPS only).
    pub fn decode(&mut self, annexb: &[u8]) -> Result<Option<DecodedFrame>, MediaError> {
        let Some(picture) = self.decoder.decode(annexb)? else {
            return Ok(None);
        };
        let (width, height) = picture.dimensions();
        let (stride, _, _) = picture.strides();
        self.luma.copy_from(picture.y(), stride, width, height);
        self.has_picture = true;
        Ok(Some(DecodedFrame { width, height }))
    }

    /// The luma of the last decoded picture.
    pub fn luma(&self) -> Option<&LumaFrame> {
        self.has_picture.then_some(&self.luma)
    }

    /// Luma at `(x, y)` of the last decoded picture.
    pub fn luma_at(&self, x: usize, y: usize) -> Option<u8> {
        self.luma().and_then(|l| l.at(x, y))
    }
}
