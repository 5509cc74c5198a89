//! VOD over a progressive file built by the recording path in memory: the sample index finds
//! every sample again, segments start at IDRs, fragments carry the right decode times. Pure.

use bytes::Bytes;
use mp4_atom::{Decode, Ftyp, Moov};

use super::*;
use crate::core::fmp4::{
    AUDIO_TRACK_ID, InitInfo, Run, TrackConfig, VIDEO_TRACK_ID, box_header, init_segment,
    parse_init, parse_moof, progressive,
};

const SPS: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

/// 6 s of 30 fps video with an IDR every 2 s, and 20 ms audio, as fragments of 10 frames.
fn recording() -> (Vec<u8>, Moov) {
    let mut file = init_segment(&[
        TrackConfig::Video {
            sps: Bytes::from_static(&SPS),
            pps: Bytes::from_static(&PPS),
        },
        TrackConfig::Audio { channels: 2 },
    ])
    .unwrap();
    for f in 0..18u64 {
        let video = TrackRun {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: f * 30_000,
            samples: (0..10)
                .map(|i| {
                    let n = f * 10 + i;
                    Sample {
                        duration: 3000,
                        data: Bytes::from((n as u32).to_be_bytes().to_vec()),
                        sync: n % 60 == 0,
                    }
                })
                .collect(),
        };
        let audio = TrackRun {
            track_id: AUDIO_TRACK_ID,
            base_decode_time: f * 16_000,
            samples: (0..50 / 3)
                .map(|i| Sample {
                    duration: 960,
                    data: Bytes::from(vec![0xfc, i as u8]),
                    sync: true,
                })
                .collect(),
        };
        file.extend(fragment(f as u32 + 1, &[video, audio]).unwrap());
    }
    // Scan, then write the progressive file.
    let mut at = 0;
    let mut init: Option<InitInfo> = None;
    let mut runs: Vec<Run> = Vec::new();
    while let Some(h) = box_header(&file[at..]) {
        let size = h.size.unwrap() as usize;
        match &h.kind {
            b"moov" => init = Some(parse_init(&file[at..at + size]).unwrap()),
            b"moof" => runs.extend(
                parse_moof(&file[at..at + size], at as u64, init.as_ref().unwrap()).unwrap(),
            ),
            _ => {}
        }
        at += size;
    }
    let plan = progressive(init.as_ref().unwrap(), &runs, 0).unwrap();
    let mut out = plan.header.clone();
    for c in &plan.copy {
        out.extend_from_slice(&file[c.offset as usize..(c.offset + c.len) as usize]);
    }
    let mut buf = &out[..];
    Ftyp::decode(&mut buf).unwrap();
    let moov = Moov::decode(&mut buf).unwrap();
    (out, moov)
}

#[test]
fn the_index_finds_every_sample() {
    let (file, moov) = recording();
    let tracks = sample_index(&moov).unwrap();
    assert_eq!(tracks.len(), 2);
    let video = &tracks[0];
    assert!(video.video);
    assert_eq!(video.samples.len(), 180);
    for (n, s) in video.samples.iter().enumerate() {
        let at = s.offset as usize;
        assert_eq!(&file[at..at + 4], &(n as u32).to_be_bytes(), "sample {n}");
        assert_eq!(s.dts, n as u64 * 3000);
        assert_eq!(s.sync, n % 60 == 0);
    }
    assert_eq!(tracks[1].samples.len(), 18 * 16);
    assert!(tracks[1].samples.iter().all(|s| s.sync && s.size == 2));
}

#[test]
fn segments_start_at_idrs_and_fragments_keep_decode_times() {
    let (file, moov) = recording();
    let tracks = sample_index(&moov).unwrap();
    let segments = vod_segments(&tracks, 2.0);
    assert_eq!(segments.len(), 3);
    for (k, s) in segments.iter().enumerate() {
        assert_eq!(s.ranges[0], (k * 60, k * 60 + 60));
        assert!((s.duration - 2.0).abs() < 0.01, "{s:?}");
        assert!(tracks[0].samples[s.ranges[0].0].sync);
    }
    let audio: usize = segments.iter().map(|s| s.ranges[1].1 - s.ranges[1].0).sum();
    assert_eq!(
        audio,
        tracks[1].samples.len(),
        "every audio sample in one segment"
    );
    let init = fragmented_init(&moov).unwrap();
    let moov_at = box_header(&init).unwrap().size.unwrap() as usize;
    let info = parse_init(&init[moov_at..]).unwrap();
    assert_eq!(info.tracks.len(), 2);
    let bytes = vod_fragment(&tracks, &segments[1], 2, |s| {
        Ok(Bytes::copy_from_slice(
            &file[s.offset as usize..s.offset as usize + s.size as usize],
        ))
    })
    .unwrap();
    let runs = parse_moof(&bytes, 0, &info).unwrap();
    assert_eq!(runs[0].base_decode_time, 60 * 3000);
    assert_eq!(runs[0].samples.len(), 60);
    let playlist = vod_playlist(&segments);
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
    assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"));
    assert!(playlist.contains("#EXTINF:2.00000,\n2.m4s\n#EXT-X-ENDLIST\n"));
}
