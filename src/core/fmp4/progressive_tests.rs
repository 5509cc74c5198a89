//! Round trip of the recording path in memory: init + fragments -> scan -> progressive file;
//! every sample must be found again at the offsets the sample tables give. Pure.

use bytes::Bytes;
use mp4_atom::{Decode, Ftyp, Moov};

use super::*;
use crate::core::fmp4::{
    AUDIO_TRACK_ID, Sample, TrackConfig, TrackRun, VIDEO_TRACK_ID, box_header, fragment,
    init_segment, parse_init, parse_moof,
};

const SPS: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

fn sample(tag: u8, n: usize, duration: u32, sync: bool) -> Sample {
    Sample {
        duration,
        data: Bytes::from(vec![tag; n]),
        sync,
    }
}

/// A fragmented file: 3 fragments of 3 video frames (IDR first) and 5 Opus packets; audio
/// starts 40 ms after video.
fn fragmented() -> Vec<u8> {
    let mut file = init_segment(&[
        TrackConfig::Video {
            sps: Bytes::from_static(&SPS),
            pps: Bytes::from_static(&PPS),
        },
        TrackConfig::Audio { channels: 2 },
    ])
    .unwrap();
    for f in 0..3u64 {
        let video = TrackRun {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: 9000 + f * 9000,
            samples: (0..3)
                .map(|i| sample(10 * f as u8 + i as u8, 100 + i, 3000, i == 0 && f == 0))
                .collect(),
        };
        let audio = TrackRun {
            track_id: AUDIO_TRACK_ID,
            base_decode_time: 4800 + 1920 + f * 4800,
            samples: (0..5)
                .map(|i| sample(200 + i as u8, 20, 960, true))
                .collect(),
        };
        file.extend(fragment(f as u32 + 1, &[video, audio]).unwrap());
    }
    file
}

/// What the recorder's finaliser does with a file: walk the boxes, read init and moofs.
fn scan(file: &[u8]) -> (InitInfo, Vec<Run>) {
    let mut at = 0;
    let mut init = None;
    let mut runs = Vec::new();
    while let Some(h) = box_header(&file[at..]) {
        let size = h.size.unwrap() as usize;
        let body = &file[at..at + size];
        match &h.kind {
            b"moov" => init = Some(parse_init(body).unwrap()),
            b"moof" => runs.extend(parse_moof(body, at as u64, init.as_ref().unwrap()).unwrap()),
            _ => {}
        }
        at += size;
    }
    (init.unwrap(), runs)
}

#[test]
fn scan_finds_every_run_and_sample() {
    let file = fragmented();
    let (init, runs) = scan(&file);
    assert_eq!(init.tracks.len(), 2);
    assert_eq!(init.track(2).unwrap().pre_skip, Some(312));
    assert_eq!(init.track(1).unwrap().timescale, 90_000);
    assert_eq!(runs.len(), 6);
    let v = &runs[2];
    assert_eq!((v.track_id, v.base_decode_time), (1, 18_000));
    let at = v.data_offset as usize;
    assert_eq!(&file[at..at + 100], &[10u8; 100][..]);
    assert!(is_sync(runs[0].samples[0].flags));
    assert!(!is_sync(runs[0].samples[1].flags));
}

#[test]
fn progressive_tables_point_at_the_samples() {
    let file = fragmented();
    let (init, runs) = scan(&file);
    let p = progressive(&init, &runs, 3_900_000_000).unwrap();
    let mut out = p.header.clone();
    for c in &p.copy {
        out.extend_from_slice(&file[c.offset as usize..(c.offset + c.len) as usize]);
    }
    assert_eq!(out.len() as u64, p.file_len());
    // Each fragment's two runs are contiguous in its mdat: three copies.
    assert_eq!(p.copy.len(), 3);

    let mut buf = &out[..];
    let ftyp = Ftyp::decode(&mut buf).unwrap();
    assert_eq!(ftyp.major_brand, b"isom".into());
    let moov = Moov::decode(&mut buf).unwrap();
    assert!(moov.mvex.is_none(), "not fragmented any more");
    assert_eq!(&buf[4..8], b"mdat");
    // Video: 9 frames of 3000 (0.3 s); audio: 15 x 960 minus 312 pre-skip, 40 ms late.
    assert_eq!(moov.trak[0].mdia.mdhd.duration, 27_000);
    assert_eq!(moov.trak[1].mdia.mdhd.duration, 14_400);
    let elst = moov.trak[1].edts.as_ref().unwrap().elst.as_ref().unwrap();
    assert_eq!(
        elst.entries[0].media_time, None,
        "empty edit: audio starts later"
    );
    assert_eq!(elst.entries[0].segment_duration, 40);
    assert_eq!(elst.entries[1].media_time, Some(312));
    assert_eq!(
        elst.entries[1].segment_duration,
        (14_400 - 312) * 1000 / 48_000
    );
    assert_eq!(p.duration_ms, 40 + 293);
    assert_eq!(moov.mvhd.duration, p.duration_ms);

    let video = &moov.trak[0].mdia.minf.stbl;
    assert_eq!(video.stts.entries.len(), 1);
    assert_eq!(video.stss.as_ref().unwrap().entries, vec![1]);
    let offsets = &video.stco.as_ref().unwrap().entries;
    assert_eq!(offsets.len(), 3);
    let StszSamples::Different { sizes } = &video.stsz.samples else {
        panic!("sizes");
    };
    assert_eq!(sizes[..3], [100, 101, 102]);
    for (chunk, &offset) in offsets.iter().enumerate() {
        let at = offset as usize;
        assert_eq!(
            out[at],
            10 * chunk as u8,
            "first sample of video chunk {chunk}"
        );
    }
    let audio = &moov.trak[1].mdia.minf.stbl;
    assert!(audio.stss.is_none(), "every Opus packet is a sync sample");
    let at = audio.stco.as_ref().unwrap().entries[1] as usize;
    assert_eq!(&out[at..at + 20], &[200u8; 20][..]);
    assert_eq!(audio.stsc.entries.len(), 1);
    assert_eq!(audio.stsc.entries[0].samples_per_chunk, 5);
}

#[test]
fn a_hole_between_fragments_lengthens_the_previous_sample() {
    let file = fragmented();
    let (init, mut runs) = scan(&file);
    runs[4].base_decode_time += 3000; // the third video fragment starts 3000 late
    let p = progressive(&init, &runs, 0).unwrap();
    let moov = Moov::decode(&mut &p.header[ftyp_len(&p.header)..]).unwrap();
    let stts = &moov.trak[0].mdia.minf.stbl.stts.entries;
    let total: u64 = stts
        .iter()
        .map(|e| u64::from(e.sample_count) * u64::from(e.sample_delta))
        .sum();
    assert_eq!(total, 30_000);
}

#[test]
fn no_samples_is_an_error() {
    let file = fragmented();
    let (init, _) = scan(&file);
    assert_eq!(progressive(&init, &[], 0), Err(Fmp4Error::Empty));
}

fn ftyp_len(bytes: &[u8]) -> usize {
    box_header(bytes).unwrap().size.unwrap() as usize
}
