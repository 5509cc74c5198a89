//! Tests of the LL-HLS playlist parser (pure).

use super::*;

const LIVE: &str = r#"#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.660
#EXT-X-PART-INF:PART-TARGET=0.220
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="video-0000abcd-init-0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:40.000Z
#EXTINF:2.00000,
video-0000abcd-10.m4s
#EXTINF:2.00000,
video-0000abcd-11.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:44.000Z
#EXT-X-PART:DURATION=0.20000,URI="video-0000abcd-12.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="video-0000abcd-12.1.m4s"
#EXTINF:0.40000,
video-0000abcd-12.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:44.400Z
#EXT-X-PART:DURATION=0.20000,URI="video-0000abcd-13.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="video-0000abcd-13.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video-0000abcd-13.2.m4s"
#EXT-X-RENDITION-REPORT:URI="audio.m3u8",LAST-MSN=13,LAST-PART=1
"#;

#[test]
fn a_live_media_playlist() {
    let p = MediaPlaylist::parse(LIVE).expect("parses");
    assert_eq!(p.media_sequence, 10);
    assert_eq!(p.target_duration, 2.0);
    assert_eq!(p.part_target, Some(0.22));
    assert!(p.can_block_reload && !p.ended);
    assert_eq!(p.can_skip_until, Some(12.0));
    assert_eq!(p.map.as_deref(), Some("video-0000abcd-init-0.mp4"));
    assert_eq!(p.preload_hint.as_deref(), Some("video-0000abcd-13.2.m4s"));
    let msns: Vec<u64> = p.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, [10, 11, 12, 13]);
    assert!(p.segments[3].uri.is_none(), "13 is in progress");
    // 11 has no date-time of its own: 10's plus 2 s.
    let start = parse_date_time("2023-11-14T22:13:40.000Z").expect("date");
    assert_eq!(p.segments[1].start_ms, Some(start + 2000.0));
    assert_eq!(p.next_part(), Some((13, 2)));
    let parts: Vec<(u64, u32)> = p.parts().map(|r| (r.msn, r.index)).collect();
    assert_eq!(parts, [(12, 0), (12, 1), (13, 0), (13, 1)]);
    let last = p.parts().last().expect("a part");
    assert_eq!(last.part.uri, "video-0000abcd-13.1.m4s");
    let end = last.end_ms.expect("dated");
    assert!((end - (start + 4800.0)).abs() < 1e-6, "{end}");
    assert!(p.parts().next().expect("part").part.independent);
}

#[test]
fn a_complete_last_segment_asks_for_the_next_one() {
    let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.0,\na.m4s\n#EXT-X-ENDLIST\n";
    let p = MediaPlaylist::parse(text).expect("parses");
    assert_eq!(p.next_part(), Some((3 + 1, 0)));
    assert!(p.ended);
    assert!(MediaPlaylist::parse("hello").is_err());
    assert!(MediaPlaylist::parse("#EXTM3U\nlonely.m4s\n").is_err());
}

#[test]
fn skipped_segments_count_in_the_sequence() {
    let text =
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXTINF:2.0,\nb.m4s\n";
    let p = MediaPlaylist::parse(text).expect("parses");
    assert_eq!(p.segments[0].msn, 14);
}

#[test]
fn a_multivariant_playlist() {
    let text = r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Opus",DEFAULT=YES,CHANNELS="2",URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1234000,CODECS="avc1.42c01e,opus",RESOLUTION=640x360,AUDIO="audio"
video.m3u8
"#;
    let m = Multivariant::parse(text).expect("parses");
    assert_eq!(m.variants, ["video.m3u8"]);
    assert_eq!(m.renditions, ["audio.m3u8"]);
}

#[test]
fn attributes_and_dates() {
    let list = r#"A=1,B="x,y",C=YES"#;
    assert_eq!(attribute(list, "A"), Some("1"));
    assert_eq!(attribute(list, "B"), Some("x,y"));
    assert_eq!(attribute(list, "C"), Some("YES"));
    assert_eq!(attribute(list, "D"), None);
    assert_eq!(parse_date_time("1970-01-01T00:00:00.000Z"), Some(0.0));
    assert_eq!(
        parse_date_time("1970-01-02T00:00:01.500Z"),
        Some(86_401_500.0)
    );
    assert_eq!(
        parse_date_time("2023-11-14T23:13:40.000+01:00"),
        parse_date_time("2023-11-14T22:13:40.000Z")
    );
    assert_eq!(
        parse_date_time("2023-11-14T22:13:40.000Z"),
        Some(1_700_000_020_000.0)
    );
    assert!(parse_date_time("yesterday").is_none());
}
