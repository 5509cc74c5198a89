//! Playlist text against golden files in `tests/data/hls/` (set `ONAIR_UPDATE_GOLDEN=1` to
//! rewrite them after an intended change, then review the diff). Pure.

use std::time::Duration;

use super::*;
use crate::core::hls::{Decision, Directives, decide};

fn golden(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hls")
        .join(name);
    if std::env::var_os("ONAIR_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ONAIR_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(text, expected, "{name} differs from its golden file");
}

const T0: u64 = 1_700_000_000_000;

fn part(msn: u64, i: u32, duration: f64, independent: bool) -> PartEntry {
    PartEntry {
        duration,
        independent,
        uri: format!("video-0000abcd-{msn}.{i}.m4s"),
    }
}

fn segment(msn: u64, parts: usize, complete: bool) -> SegmentEntry {
    let parts: Vec<PartEntry> = (0..parts)
        .map(|i| part(msn, i as u32, 0.2, i == 0))
        .collect();
    SegmentEntry {
        msn,
        duration: parts.iter().map(|p| p.duration).sum(),
        parts,
        complete,
        discontinuity: false,
        program_date_time_ms: T0 + msn * 2000,
        uri: format!("video-0000abcd-{msn}.m4s"),
        map_uri: "video-0000abcd-init-0.mp4".into(),
    }
}

/// Segments 10..=19 complete (10 parts of 0.2 s each), segment 20 in progress with 3 parts;
/// a discontinuity (new publisher, new init) at segment 18.
fn live() -> MediaPlaylist {
    let mut pl = MediaPlaylist::new(HlsTiming::default());
    for msn in 10..20 {
        let mut s = segment(msn, 10, true);
        if msn >= 18 {
            s.map_uri = "video-0000abcd-init-1.mp4".into();
        }
        s.discontinuity = msn == 18;
        pl.segments.push_back(s);
    }
    let mut current = segment(20, 3, false);
    current.map_uri = "video-0000abcd-init-1.mp4".into();
    pl.segments.push_back(current);
    pl.discontinuity_sequence = 2;
    pl.preload_hint = Some("video-0000abcd-20.3.m4s".into());
    pl.rendition_report = Some(RenditionReport {
        uri: "audio.m3u8".into(),
        last_msn: 20,
        last_part: 2,
    });
    pl
}

#[test]
fn live_playlist_matches_golden() {
    let text = live().render(false);
    golden("live.m3u8", &text);
    // The rules, stated once more in code.
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
    assert!(text.contains("PART-HOLD-BACK=0.660"));
    assert_eq!(text.matches("#EXT-X-PRELOAD-HINT").count(), 1);
    // Parts are listed for the last three target durations only (segments 17.. of 0..=20).
    assert!(!text.contains("video-0000abcd-16.9.m4s"));
    assert!(text.contains("video-0000abcd-17.0.m4s"));
}

#[test]
fn delta_update_matches_golden() {
    let text = live().render(true);
    golden("live-skip.m3u8", &text);
    // 12 s may be skipped: segments whose end is at least 12 s from the end (10..=13).
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
    assert!(!text.contains("video-0000abcd-13.m4s"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:10\n"));
}

#[test]
fn ended_playlist_matches_golden() {
    let mut pl = live();
    pl.segments.pop_back();
    pl.ended = true;
    pl.preload_hint = Some("ignored".into());
    let text = pl.render(true);
    golden("ended.m3u8", &text);
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(!text.contains("EXT-X-SKIP"), "no delta update once ended");
    // Directives are ignored once ended.
    let d = Directives {
        msn: Some(99),
        ..Directives::default()
    };
    assert_eq!(
        decide(&d, &pl.position(), &pl.timing, Duration::ZERO),
        Decision::Ready
    );
}

#[test]
fn position_of_a_live_playlist() {
    let pos = live().position();
    assert_eq!(pos.last_segment, Some(19));
    assert_eq!(pos.last_part, Some((20, 2)));
}

#[test]
fn multivariant_matches_golden() {
    let m = Multivariant {
        video_codec: Some("avc1.42c01e".into()),
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        audio_channels: Some(2),
        bandwidth: 1_234_000,
    };
    let text = m.render();
    golden("index.m3u8", &text);
    assert!(text.contains("CODECS=\"avc1.42c01e,opus\""));
    let video_only = Multivariant {
        audio_channels: None,
        frame_rate: None,
        ..m.clone()
    }
    .render();
    assert!(video_only.contains("CODECS=\"avc1.42c01e\",RESOLUTION=640x360\nvideo.m3u8"));
    assert!(!video_only.contains("EXT-X-MEDIA"));
    let audio_only = Multivariant {
        video_codec: None,
        resolution: None,
        ..m
    }
    .render();
    assert!(audio_only.contains("CODECS=\"opus\"\naudio.m3u8"));
}

#[test]
fn program_date_time_is_iso_8601_utc() {
    assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_pdt(T0 + 42), "2023-11-14T22:13:20.042Z");
    assert_eq!(format_pdt(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(format_pdt(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
}

/// A private room's token rides on every URI the playlists emit: segments, parts, the map,
/// the preload hint, the rendition report and the multivariant's media playlists.
#[test]
fn token_queries_reach_every_uri() {
    let q = "token=aaa.bbb.ccc";
    let text = with_query(&live().render(false), q);
    golden("live-token.m3u8", &text);
    let uris = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let attrs = text.matches("URI=\"").count();
    assert_eq!(attrs, text.matches("?token=aaa.bbb.ccc\"").count());
    assert!(attrs > 10, "parts, maps, hint and report");
    for uri in uris {
        assert!(uri.ends_with("?token=aaa.bbb.ccc"), "{uri}");
    }
    assert!(text.contains(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video-0000abcd-20.3.m4s?token=aaa.bbb.ccc\""
    ));
    assert!(
        text.contains("#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8?token=aaa.bbb.ccc\",LAST-MSN=20")
    );
    let m = Multivariant {
        video_codec: Some("avc1.42c01e".into()),
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        audio_channels: Some(2),
        bandwidth: 1_234_000,
    };
    let index = with_query(&m.render(), q);
    golden("index-token.m3u8", &index);
    assert!(index.contains("URI=\"audio.m3u8?token=aaa.bbb.ccc\""));
    assert!(index.contains("\nvideo.m3u8?token=aaa.bbb.ccc\n"));
    // An existing query gets `&`; no query leaves the text alone.
    assert_eq!(
        with_query("#EXTM3U\na.m4s?x=1\n", q),
        "#EXTM3U\na.m4s?x=1&token=aaa.bbb.ccc\n"
    );
    assert_eq!(with_query("#EXTM3U\na.m4s", ""), "#EXTM3U\na.m4s");
    assert_eq!(
        with_query("#EXTM3U\n\na.m4s", q),
        "#EXTM3U\n\na.m4s?token=aaa.bbb.ccc"
    );
}
