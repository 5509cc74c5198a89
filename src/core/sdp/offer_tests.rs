//! Unit tests of the pure WHIP/WHEP offer check (`offer.rs`), on real-looking browser offers.

use super::*;

/// A Chrome WHIP offer (trimmed of ssrc/extmap lines): Opus audio, H.264 in several profiles
/// and packetization modes after VP8, and a data channel.
const CHROME_OFFER: &str = "v=0
o=- 4215775240449105457 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1 2
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Kx3V
a=ice-pwd:XGQqjvVUB1Y6pUlpVtnNBu3h
a=ice-options:trickle
a=fingerprint:sha-256 5C:3A:8E:11:0B:93:61:0F:DE:AA:10:02:47:8C:0D:5A:46:E1:C6:0F:6F:3C:17:29:33:5E:2D:41:4B:6F:A1:77
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendonly
a=msid:- 7a3e39e5-6c84-4f36-9d8a-24d2a0aa8b7e
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Kx3V
a=ice-pwd:XGQqjvVUB1Y6pUlpVtnNBu3h
a=ice-options:trickle
a=fingerprint:sha-256 5C:3A:8E:11:0B:93:61:0F:DE:AA:10:02:47:8C:0D:5A:46:E1:C6:0F:6F:3C:17:29:33:5E:2D:41:4B:6F:A1:77
a=setup:actpass
a=mid:1
a=sendonly
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:104 H264/90000
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f
a=rtpmap:105 rtx/90000
a=fmtp:105 apt=104
a=rtpmap:106 H264/90000
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:107 rtx/90000
a=fmtp:107 apt=106
a=rtpmap:108 H264/90000
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:109 rtx/90000
a=fmtp:109 apt=108
a=rtpmap:127 H264/90000
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f
a=rtpmap:125 rtx/90000
a=fmtp:125 apt=127
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:Kx3V
a=ice-pwd:XGQqjvVUB1Y6pUlpVtnNBu3h
a=ice-options:trickle
a=fingerprint:sha-256 5C:3A:8E:11:0B:93:61:0F:DE:AA:10:02:47:8C:0D:5A:46:E1:C6:0F:6F:3C:17:29:33:5E:2D:41:4B:6F:A1:77
a=setup:actpass
a=mid:2
a=sctp-port:5000
a=max-message-size:262144
";

/// A VP8-only WHEP offer with session-level credentials and direction.
const VP8_ONLY: &str = "v=0\r
o=- 1 1 IN IP4 0.0.0.0\r
s=-\r
t=0 0\r
a=ice-ufrag:abcd\r
a=ice-pwd:0123456789abcdef01234567\r
a=fingerprint:sha-256 AA:BB\r
a=recvonly\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r
a=mid:v\r
a=rtpmap:96 VP8/90000\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
";

#[test]
fn chrome_offer_summary() {
    let offer = parse_offer(CHROME_OFFER).expect("valid offer");
    assert_eq!(offer.media.len(), 3);
    assert_eq!(offer.ice_ufrag.as_deref(), Some("Kx3V"));
    let kinds: Vec<_> = offer.media.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [MediaKind::Audio, MediaKind::Video, MediaKind::Application]
    );
    let mids: Vec<_> = offer.media.iter().map(|m| m.mid.as_deref()).collect();
    assert_eq!(mids, [Some("0"), Some("1"), Some("2")]);
    assert_eq!(offer.media[0].direction, Direction::SendOnly);
    assert_eq!(offer.media[2].direction, Direction::SendRecv, "default");
    assert!(offer.media.iter().all(|m| !m.port_zero));
    assert!(offer.has_supported_codec());
    assert!(offer.has_data_channel());

    let h264: Vec<_> = offer
        .h264_in_offer_order()
        .iter()
        .map(|c| (c.pt, c.profile_level_id()))
        .collect();
    assert_eq!(
        h264,
        [
            (102, Some("42001f")),
            (106, Some("42e01f")),
            (127, Some("64001f"))
        ]
    );

    let opus = offer.first_opus().expect("opus offered");
    assert_eq!(
        (opus.pt, opus.clock_rate, opus.channels),
        (111, 48_000, Some(2))
    );
    assert_eq!(opus.fmtp_param("useinbandfec"), Some("1"));

    let video = &offer.media[1];
    let pts: Vec<u8> = video.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(
        pts,
        [96, 97, 102, 103, 104, 105, 106, 107, 108, 109, 127, 125]
    );
    assert_eq!(video.codecs[0].name, "VP8");
    assert_eq!(video.codecs[1].fmtp, [("apt".to_owned(), "96".to_owned())]);
    assert!(offer.media[2].codecs.is_empty());
}

#[test]
fn crlf_and_lf_parse_alike() {
    let crlf = CHROME_OFFER.replace('\n', "\r\n");
    assert_eq!(parse_offer(&crlf), parse_offer(CHROME_OFFER));
    let lf = VP8_ONLY.replace("\r\n", "\n");
    assert_eq!(parse_offer(&lf), parse_offer(VP8_ONLY));
}

#[test]
fn vp8_only_has_no_supported_codec() {
    let offer = parse_offer(VP8_ONLY).expect("valid offer");
    assert!(!offer.has_supported_codec());
    assert!(offer.h264_in_offer_order().is_empty());
    assert_eq!(offer.first_opus(), None);
    assert!(!offer.has_data_channel());
    assert_eq!(
        offer.media[0].direction,
        Direction::RecvOnly,
        "session-level"
    );
}

#[test]
fn port_zero_sections_do_not_count() {
    let offer = parse_offer(&CHROME_OFFER.replace("m=video 9", "m=video 0")).expect("valid");
    assert!(offer.media[1].port_zero);
    assert!(offer.h264_in_offer_order().is_empty());
    assert!(offer.has_supported_codec(), "Opus is still live");
    let audio_off = CHROME_OFFER
        .replace("m=video 9", "m=video 0")
        .replace("m=audio 9", "m=audio 0");
    let offer = parse_offer(&audio_off).expect("valid");
    assert!(!offer.has_supported_codec());
    assert_eq!(offer.first_opus(), None);
}

#[test]
fn fmtp_with_spaces_and_many_params() {
    let sdp = VP8_ONLY.replace(
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:96 h264/90000\r\na=fmtp:96  profile-level-id = 4d0032 ; packetization-mode=1;;\
         level-asymmetry-allowed=1; sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==; x",
    );
    let offer = parse_offer(&sdp).expect("valid");
    let codec = &offer.media[0].codecs[0];
    assert!(codec.is_h264_mode1());
    assert_eq!(codec.profile_level_id(), Some("4d0032"));
    assert_eq!(
        codec.fmtp_param("sprop-parameter-sets"),
        Some("Z0IAH5WoFAFuQA==,aM48gA==")
    );
    assert_eq!(codec.fmtp_param("x"), Some(""));
    assert_eq!(codec.fmtp.len(), 5);
    assert!(offer.has_supported_codec());
}

#[test]
fn rejects_empty_garbage_and_non_sdp() {
    assert_eq!(parse_offer(""), Err(SdpError::Empty));
    assert_eq!(parse_offer("\r\n  \n"), Err(SdpError::Empty));
    assert_eq!(parse_offer("hello world"), Err(SdpError::NotSdp));
    assert_eq!(parse_offer("{\"sdp\":\"v=0\"}"), Err(SdpError::NotSdp));
    assert_eq!(parse_offer("v=1\no=-\n"), Err(SdpError::NotSdp));
    assert_eq!(
        parse_offer("o=- 1 1 IN IP4 0.0.0.0\nv=0\n"),
        Err(SdpError::NotSdp)
    );
    let garbage = VP8_ONLY.replace("s=-", "this is not sdp");
    assert_eq!(parse_offer(&garbage), Err(SdpError::BadLine { line: 3 }));
    let binary = "v=0\n\u{0}\u{1}=\n";
    assert_eq!(parse_offer(binary), Err(SdpError::BadLine { line: 2 }));
}

#[test]
fn malformed_media_and_rtpmap_lines() {
    let no_fmt = VP8_ONLY.replace("m=video 9 UDP/TLS/RTP/SAVPF 96 97", "m=video 9 RTP/AVP");
    assert_eq!(parse_offer(&no_fmt), Err(SdpError::BadLine { line: 9 }));
    let bad_port = VP8_ONLY.replace("m=video 9 ", "m=video nine ");
    assert_eq!(parse_offer(&bad_port), Err(SdpError::BadLine { line: 9 }));
    let bad_clock = VP8_ONLY.replace("VP8/90000", "VP8/fast");
    assert_eq!(parse_offer(&bad_clock), Err(SdpError::BadLine { line: 11 }));
    let bad_pt = VP8_ONLY.replace("a=rtpmap:96", "a=rtpmap:200");
    assert_eq!(parse_offer(&bad_pt), Err(SdpError::BadLine { line: 11 }));
    // An rtpmap for a payload type not on the m= line is ignored.
    let stray = VP8_ONLY.replace("a=rtpmap:96 VP8", "a=rtpmap:98 VP8");
    let offer = parse_offer(&stray).expect("valid");
    assert_eq!(offer.media[0].codecs.len(), 1, "only rtx keeps an rtpmap");
}

#[test]
fn requires_media_ice_and_fingerprint() {
    let session_only = "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\na=ice-ufrag:x\na=fingerprint:y\n";
    assert_eq!(parse_offer(session_only), Err(SdpError::NoMedia));
    let no_ice = CHROME_OFFER.replace("a=ice-ufrag:Kx3V\n", "");
    assert_eq!(parse_offer(&no_ice), Err(SdpError::MissingIce));
    let empty_ice = VP8_ONLY.replace("a=ice-ufrag:abcd", "a=ice-ufrag:");
    assert_eq!(parse_offer(&empty_ice), Err(SdpError::MissingIce));
    let no_fp = VP8_ONLY.replace("a=fingerprint:sha-256 AA:BB\r\n", "");
    assert_eq!(parse_offer(&no_fp), Err(SdpError::MissingFingerprint));
    // Media-level credentials in one section are enough.
    let media_level = VP8_ONLY
        .replace("a=ice-ufrag:abcd\r\n", "")
        .replace("a=mid:v\r\n", "a=mid:v\r\na=ice-ufrag:m1\r\n");
    assert_eq!(
        parse_offer(&media_level)
            .expect("valid")
            .ice_ufrag
            .as_deref(),
        Some("m1")
    );
}

#[test]
fn size_limits() {
    let huge = format!("{CHROME_OFFER}a=x-pad:{}\n", "x".repeat(64 * 1024));
    assert_eq!(parse_offer(&huge), Err(SdpError::TooLarge));
    let many = format!("{CHROME_OFFER}{}", "a=x\n".repeat(4096));
    assert_eq!(parse_offer(&many), Err(SdpError::TooLarge));
}
