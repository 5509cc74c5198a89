//! LL-HLS through the real server: a WHIP publisher sends real H.264 (openh264) and Opus; the
//! playlists follow RFC 8216bis on the wire, and init + every segment and init + every part
//! pass ffprobe with monotonic DTS and a keyframe first.

use crate::common;
use crate::hls_common;

use common::{TestServer, assert_error};
use hls_common::*;

fn url(s: &TestServer, room: &str, file: &str) -> String {
    s.url(&format!("/hls/{room}/{file}"))
}

/// Every rule a player relies on, checked on one live media playlist.
fn assert_playlist_rules(pl: &MediaPlaylist, what: &str) {
    assert_eq!(pl.version, Some(9), "{what}");
    assert_eq!(pl.target_duration, 2, "{what}: fixed TARGETDURATION");
    assert!(pl.server_control.contains("CAN-BLOCK-RELOAD=YES"), "{what}");
    assert!(pl.server_control.contains("CAN-SKIP-UNTIL=12.0"), "{what}");
    let hold_back: f64 = pl
        .server_control
        .split("PART-HOLD-BACK=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hold_back >= 3.0 * pl.part_target - 1e-9,
        "{what}: PART-HOLD-BACK {hold_back}"
    );
    assert!((pl.part_target - 0.22).abs() < 1e-9, "{what}");
    if !pl.ended {
        assert_eq!(pl.preload_hints.len(), 1, "{what}: one PRELOAD-HINT");
    }
    assert!(!pl.segments.is_empty(), "{what}");
    for s in &pl.segments {
        assert!(s.program_date_time.is_some(), "{what}: PDT on {}", s.msn);
        assert!(!s.map.is_empty(), "{what}: EXT-X-MAP before {}", s.msn);
        if s.uri.is_some() {
            assert!(
                s.duration.round() as u64 <= pl.target_duration,
                "{what}: EXTINF {}",
                s.duration
            );
        }
        for (i, p) in s.parts.iter().enumerate() {
            let last = i + 1 == s.parts.len() && s.uri.is_some();
            assert!(
                p.duration <= pl.part_target + 1e-5,
                "{what}: part {} {}",
                p.uri,
                p.duration
            );
            assert!(
                p.duration >= 0.85 * pl.part_target - 1e-5 || p.independent || last,
                "{what}: part {} lasts {}",
                p.uri,
                p.duration
            );
        }
        if s.uri.is_some() && !s.parts.is_empty() {
            let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
            assert!(
                (sum - s.duration).abs() < 0.001,
                "{what}: parts add up to the segment"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ll_hls_while_live_plays_in_ffprobe_and_follows_the_rules() {
    let s = TestServer::start().await;
    let room = "hls";

    // Before anyone publishes: unknown room 404, JSON.
    assert_error(
        get(&url(&s, "nowhere", "index.m3u8")).await,
        404,
        "not_found",
    )
    .await;

    let publisher = publish(&s, room, "alice", true).await;
    let video = wait_playlist(&url(&s, room, "video.m3u8"), |pl| {
        pl.complete().count() >= 3
    })
    .await;
    let audio = wait_playlist(&url(&s, room, "audio.m3u8"), |pl| {
        pl.complete().count() >= 3
    })
    .await;
    assert_playlist_rules(&video, "video");
    assert_playlist_rules(&audio, "audio");
    assert!(video.rendition_reports[0].contains("URI=\"audio.m3u8\""));
    assert!(audio.rendition_reports[0].contains("URI=\"video.m3u8\""));
    // Segments start on IDRs the tap asked for (the encoder sends none by itself).
    for seg in video.complete() {
        assert!(
            seg.parts.is_empty() || seg.parts[0].independent,
            "segment {} starts with an IDR",
            seg.msn
        );
    }
    assert!(
        publisher.stats().plis_received >= 2,
        "{:?}",
        publisher.stats()
    );

    // The multivariant playlist names both codecs, Opus in lowercase.
    let index = get(&url(&s, room, "index.m3u8")).await;
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let index = index.text().await.unwrap();
    assert!(
        index.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\""),
        "{index}"
    );
    let codecs = index
        .split("CODECS=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (avc, opus) = codecs.split_once(',').unwrap();
    assert!(avc.starts_with("avc1.") && avc.len() == 11, "{codecs}");
    assert_eq!(opus, "opus");
    assert!(index.contains("RESOLUTION=320x240"));

    // init + each segment, init + each part: ffprobe, h264 / opus, DTS up, keyframe first.
    let dir = scratch_dir("hls-probe");
    for (pl, rendition, codec) in [(&video, "video", "h264"), (&audio, "audio", "opus")] {
        let init = bytes(&url(&s, room, &pl.segments[0].map)).await;
        for seg in pl.complete() {
            let media = bytes(&url(&s, room, seg.uri.as_ref().unwrap())).await;
            let path = write_file(
                &dir,
                &format!("{rendition}-{}.mp4", seg.msn),
                &[&init, &media],
            );
            let probe = ffprobe(&path);
            assert_eq!(probe.codecs, [codec], "{}", path.display());
            probe.assert_monotonic(&path.display().to_string());
            probe.assert_keyframe_first(0, &path.display().to_string());
            // A segment is exactly the bytes of its parts.
            if !seg.parts.is_empty() {
                let mut joined = Vec::new();
                for p in &seg.parts {
                    let part = bytes(&url(&s, room, &p.uri)).await;
                    let path = write_file(&dir, "part.mp4", &[&init, &part]);
                    let probe = ffprobe(&path);
                    assert_eq!(probe.codecs, [codec], "{}", p.uri);
                    probe.assert_monotonic(&p.uri);
                    if p.independent {
                        probe.assert_keyframe_first(0, &p.uri);
                    }
                    joined.extend(part);
                }
                assert_eq!(joined, media, "segment {} = its parts", seg.msn);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Headers: gzip playlists, immutable media.
    let client = reqwest::Client::new();
    let gz = client
        .get(url(&s, room, "video.m3u8"))
        .header("accept-encoding", "gzip")
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    // A player on another origin may read it, and a cache keys it on both the encoding and
    // the CORS request headers (both `Vary` values kept).
    assert_eq!(gz.headers()["access-control-allow-origin"], "*");
    let vary: Vec<String> = gz
        .headers()
        .get_all("vary")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap()
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
        })
        .collect();
    assert!(
        vary.iter().any(|t| t == "accept-encoding") && vary.iter().any(|t| t == "origin"),
        "{vary:?}"
    );
    assert_eq!(
        gz.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let seg_uri = video.complete().next().unwrap().uri.clone().unwrap();
    let seg = get(&url(&s, room, &seg_uri)).await;
    assert_eq!(seg.headers()["access-control-allow-origin"], "*");
    assert!(
        seg.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );

    // Blocking reload: ask for the part after the last one; it comes.
    let now = wait_playlist(&url(&s, room, "video.m3u8"), |_| true).await;
    let (msn, part) = now.last_part().unwrap();
    let next = format!("video.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let blocked = get(&url(&s, room, &next)).await;
    assert_eq!(blocked.status(), 200);
    let after = MediaPlaylist::parse(&blocked.text().await.unwrap());
    assert!(
        after.last_part().unwrap() > (msn, part),
        "the playlist moved on"
    );
    // The hinted part blocks until it is complete, then arrives whole.
    let hint = after.preload_hints[0].clone();
    let hinted = get(&url(&s, room, &hint)).await;
    assert_eq!(hinted.status(), 200, "{hint}");
    // Delta update.
    let delta = text(&url(&s, room, "video.m3u8?_HLS_skip=YES")).await;
    assert!(delta.contains("#EXTM3U"));
    // Bad directives: 400 JSON.
    for bad in [
        "_HLS_part=1",
        "_HLS_msn=x",
        "_HLS_msn=99999",
        "_HLS_skip=no",
    ] {
        let r = get(&url(&s, room, &format!("video.m3u8?{bad}"))).await;
        assert_error(r, 400, "bad_directive").await;
    }
    assert_error(
        get(&url(&s, room, "video-00000000-1.m4s")).await,
        404,
        "not_found",
    )
    .await;

    publisher.close().await.unwrap();
    // With nobody live, a request for a segment that never comes gives up with 503 after
    // three target durations.
    let last = wait_playlist(&url(&s, room, "video.m3u8"), |pl| {
        pl.segments.iter().all(|s| s.uri.is_some())
    })
    .await;
    let msn = last.segments.last().unwrap().msn + 2;
    let r = get(&url(&s, room, &format!("video.m3u8?_HLS_msn={msn}"))).await;
    assert_error(r, 503, "not_ready").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_returning_broadcaster_continues_the_playlist_after_a_discontinuity() {
    let s = TestServer::start().await;
    let room = "again";
    // A room that exists but has no stream: 503 with Retry-After, JSON.
    s.server.app().rooms.get_or_create(room);
    let r = get(&url(&s, room, "index.m3u8")).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_error(r, 503, "not_live").await;

    let first = publish(&s, room, "bob", true).await;
    let before = wait_playlist(&url(&s, room, "video.m3u8"), |pl| {
        pl.complete().count() >= 2
    })
    .await;
    first.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = publish(&s, room, "bob", true).await;
    let has_new = |pl: &MediaPlaylist| {
        pl.segments
            .iter()
            .position(|s| s.discontinuity)
            .is_some_and(|i| pl.segments[i..].iter().filter(|s| s.uri.is_some()).count() >= 2)
    };
    for rendition in ["video", "audio"] {
        let pl = wait_playlist(&url(&s, room, &format!("{rendition}.m3u8")), has_new).await;
        assert_playlist_rules(&pl, rendition);
        assert_eq!(
            pl.segments.iter().filter(|s| s.discontinuity).count(),
            1,
            "{}",
            pl.text
        );
        // The same stream goes on: same media sequence, same URIs, numbers keep counting.
        assert_eq!(pl.media_sequence, before.media_sequence);
        let msns: Vec<u64> = pl.segments.iter().map(|s| s.msn).collect();
        assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
        let at = pl.segments.iter().position(|s| s.discontinuity).unwrap();
        let (old, new) = (&pl.segments[at - 1], &pl.segments[at]);
        assert!(
            new.program_date_time > old.program_date_time,
            "PDT moves on"
        );
        // The first segment of the new session decodes on its own.
        let dir = scratch_dir("hls-disc");
        let init = bytes(&url(&s, room, &new.map)).await;
        let media = bytes(&url(&s, room, new.uri.as_ref().unwrap())).await;
        let probe = ffprobe(&write_file(&dir, "new.mp4", &[&init, &media]));
        probe.assert_keyframe_first(0, "first segment after the discontinuity");
        probe.assert_monotonic("first segment after the discontinuity");
        let _ = std::fs::remove_dir_all(&dir);
    }
    second.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_video_only_broadcast_has_no_audio_rendition() {
    let s = TestServer::start().await;
    let room = "mute";
    let publisher = publish(&s, room, "carol", false).await;
    let video = wait_playlist(&url(&s, room, "video.m3u8"), |pl| {
        pl.complete().count() >= 1
    })
    .await;
    assert_playlist_rules(&video, "video");
    assert!(
        video.rendition_reports.is_empty(),
        "no other rendition to report"
    );
    let index = text(&url(&s, room, "index.m3u8")).await;
    assert!(!index.contains("EXT-X-MEDIA"), "{index}");
    let codecs = index
        .split("CODECS=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        codecs.starts_with("avc1.") && !codecs.contains(','),
        "{codecs}"
    );
    assert_error(get(&url(&s, room, "audio.m3u8")).await, 404, "not_found").await;
    publisher.close().await.unwrap();
    s.stop().await;
}
