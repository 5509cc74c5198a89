//! The media-section and codec summary of a WHIP/WHEP offer, as read at the HTTP edge to choose
//! codecs before a PeerConnection is built (RFC 8866 §5.14, §6). Pure data and queries.

/// The media type of an `m=` line (RFC 8866 §5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application` (WebRTC data channels).
    Application,
    /// Any other media type.
    Other,
}

impl MediaKind {
    /// The kind named by the first token of an `m=` line.
    pub fn from_media(name: &str) -> Self {
        match name {
            "audio" => Self::Audio,
            "video" => Self::Video,
            "application" => Self::Application,
            _ => Self::Other,
        }
    }
}

/// Stream direction attribute (RFC 8866 §6.7), seen from the offerer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv`, also the default when no direction is given (RFC 8866 §6.7.1).
    #[default]
    SendRecv,
    /// `a=sendonly`: what a WHIP publisher offers.
    SendOnly,
    /// `a=recvonly`: what a WHEP viewer offers.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction named by an attribute (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    pub fn from_attribute(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// The direction an answer takes for this offered direction (RFC 3264 §6.1).
    pub fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }
}

/// One RTP payload format offered in a media section: `a=rtpmap` plus `a=fmtp`
/// (RFC 8866 §6.6, §6.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type (0-127).
    pub pt: u8,
    /// Encoding name as written (e.g. `H264`, `opus`).
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (audio channels), when given.
    pub channels: Option<u16>,
    /// Format parameters in order, keys and values trimmed; a parameter without `=` has an
    /// empty value.
    pub fmtp: Vec<(String, String)>,
}

impl Codec {
    /// The value of format parameter `key` (compared ASCII case-insensitively).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// H.264 with `packetization-mode=1` (RFC 6184 §8.1: non-interleaved, STAP-A and FU-A).
    pub fn is_h264_mode1(&self) -> bool {
        self.name.eq_ignore_ascii_case("H264") && self.fmtp_param("packetization-mode") == Some("1")
    }

    /// Opus (RFC 7587 §7: `opus/48000/2`).
    pub fn is_opus(&self) -> bool {
        self.name.eq_ignore_ascii_case("opus")
    }

    /// H.264 `profile-level-id` (RFC 6184 §8.1), e.g. `42e01f`.
    pub fn profile_level_id(&self) -> Option<&str> {
        self.fmtp_param("profile-level-id")
    }

    /// Whether this is an RTX retransmission format (RFC 4588 §8: `rtx` with `apt`).
    pub fn is_rtx(&self) -> bool {
        self.name.eq_ignore_ascii_case("rtx")
    }
}

/// One `m=` section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// The media type.
    pub kind: MediaKind,
    /// `a=mid` (RFC 8843 §7), if present.
    pub mid: Option<String>,
    /// The section's direction, else the session-level one, else `SendRecv`.
    pub direction: Direction,
    /// Port 0: the section is rejected or disabled (RFC 3264 §5.1).
    pub port_zero: bool,
    /// Payload formats with an `a=rtpmap`, in `m=` line (preference) order; static payload types
    /// without an `a=rtpmap` are omitted.
    pub codecs: Vec<Codec>,
}

impl MediaSection {
    /// Whether the section is live (non-zero port) audio or video.
    pub fn is_active_rtp(&self) -> bool {
        !self.port_zero && matches!(self.kind, MediaKind::Audio | MediaKind::Video)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(name: &str, fmtp: &[(&str, &str)]) -> Codec {
        Codec {
            pt: 102,
            name: name.to_owned(),
            clock_rate: 90_000,
            channels: None,
            fmtp: fmtp
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn h264_mode_and_profile() {
        let c = codec(
            "h264",
            &[("Packetization-Mode", "1"), ("profile-level-id", "42e01f")],
        );
        assert!(c.is_h264_mode1());
        assert_eq!(c.profile_level_id(), Some("42e01f"));
        assert!(!codec("H264", &[("packetization-mode", "0")]).is_h264_mode1());
        assert!(!codec("H264", &[]).is_h264_mode1(), "mode 0 is the default");
        assert!(!codec("VP8", &[("packetization-mode", "1")]).is_h264_mode1());
    }

    #[test]
    fn opus_and_rtx() {
        assert!(codec("OPUS", &[]).is_opus());
        assert!(!codec("opus2", &[]).is_opus());
        assert!(codec("rtx", &[("apt", "96")]).is_rtx());
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::default(), Direction::SendRecv);
        assert_eq!(
            Direction::from_attribute("sendonly"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute("sendonly:x"), None);
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        assert_eq!(MediaKind::from_media("video"), MediaKind::Video);
        assert_eq!(MediaKind::from_media("text"), MediaKind::Other);
    }
}
