//! Trickle-ICE SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840 §9) carried by WHIP and
//! WHEP PATCH requests (RFC 9725 §4.3) at the HTTP edge: candidates per media, end of candidates,
//! ICE restarts. Pure.

use super::error::SdpError;
use super::lines::split_lines;

/// The candidates a fragment trickles for one media section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FragMedia {
    /// `a=mid` of the section; `None` for candidates given before any `m=` line.
    pub mid: Option<String>,
    /// Each `a=candidate` attribute without the `a=` (`candidate:...`), as an
    /// `RTCIceCandidateInit.candidate` string (RFC 8839 §5.1).
    pub candidates: Vec<String>,
    /// `a=end-of-candidates` was given for this section, or at session level (RFC 8840).
    pub end_of_candidates: bool,
}

/// A parsed trickle-ICE fragment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdpFrag {
    /// `a=ice-ufrag` (session or media level, first one wins).
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd` (session or media level, first one wins).
    pub ice_pwd: Option<String>,
    /// Media sections in order.
    pub media: Vec<FragMedia>,
}

impl SdpFrag {
    /// Whether the fragment asks for an ICE restart: it carries a ufrag different from the
    /// current one (RFC 9725 §4.3.2).
    pub fn is_ice_restart(&self, current_ufrag: &str) -> bool {
        self.ice_ufrag
            .as_deref()
            .is_some_and(|ufrag| ufrag != current_ufrag)
    }

    /// All candidates with the mid they belong to, in order.
    pub fn candidates(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.media.iter().flat_map(|m| {
            m.candidates
                .iter()
                .map(move |c| (m.mid.as_deref(), c.as_str()))
        })
    }
}

/// Parse a PATCH body of type `application/trickle-ice-sdpfrag` (RFC 8840 §9).
///
/// Same size limits and line syntax as offers (64 KiB, 4096 lines, `<letter>=<value>`); no
/// `v=` line is needed. Candidates before any `m=` line go to an implicit first media with no
/// mid; a session-level `a=end-of-candidates` marks every media section.
pub fn parse_sdpfrag(body: &str) -> Result<SdpFrag, SdpError> {
    let mut frag = SdpFrag::default();
    let mut session_end = false;
    let mut in_media = false;
    for line in split_lines(body)? {
        let (kind, value) = line.typed()?;
        if kind == b'm' {
            frag.media.push(FragMedia::default());
            in_media = true;
            continue;
        }
        if kind != b'a' {
            continue;
        }
        let (name, arg) = match value.split_once(':') {
            Some((name, arg)) => (name, Some(arg.trim())),
            None => (value.trim_end(), None),
        };
        match (name, arg) {
            ("ice-ufrag", Some(ufrag)) if !ufrag.is_empty() => {
                frag.ice_ufrag.get_or_insert_with(|| ufrag.to_owned());
            }
            ("ice-pwd", Some(pwd)) if !pwd.is_empty() => {
                frag.ice_pwd.get_or_insert_with(|| pwd.to_owned());
            }
            ("candidate", Some(candidate)) => {
                if candidate.is_empty() {
                    return Err(SdpError::BadLine { line: line.number });
                }
                let media = current_media(&mut frag.media);
                media.candidates.push(value.trim().to_owned());
            }
            ("end-of-candidates", None) => {
                if in_media {
                    current_media(&mut frag.media).end_of_candidates = true;
                } else {
                    session_end = true;
                }
            }
            ("mid", Some(mid)) if in_media => {
                current_media(&mut frag.media).mid = Some(mid.to_owned());
            }
            _ => {}
        }
    }
    if session_end {
        if frag.media.is_empty() {
            frag.media.push(FragMedia::default());
        }
        frag.media
            .iter_mut()
            .for_each(|m| m.end_of_candidates = true);
    }
    Ok(frag)
}

/// The media section attributes currently apply to, creating the implicit first one.
fn current_media(media: &mut Vec<FragMedia>) -> &mut FragMedia {
    if media.is_empty() {
        media.push(FragMedia::default());
    }
    let last = media.len() - 1;
    &mut media[last]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trickle example of RFC 9725 §4.3.1, mid changed to "0" as browsers send it.
    const TRICKLE: &str = "a=ice-ufrag:EsAw\r
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r
m=audio 9 RTP/AVP 0\r
a=mid:0\r
a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r
a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r
a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r
a=end-of-candidates\r
";

    #[test]
    fn rfc9725_trickle_example() {
        let frag = parse_sdpfrag(TRICKLE).expect("valid");
        assert_eq!(frag.ice_ufrag.as_deref(), Some("EsAw"));
        assert_eq!(frag.ice_pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
        assert_eq!(frag.media.len(), 1);
        let m = &frag.media[0];
        assert_eq!(m.mid.as_deref(), Some("0"));
        assert!(m.end_of_candidates);
        assert_eq!(m.candidates.len(), 3);
        assert_eq!(
            m.candidates[0],
            "candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 \
             ufrag EsAw network-id 1"
        );
        assert!(m.candidates[2].starts_with("candidate:473322822 1 tcp "));
        assert!(!frag.is_ice_restart("EsAw"));
        assert!(frag.is_ice_restart("older"));
        assert_eq!(
            frag,
            parse_sdpfrag(&TRICKLE.replace("\r\n", "\n")).expect("LF")
        );
    }

    #[test]
    fn several_media_and_candidate_listing() {
        let body = "a=ice-options:trickle\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:a\n\
                    a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\n\
                    m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:v\na=ice-ufrag:late\n\
                    a=candidate:2 1 udp 1 192.0.2.1 5002 typ host\na=end-of-candidates\n";
        let frag = parse_sdpfrag(body).expect("valid");
        let mids: Vec<_> = frag.media.iter().map(|m| m.mid.as_deref()).collect();
        assert_eq!(mids, [Some("a"), Some("v")]);
        assert_eq!(
            frag.media
                .iter()
                .map(|m| m.end_of_candidates)
                .collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(frag.ice_ufrag.as_deref(), Some("late"), "media-level ufrag");
        let all: Vec<_> = frag.candidates().collect();
        assert_eq!(
            all[0],
            (Some("a"), "candidate:1 1 udp 1 192.0.2.1 5000 typ host")
        );
        assert_eq!(all[1].0, Some("v"));
    }

    #[test]
    fn session_level_candidates_and_end() {
        let body = "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\na=end-of-candidates\n";
        let frag = parse_sdpfrag(body).expect("valid");
        assert_eq!(frag.media.len(), 1);
        assert_eq!(frag.media[0].mid, None);
        assert_eq!(frag.media[0].candidates.len(), 1);
        assert!(frag.media[0].end_of_candidates);
        assert!(!frag.is_ice_restart("any"), "no ufrag, no restart");

        let only_end = parse_sdpfrag("a=end-of-candidates").expect("valid");
        assert_eq!(
            only_end.media,
            [FragMedia {
                end_of_candidates: true,
                ..FragMedia::default()
            }]
        );
    }

    #[test]
    fn ice_restart_fragment() {
        let body =
            "a=ice-ufrag:newU\na=ice-pwd:newpasswordnewpassword1\nm=audio 9 RTP/AVP 0\na=mid:0\n";
        let frag = parse_sdpfrag(body).expect("valid");
        assert!(frag.is_ice_restart("oldU"));
        assert!(frag.media[0].candidates.is_empty());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse_sdpfrag(""), Err(SdpError::Empty));
        assert_eq!(parse_sdpfrag("\r\n"), Err(SdpError::Empty));
        assert_eq!(
            parse_sdpfrag("a=mid:0\nnot a line\n"),
            Err(SdpError::BadLine { line: 2 })
        );
        assert_eq!(
            parse_sdpfrag("a=candidate:\n"),
            Err(SdpError::BadLine { line: 1 })
        );
        let many = "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\n".repeat(4097);
        assert_eq!(parse_sdpfrag(&many), Err(SdpError::TooLarge));
    }
}
