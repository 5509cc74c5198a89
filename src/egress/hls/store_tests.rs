//! Unit tests of the HLS store: segments are exactly their parts, memory stays in the window,
//! discontinuities are counted out, playlists are cached per change and gzip-able, and
//! blocked requests are woken per rendition.

use std::io::Read;

use super::*;

fn info() -> StreamInfo {
    StreamInfo {
        video_codec: Some("avc1.42c01e".into()),
        resolution: Some((320, 240)),
        audio_channels: Some(2),
    }
}

fn stream() -> HlsStream {
    HlsStream::new(
        0xabcd,
        HlsTiming::default(),
        info(),
        Some(Bytes::from_static(b"video-init")),
        Some(Bytes::from_static(b"audio-init")),
    )
}

fn part(msn: u64, index: u32, fill: u8, discontinuity: bool) -> NewPart {
    NewPart {
        msn,
        index,
        duration: 0.2,
        independent: index == 0,
        discontinuity,
        program_date_time_ms: 1_700_000_000_000 + msn * 2000 + u64::from(index) * 200,
        bytes: Bytes::from(vec![fill; 100 + index as usize]),
    }
}

fn fill_segment(s: &HlsStream, r: Rendition, msn: u64, parts: u32, discontinuity: bool) {
    for i in 0..parts {
        s.add_part(
            r,
            part(
                msn,
                i,
                (msn * 10 + u64::from(i)) as u8,
                discontinuity && i == 0,
            ),
        );
    }
    s.end_segment(r, msn, 0.2 * f64::from(parts));
}

#[test]
fn a_segment_is_exactly_the_bytes_of_its_parts() {
    let s = stream();
    let mut rx = s.subscribe(Rendition::Video);
    s.add_part(Rendition::Video, part(0, 0, 1, false));
    assert!(rx.has_changed().unwrap());
    rx.mark_unchanged();
    assert_eq!(
        s.position(Rendition::Video).unwrap().last_part,
        Some((0, 0))
    );
    assert_eq!(s.position(Rendition::Video).unwrap().last_segment, None);
    assert!(s.segment(Rendition::Video, 0).is_none(), "in progress");
    s.add_part(Rendition::Video, part(0, 1, 2, false));
    s.end_segment(Rendition::Video, 0, 0.4);
    let seg = s.segment(Rendition::Video, 0).unwrap();
    let p0 = s.part(Rendition::Video, 0, 0).unwrap();
    let p1 = s.part(Rendition::Video, 0, 1).unwrap();
    assert_eq!(seg.len(), 100 + 101);
    assert_eq!(&seg[..100], &p0[..]);
    assert_eq!(&seg[100..], &p1[..]);
    assert_eq!(s.position(Rendition::Video).unwrap().last_segment, Some(0));
    let text =
        String::from_utf8(s.playlist(Rendition::Video, false, false).unwrap().to_vec()).unwrap();
    assert!(text.contains("#EXT-X-MAP:URI=\"video-0000abcd-init-0.mp4\""));
    assert!(text.contains("#EXTINF:0.40000,\nvideo-0000abcd-0.m4s"));
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video-0000abcd-1.0.m4s\""));
    assert!(rx.has_changed().unwrap());
}

#[test]
fn memory_is_bounded_by_the_window() {
    let s = stream();
    for msn in 0..100 {
        fill_segment(&s, Rendition::Video, msn, 10, false);
    }
    let window = HlsTiming::default().window_segments as u64;
    let text =
        String::from_utf8(s.playlist(Rendition::Video, false, false).unwrap().to_vec()).unwrap();
    assert!(text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}", 100 - window)));
    // Segments leaving the playlist stay downloadable a little longer, then go.
    assert!(s.segment(Rendition::Video, 100 - window - 2).is_some());
    assert!(s.segment(Rendition::Video, 100 - window - 3).is_none());
    assert!(s.part(Rendition::Video, 10, 0).is_none());
    let per_segment: usize = (0..10).map(|i| 100 + i).sum();
    assert!(s.memory() <= (window as usize + 2) * per_segment + 100);
}

#[test]
fn discontinuities_and_new_inits() {
    let s = stream();
    fill_segment(&s, Rendition::Video, 0, 2, false);
    s.set_init(Rendition::Video, Bytes::from_static(b"new-init"), info());
    fill_segment(&s, Rendition::Video, 1, 2, true);
    let text =
        String::from_utf8(s.playlist(Rendition::Video, false, false).unwrap().to_vec()).unwrap();
    let disc = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
    let map = text.find("init-1.mp4").unwrap();
    assert!(disc < map && map < text.find("video-0000abcd-1.m4s").unwrap());
    assert_eq!(
        s.init(Rendition::Video, 1).unwrap(),
        Bytes::from_static(b"new-init")
    );
    assert_eq!(
        s.init(Rendition::Video, 0).unwrap(),
        Bytes::from_static(b"video-init")
    );
    // Once the discontinuity leaves the window, the sequence counts it.
    for msn in 2..30 {
        fill_segment(&s, Rendition::Video, msn, 1, false);
    }
    let text =
        String::from_utf8(s.playlist(Rendition::Video, false, false).unwrap().to_vec()).unwrap();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
}

#[test]
fn playlists_are_cached_per_change_and_gzip_decodes() {
    let s = stream();
    fill_segment(&s, Rendition::Audio, 0, 3, false);
    fill_segment(&s, Rendition::Video, 0, 3, false);
    let a = s.playlist(Rendition::Audio, false, false).unwrap();
    let b = s.playlist(Rendition::Audio, false, false).unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr(), "rendered once");
    let gz = s.playlist(Rendition::Audio, false, true).unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain.as_bytes(), &a[..]);
    assert!(plain.contains("#EXT-X-RENDITION-REPORT:URI=\"video.m3u8\",LAST-MSN=0,LAST-PART=2"));
    s.add_part(Rendition::Video, part(1, 0, 9, false));
    let c = s.playlist(Rendition::Audio, false, false).unwrap();
    assert_ne!(a, c, "the report of the other rendition changed");
    assert!(s.playlist(Rendition::Video, true, false).is_some());
}

#[test]
fn multivariant_and_end() {
    let s = stream();
    let m = s.multivariant();
    assert!(m.contains("BANDWIDTH=1100000,"), "{m}");
    fill_segment(&s, Rendition::Video, 0, 10, false);
    fill_segment(&s, Rendition::Audio, 0, 10, false);
    let m = s.multivariant();
    // (1045 + 1045) bytes in 2 s, +10 %, rounded up to kbit/s.
    assert!(m.contains("BANDWIDTH=10000,"), "{m}");
    assert!(m.contains("CODECS=\"avc1.42c01e,opus\",RESOLUTION=320x240,AUDIO=\"audio\""));
    s.end();
    assert!(s.is_ended());
    let text =
        String::from_utf8(s.playlist(Rendition::Video, false, false).unwrap().to_vec()).unwrap();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(s.position(Rendition::Video).unwrap().ended);
}

/// A part of one rendition wakes only the requests blocked on that rendition; a new init and
/// the end of the stream wake both. The lookup a media request does finds parts, segments, or
/// says where the playlist stands.
#[test]
fn wake_ups_follow_the_rendition() {
    let s = stream();
    let mut video = s.subscribe(Rendition::Video);
    let mut audio = s.subscribe(Rendition::Audio);
    assert_eq!(s.waiters(), 2);
    s.add_part(Rendition::Audio, part(0, 0, 1, false));
    assert!(!video.has_changed().unwrap());
    assert!(audio.has_changed().unwrap());
    audio.mark_unchanged();
    s.add_part(Rendition::Video, part(0, 0, 1, false));
    s.end_segment(Rendition::Video, 0, 0.2);
    assert!(video.has_changed().unwrap());
    assert!(!audio.has_changed().unwrap());
    video.mark_unchanged();
    assert!(matches!(
        s.lookup(Rendition::Video, 0, Some(0)),
        Lookup::Found(b) if b.len() == 100
    ));
    assert!(matches!(
        s.lookup(Rendition::Video, 0, None),
        Lookup::Found(_)
    ));
    assert!(matches!(
        s.lookup(Rendition::Video, 1, Some(0)),
        Lookup::Missing(p) if p.last_segment == Some(0) && p.last_part == Some((0, 0))
    ));
    s.set_init(Rendition::Video, Bytes::from_static(b"v2"), info());
    assert!(video.has_changed().unwrap() && audio.has_changed().unwrap());
    video.mark_unchanged();
    audio.mark_unchanged();
    s.end();
    assert!(video.has_changed().unwrap() && audio.has_changed().unwrap());
    drop(video);
    assert_eq!(s.waiters(), 1);
    let video_only = HlsStream::new(1, HlsTiming::default(), info(), Some(Bytes::new()), None);
    assert!(matches!(
        video_only.lookup(Rendition::Audio, 0, Some(0)),
        Lookup::NoRendition
    ));
}
