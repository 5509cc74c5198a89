//! Recording fragments (media path: the segmenter's samples -> here -> `egress::recorder`
//! file): both tracks of one broadcast interleaved in `moof`+`mdat` fragments, flushed at every
//! video part so a crash loses at most one part's worth (~200 ms). Decode times start near zero
//! for each recording. Pure.

use super::{AUDIO_TRACK_ID, Fmp4Error, Sample, TrackRun, VIDEO_TRACK_ID, fragment};

/// Accumulates samples and writes them as fragments.
#[derive(Debug)]
pub struct RecordingFragmenter {
    /// Video decode time (90 kHz media timeline) that becomes zero in the file.
    video_origin: u64,
    /// The same instant in 48 kHz units.
    audio_origin: u64,
    video: Option<TrackRun>,
    audio: Option<TrackRun>,
    sequence: u32,
    dropped: u64,
}

impl RecordingFragmenter {
    /// A recording whose time zero is `origin` on the 90 kHz media timeline.
    pub fn new(origin: u64) -> Self {
        Self {
            video_origin: origin,
            audio_origin: origin * 8 / 15,
            video: None,
            audio: None,
            sequence: 0,
            dropped: 0,
        }
    }

    /// Samples that fell before the recording's time zero.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds a video (`audio` false) or audio sample at its media decode time. A sample that
    /// does not follow the previous one of its track without a gap first flushes what is
    /// pending, returned as a fragment to write.
    pub fn push(
        &mut self,
        audio: bool,
        decode_time: u64,
        sample: Sample,
    ) -> Result<Option<Vec<u8>>, Fmp4Error> {
        let (origin, track_id) = if audio {
            (self.audio_origin, AUDIO_TRACK_ID)
        } else {
            (self.video_origin, VIDEO_TRACK_ID)
        };
        let Some(time) = decode_time.checked_sub(origin) else {
            self.dropped += 1;
            return Ok(None);
        };
        let run = if audio { &self.audio } else { &self.video };
        let contiguous = run
            .as_ref()
            .is_none_or(|r| r.base_decode_time + r.duration() == time);
        let flushed = if contiguous { None } else { self.flush()? };
        let run = if audio {
            &mut self.audio
        } else {
            &mut self.video
        };
        run.get_or_insert_with(|| TrackRun {
            track_id,
            base_decode_time: time,
            samples: Vec::new(),
        })
        .samples
        .push(sample);
        Ok(flushed)
    }

    /// Everything pending as one fragment (video run first), or `None` when nothing is.
    pub fn flush(&mut self) -> Result<Option<Vec<u8>>, Fmp4Error> {
        let runs: Vec<TrackRun> = self
            .video
            .take()
            .into_iter()
            .chain(self.audio.take())
            .collect();
        if runs.is_empty() {
            return Ok(None);
        }
        self.sequence += 1;
        fragment(self.sequence, &runs).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fmp4::{TrackConfig, box_header, init_segment, parse_init, parse_moof};
    use bytes::Bytes;

    fn s(n: u8, duration: u32) -> Sample {
        Sample {
            duration,
            data: Bytes::from(vec![n; 10]),
            sync: true,
        }
    }

    #[test]
    fn fragments_start_at_zero_and_split_at_holes() {
        let init = init_segment(&[TrackConfig::Audio { channels: 2 }]).unwrap();
        let at = box_header(&init).unwrap().size.unwrap() as usize;
        let mut info = parse_init(&init[at..]).unwrap();
        info.tracks.push(crate::core::fmp4::TrackInfo {
            track_id: 1,
            timescale: 90_000,
            handler: *b"vide",
            pre_skip: None,
            defaults: (0, 0, 0),
        });
        let mut f = RecordingFragmenter::new(90_000);
        assert_eq!(f.push(false, 80_000, s(0, 3000)).unwrap(), None);
        assert_eq!(f.dropped(), 1, "before time zero");
        assert!(f.push(false, 90_000, s(1, 3000)).unwrap().is_none());
        assert!(f.push(true, 48_000, s(2, 960)).unwrap().is_none());
        assert!(f.push(false, 93_000, s(3, 3000)).unwrap().is_none());
        // A hole in the video: what is pending comes out first.
        let first = f.push(false, 99_000, s(4, 3000)).unwrap().unwrap();
        let runs = parse_moof(&first, 0, &info).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].track_id, runs[0].base_decode_time), (1, 0));
        assert_eq!(runs[0].samples.len(), 2);
        assert_eq!((runs[1].track_id, runs[1].base_decode_time), (2, 0));
        let second = f.flush().unwrap().unwrap();
        let runs = parse_moof(&second, 0, &info).unwrap();
        assert_eq!(runs[0].base_decode_time, 9000);
        assert_eq!(f.flush().unwrap(), None);
    }
}
