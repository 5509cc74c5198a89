//! Test/load client: unit tests of the media helpers — encode/decode round trips of the
//! synthetic video and audio.

use super::*;
use crate::h264::{NAL_IDR, NAL_PPS, NAL_SPS, annexb_nals, nal_type};

fn small_video() -> VideoConfig {
    VideoConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 400_000,
        keyframe_interval_frames: 0,
    }
}

fn nal_types(frame: &EncodedFrame) -> Vec<u8> {
    annexb_nals(&frame.data).map(|n| nal_type(n[0])).collect()
}

#[test]
fn every_encoded_frame_decodes_at_the_configured_size() {
    let config = small_video();
    let mut source = VideoSource::new(config).expect("encoder");
    let mut decoder = VideoDecoder::new().expect("decoder");
    let pattern = source.pattern();
    for i in 0..45u64 {
        let frame = source.next_frame().expect("encode");
        assert_eq!(frame.pattern_index, i);
        assert_eq!(frame.duration, config.frame_duration());
        assert_eq!(frame.keyframe, i == 0, "only the first frame is an IDR");
        let decoded = decoder
            .decode(&frame.data)
            .expect("decode")
            .expect("a picture per access unit");
        assert_eq!((decoded.width, decoded.height), (320, 180));
        let counter = pattern.read_counter(|x, y| decoder.luma_at(x, y).unwrap_or(0));
        assert_eq!(u64::from(counter), i, "frame counter read back from pixels");
        // The bar is where the pattern says (lossy coding: compare loosely).
        let (bx, by) = pattern.bar_rect(i).center();
        assert!(decoder.luma_at(bx, by).expect("inside") > 200);
    }
}

#[test]
fn idr_frames_carry_sps_and_pps_first_and_forced_keyframes_are_idr() {
    let mut source = VideoSource::new(small_video()).expect("encoder");
    let first = source.next_frame().expect("encode");
    let types = nal_types(&first);
    assert_eq!(&types[..2], &[NAL_SPS, NAL_PPS], "got {types:?}");
    assert!(types.contains(&NAL_IDR));
    for _ in 0..5 {
        let p = source.next_frame().expect("encode");
        assert!(!p.keyframe);
        assert!(!nal_types(&p).contains(&NAL_IDR));
    }
    source.force_keyframe();
    let forced = source.next_frame().expect("encode");
    assert!(forced.keyframe);
    let types = nal_types(&forced);
    assert_eq!(&types[..2], &[NAL_SPS, NAL_PPS], "got {types:?}");
    assert!(types.contains(&NAL_IDR));
    assert!(!source.next_frame().expect("encode").keyframe);
}

#[test]
fn periodic_keyframes_follow_the_interval() {
    let config = VideoConfig {
        keyframe_interval_frames: 10,
        ..small_video()
    };
    let mut source = VideoSource::new(config).expect("encoder");
    let keys: Vec<bool> = (0..25)
        .map(|_| source.next_frame().expect("encode").keyframe)
        .collect();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(*key, i % 10 == 0, "frame {i}");
    }
}

#[test]
fn loop_replays_and_keyframe_requests_jump_to_the_next_idr() {
    let config = VideoConfig {
        keyframe_interval_frames: 4,
        ..small_video()
    };
    let frames = VideoLoop::encode(config, 10).expect("encode loop");
    assert_eq!(frames.len(), 10);
    let mut source = VideoSource::from_loop(frames);
    let indices: Vec<u64> = (0..12)
        .map(|_| source.next_frame().expect("replay").pattern_index)
        .collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    source.force_keyframe(); // at position 2 -> jumps to IDR 4
    let jumped = source.next_frame().expect("replay");
    assert!(jumped.keyframe);
    assert_eq!(jumped.pattern_index, 4);
    assert_eq!(source.next_frame().expect("replay").pattern_index, 5);
    for _ in 0..3 {
        source.next_frame().expect("replay"); // 6, 7, 8
    }
    source.force_keyframe(); // at position 9: no IDR after it, wraps to frame 0
    let wrapped = source.next_frame().expect("replay");
    assert!(wrapped.keyframe);
    assert_eq!(wrapped.pattern_index, 0);
    source.force_keyframe(); // at position 1, a P-frame -> jumps to IDR 4
    assert_eq!(source.next_frame().expect("replay").pattern_index, 4);

    // The replayed stream decodes across the loop point and the jumps.
    let mut decoder = VideoDecoder::new().expect("decoder");
    let mut replay = VideoSource::from_loop(VideoLoop::encode(config, 6).expect("loop"));
    for i in 0..14 {
        if i == 8 {
            replay.force_keyframe();
        }
        let frame = replay.next_frame().expect("replay");
        assert!(
            decoder.decode(&frame.data).expect("decode").is_some(),
            "replayed frame {i}"
        );
    }
}

#[test]
fn invalid_video_configs_are_rejected() {
    for config in [
        VideoConfig {
            width: 321,
            ..small_video()
        },
        VideoConfig {
            fps: 0,
            ..small_video()
        },
        VideoConfig {
            height: 4,
            ..small_video()
        },
    ] {
        assert!(matches!(
            VideoSource::new(config),
            Err(crate::MediaError::Config(_))
        ));
    }
}

#[test]
fn opus_packets_are_20ms_and_decode_to_a_tone() {
    for channels in [1u16, 2] {
        let config = AudioConfig {
            channels,
            ..AudioConfig::default()
        };
        let mut source = AudioSource::new(config).expect("opus encoder");
        let opus_channels = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut decoder = opus::Decoder::new(48_000, opus_channels).expect("opus decoder");
        let mut pcm = vec![0i16; 5760 * 2];
        let mut energy = 0f64;
        let mut samples = 0usize;
        for i in 0..50 {
            let packet = source.next_packet().expect("encode");
            assert!(!packet.is_empty() && packet.len() < 1500);
            // TOC (RFC 6716 §3.1): one frame of 20 ms, the channel count we asked for.
            assert_eq!(opus::packet::get_nb_frames(&packet).expect("toc"), 1);
            assert_eq!(
                opus::packet::get_nb_samples(&packet, 48_000).expect("toc"),
                960
            );
            let stereo_flag = packet[0] & 0x04 != 0;
            assert_eq!(stereo_flag, channels == 2);
            let n = decoder.decode(&packet, &mut pcm, false).expect("decode");
            assert_eq!(n, 960);
            if i >= 5 {
                // Skip the codec's start-up.
                let decoded = &pcm[..n * usize::from(channels)];
                energy += decoded.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                samples += decoded.len();
            }
        }
        let rms = (energy / samples as f64).sqrt();
        // A quarter-scale sine has an RMS of ~5800.
        assert!(rms > 3000.0, "rms {rms} for {channels} channel(s)");
    }
    assert_eq!(AudioConfig::default().rtp_timestamp_increment(), 960);
}

#[test]
fn invalid_audio_configs_are_rejected() {
    for config in [
        AudioConfig {
            sample_rate: 44_100,
            ..AudioConfig::default()
        },
        AudioConfig {
            frame_ms: 25,
            ..AudioConfig::default()
        },
        AudioConfig {
            channels: 3,
            ..AudioConfig::default()
        },
    ] {
        assert!(matches!(
            AudioSource::new(config),
            Err(crate::MediaError::Config(_))
        ));
    }
}
