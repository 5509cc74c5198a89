//! WHIP/WHEP offer check at the HTTP edge (RFC 9725 §4.2, SDP per RFC 8866): is this an SDP
//! offer, which media and codecs does it carry, does it carry ICE and DTLS credentials. Pure.

use super::error::SdpError;
use super::lines::split_lines;
use super::media::{Codec, Direction, MediaKind, MediaSection};

/// What onair needs to know about an offer before building a PeerConnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSummary {
    /// The `m=` sections in order.
    pub media: Vec<MediaSection>,
    /// The first `a=ice-ufrag` value (session or media level), to spot ICE restarts later.
    pub ice_ufrag: Option<String>,
}

impl OfferSummary {
    /// Whether any live audio/video section offers H.264 packetization-mode 1 or Opus
    /// (onair's codecs; an offer without them is refused).
    pub fn has_supported_codec(&self) -> bool {
        self.media
            .iter()
            .filter(|m| m.is_active_rtp())
            .flat_map(|m| &m.codecs)
            .any(|c| c.is_h264_mode1() || c.is_opus())
    }

    /// H.264 packetization-mode 1 formats of live video sections, in the offerer's preference
    /// order (RFC 3264 §5.1: the `m=` line lists formats in preference order).
    pub fn h264_in_offer_order(&self) -> Vec<&Codec> {
        self.media
            .iter()
            .filter(|m| m.kind == MediaKind::Video && !m.port_zero)
            .flat_map(|m| &m.codecs)
            .filter(|c| c.is_h264_mode1())
            .collect()
    }

    /// The first Opus format of a live audio section.
    pub fn first_opus(&self) -> Option<&Codec> {
        self.media
            .iter()
            .filter(|m| m.kind == MediaKind::Audio && !m.port_zero)
            .flat_map(|m| &m.codecs)
            .find(|c| c.is_opus())
    }

    /// Whether a live `m=application` section (WebRTC data channels, RFC 8841) is offered.
    pub fn has_data_channel(&self) -> bool {
        self.media
            .iter()
            .any(|m| m.kind == MediaKind::Application && !m.port_zero)
    }
}

/// Parse and check a WHIP/WHEP offer body (`application/sdp`).
///
/// Refuses bodies over 64 KiB or 4096 lines, bodies not starting with `v=0`, lines not of the
/// form `<letter>=<value>` (LF or CRLF endings), offers without `m=` sections, and offers without
/// `a=ice-ufrag` or `a=fingerprint` at session or media level (RFC 9725 §4.2 requires ICE and
/// DTLS-SRTP).
pub fn parse_offer(sdp: &str) -> Result<OfferSummary, SdpError> {
    let mut lines = split_lines(sdp)?;
    if lines
        .next()
        .is_none_or(|first| first.text.trim_end() != "v=0")
    {
        return Err(SdpError::NotSdp);
    }
    let mut session_direction = None;
    let mut sections: Vec<(MediaSection, Option<Direction>)> = Vec::new();
    let mut ice_ufrag = None;
    let mut has_fingerprint = false;
    for line in lines {
        let (kind, value) = line.typed()?;
        let bad = SdpError::BadLine { line: line.number };
        if kind == b'm' {
            sections.push((parse_m_line(value).ok_or(bad)?, None));
            continue;
        }
        if kind != b'a' {
            continue;
        }
        let (name, arg) = match value.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (value, None),
        };
        let current = sections.last_mut();
        match (name, arg, current) {
            ("ice-ufrag", Some(ufrag), _) if !ufrag.trim().is_empty() => {
                ice_ufrag.get_or_insert_with(|| ufrag.trim().to_owned());
            }
            ("fingerprint", Some(fp), _) if !fp.trim().is_empty() => has_fingerprint = true,
            (_, None, section) => {
                if let Some(direction) = Direction::from_attribute(name) {
                    match section {
                        Some((_, own)) => *own = Some(direction),
                        None => session_direction = Some(direction),
                    }
                }
            }
            ("mid", Some(mid), Some((section, _))) => section.mid = Some(mid.trim().to_owned()),
            ("rtpmap", Some(map), Some((section, _))) => apply_rtpmap(section, map).ok_or(bad)?,
            ("fmtp", Some(fmtp), Some((section, _))) => apply_fmtp(section, fmtp),
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(SdpError::NoMedia);
    }
    if ice_ufrag.is_none() {
        return Err(SdpError::MissingIce);
    }
    if !has_fingerprint {
        return Err(SdpError::MissingFingerprint);
    }
    let media = sections
        .into_iter()
        .map(|(mut section, own)| {
            section.direction = own.or(session_direction).unwrap_or_default();
            section.codecs.retain(|c| !c.name.is_empty());
            section
        })
        .collect();
    Ok(OfferSummary { media, ice_ufrag })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 8866 §5.14). Numeric formats become
/// codec slots that `a=rtpmap` fills in; `None` if malformed.
fn parse_m_line(value: &str) -> Option<MediaSection> {
    let mut tokens = value.split_ascii_whitespace();
    let kind = MediaKind::from_media(tokens.next()?);
    let port_text = tokens.next()?;
    let port: u16 = port_text.split('/').next()?.parse().ok()?;
    let _proto = tokens.next()?;
    let mut codecs: Vec<Codec> = Vec::new();
    let mut formats = 0;
    for fmt in tokens {
        formats += 1;
        if let Some(pt) = fmt.parse::<u8>().ok().filter(|pt| *pt <= 127)
            && !codecs.iter().any(|c| c.pt == pt)
        {
            codecs.push(Codec {
                pt,
                name: String::new(),
                clock_rate: 0,
                channels: None,
                fmtp: Vec::new(),
            });
        }
    }
    (formats > 0).then_some(MediaSection {
        kind,
        mid: None,
        direction: Direction::SendRecv,
        port_zero: port == 0,
        codecs,
    })
}

/// `a=rtpmap:<pt> <name>/<clock rate>[/<channels>]` (RFC 8866 §6.6); `None` if malformed.
/// A payload type missing from the `m=` line is ignored.
fn apply_rtpmap(section: &mut MediaSection, value: &str) -> Option<()> {
    let (pt, encoding) = value.trim().split_once(' ')?;
    let pt: u8 = pt.parse().ok().filter(|pt| *pt <= 127)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let clock_rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(ch) => Some(ch.trim().parse::<u16>().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    if let Some(codec) = section.codecs.iter_mut().find(|c| c.pt == pt) {
        codec.name = name.to_owned();
        codec.clock_rate = clock_rate;
        codec.channels = channels;
    }
    Some(())
}

/// `a=fmtp:<pt> <k>=<v>;<k>=<v>` (RFC 8866 §6.15). Non-numeric formats (legacy data channel
/// syntax) and payload types missing from the `m=` line are ignored.
fn apply_fmtp(section: &mut MediaSection, value: &str) {
    let value = value.trim_start();
    let (pt, params) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    let Ok(pt) = pt.parse::<u8>() else {
        return;
    };
    let Some(codec) = section.codecs.iter_mut().find(|c| c.pt == pt) else {
        return;
    };
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        codec
            .fmtp
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
#[path = "offer_tests.rs"]
mod tests;
