//! Names of the HLS resources of a room (egress path: playlist URIs written by `playlist` and
//! parsed by the `egress::hls` HTTP handler). Every media URI carries the stream id, so a
//! restarted stream never reuses a cached URL. Pure.

use super::Rendition;

/// One resource under `/hls/{room}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `index.m3u8`, the multivariant playlist.
    Multivariant,
    /// `video.m3u8` / `audio.m3u8`.
    Playlist(Rendition),
    /// `{r}-{stream}-init-{version}.mp4`.
    Init {
        /// Which rendition.
        rendition: Rendition,
        /// Stream id.
        stream: u32,
        /// Init version (changes with the parameter sets).
        version: u32,
    },
    /// `{r}-{stream}-{msn}.m4s`.
    Segment {
        /// Which rendition.
        rendition: Rendition,
        /// Stream id.
        stream: u32,
        /// Media sequence number.
        msn: u64,
    },
    /// `{r}-{stream}-{msn}.{part}.m4s`.
    Part {
        /// Which rendition.
        rendition: Rendition,
        /// Stream id.
        stream: u32,
        /// Media sequence number of the parent segment.
        msn: u64,
        /// Part index inside it.
        index: u32,
    },
}

impl Resource {
    /// Parses a file name; `None` for anything onair never names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "index.m3u8" => return Some(Resource::Multivariant),
            "video.m3u8" => return Some(Resource::Playlist(Rendition::Video)),
            "audio.m3u8" => return Some(Resource::Playlist(Rendition::Audio)),
            _ => {}
        }
        let (rendition, rest) = if let Some(rest) = name.strip_prefix("video-") {
            (Rendition::Video, rest)
        } else {
            (Rendition::Audio, name.strip_prefix("audio-")?)
        };
        let (stream, rest) = rest.split_once('-')?;
        let stream = parse_hex(stream)?;
        if let Some(version) = rest
            .strip_prefix("init-")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(Resource::Init {
                rendition,
                stream,
                version: u32::try_from(parse_dec(version)?).ok()?,
            });
        }
        let rest = rest.strip_suffix(".m4s")?;
        match rest.split_once('.') {
            None => Some(Resource::Segment {
                rendition,
                stream,
                msn: parse_dec(rest)?,
            }),
            Some((msn, index)) => Some(Resource::Part {
                rendition,
                stream,
                msn: parse_dec(msn)?,
                index: u32::try_from(parse_dec(index)?).ok()?,
            }),
        }
    }

    /// The file name of this resource.
    pub fn name(&self) -> String {
        match *self {
            Resource::Multivariant => "index.m3u8".into(),
            Resource::Playlist(r) => format!("{}.m3u8", r.as_str()),
            Resource::Init {
                rendition,
                stream,
                version,
            } => format!("{}-{stream:08x}-init-{version}.mp4", rendition.as_str()),
            Resource::Segment {
                rendition,
                stream,
                msn,
            } => format!("{}-{stream:08x}-{msn}.m4s", rendition.as_str()),
            Resource::Part {
                rendition,
                stream,
                msn,
                index,
            } => format!("{}-{stream:08x}-{msn}.{index}.m4s", rendition.as_str()),
        }
    }
}

fn parse_hex(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

fn parse_dec(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all = [
            Resource::Multivariant,
            Resource::Playlist(Rendition::Audio),
            Resource::Init {
                rendition: Rendition::Video,
                stream: 0xdead_beef,
                version: 2,
            },
            Resource::Segment {
                rendition: Rendition::Audio,
                stream: 1,
                msn: 42,
            },
            Resource::Part {
                rendition: Rendition::Video,
                stream: 0x00ab_cdef,
                msn: 7,
                index: 3,
            },
        ];
        for r in all {
            assert_eq!(Resource::parse(&r.name()), Some(r), "{}", r.name());
        }
        assert_eq!(all[4].name(), "video-00abcdef-7.3.m4s");
    }

    #[test]
    fn anything_else_is_not_a_resource() {
        for bad in [
            "",
            "index.m3u",
            "video-1-3.m4s",
            "video-0000000g-3.m4s",
            "video-00000001-.m4s",
            "video-00000001-3.x.m4s",
            "video-00000001-+3.m4s",
            "subtitles-00000001-3.m4s",
            "video-00000001-init-1.m4s",
            "video-00000001-99999999999999999999.m4s",
            "../etc/passwd",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }
}
