//! Test/load client: the parts of HLS playlists an LL-HLS viewer needs (RFC 8216bis): variant
//! and rendition URIs of a multivariant playlist; segments, parts, program date-times, the
//! preload hint and the next part to block on in a media playlist. Pure, no I/O.

/// What a multivariant playlist points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multivariant {
    /// `EXT-X-STREAM-INF` URIs, in order.
    pub variants: Vec<String>,
    /// `EXT-X-MEDIA` URIs (alternative renditions such as audio), in order.
    pub renditions: Vec<String>,
}

impl Multivariant {
    /// Parses a multivariant playlist.
    pub fn parse(text: &str) -> Result<Self, String> {
        check_header(text)?;
        let mut out = Self::default();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if let Some(attrs) = line.strip_prefix("#EXT-X-MEDIA:") {
                if let Some(uri) = attribute(attrs, "URI") {
                    out.renditions.push(uri.to_owned());
                }
            } else if line.starts_with("#EXT-X-STREAM-INF:") {
                let uri = lines
                    .by_ref()
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                out.variants
                    .push(uri.ok_or("EXT-X-STREAM-INF without a URI")?.to_owned());
            }
        }
        Ok(out)
    }
}

/// One part (`EXT-X-PART`).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Its URI.
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
}

/// One media segment: complete (with a URI) or in progress (only parts so far).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// The segment's URI, `None` while in progress.
    pub uri: Option<String>,
    /// `EXTINF` seconds (0 while in progress).
    pub duration: f64,
    /// When its first sample was, Unix milliseconds (`EXT-X-PROGRAM-DATE-TIME`, or the
    /// previous segment's plus its duration).
    pub start_ms: Option<f64>,
    /// Its parts, in order.
    pub parts: Vec<Part>,
}

/// A part's place and its end on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartRef<'a> {
    /// Segment.
    pub msn: u64,
    /// Index in the segment.
    pub index: u32,
    /// The part.
    pub part: &'a Part,
    /// When its last sample ends, Unix milliseconds (from the program date-time).
    pub end_ms: Option<f64>,
}

/// A media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: f64,
    /// `PART-TARGET` of `EXT-X-PART-INF`, seconds.
    pub part_target: Option<f64>,
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
    /// `CAN-SKIP-UNTIL`, seconds: the server offers Playlist Delta Updates (`_HLS_skip=YES`).
    pub can_skip_until: Option<f64>,
    /// `EXT-X-MAP` URI.
    pub map: Option<String>,
    /// Segments, oldest first; the last may be in progress.
    pub segments: Vec<Segment>,
    /// `EXT-X-PRELOAD-HINT` URI of `TYPE=PART`.
    pub preload_hint: Option<String>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
}

impl MediaPlaylist {
    /// Parses a media playlist.
    pub fn parse(text: &str) -> Result<Self, String> {
        check_header(text)?;
        let mut p = Self::default();
        let mut skipped = 0u64;
        let mut current: Option<Segment> = None;
        let mut pending_pdt: Option<f64> = None;
        let mut pending_extinf: Option<f64> = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = v.parse().map_err(|_| format!("bad {line}"))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration = v.parse().map_err(|_| format!("bad {line}"))?;
            } else if let Some(a) = line.strip_prefix("#EXT-X-PART-INF:") {
                p.part_target = attribute(a, "PART-TARGET").and_then(|v| v.parse().ok());
            } else if let Some(a) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                p.can_block_reload = attribute(a, "CAN-BLOCK-RELOAD") == Some("YES");
                p.can_skip_until = attribute(a, "CAN-SKIP-UNTIL")
                    .and_then(|v| v.parse().ok())
                    .filter(|v: &f64| *v > 0.0);
            } else if let Some(a) = line.strip_prefix("#EXT-X-SKIP:") {
                skipped = attribute(a, "SKIPPED-SEGMENTS")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad {line}"))?;
            } else if let Some(a) = line.strip_prefix("#EXT-X-MAP:") {
                p.map = attribute(a, "URI").map(str::to_owned);
            } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                pending_pdt = Some(parse_date_time(v).ok_or_else(|| format!("bad {line}"))?);
            } else if let Some(a) = line.strip_prefix("#EXT-X-PART:") {
                let uri = attribute(a, "URI").ok_or_else(|| format!("no URI: {line}"))?;
                let duration = attribute(a, "DURATION")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no DURATION: {line}"))?;
                let msn = p.media_sequence + skipped + p.segments.len() as u64;
                let segment = current.get_or_insert_with(|| Segment {
                    msn,
                    uri: None,
                    duration: 0.0,
                    start_ms: None,
                    parts: Vec::new(),
                });
                segment.start_ms = segment.start_ms.or(pending_pdt.take());
                segment.parts.push(Part {
                    uri: uri.to_owned(),
                    duration,
                    independent: attribute(a, "INDEPENDENT") == Some("YES"),
                });
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let seconds = v.split(',').next().unwrap_or_default();
                pending_extinf = Some(seconds.parse().map_err(|_| format!("bad {line}"))?);
            } else if let Some(a) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                if attribute(a, "TYPE") == Some("PART") {
                    p.preload_hint = attribute(a, "URI").map(str::to_owned);
                }
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if !line.starts_with('#') {
                let duration = pending_extinf
                    .take()
                    .ok_or_else(|| format!("URI without EXTINF: {line}"))?;
                let msn = p.media_sequence + skipped + p.segments.len() as u64;
                let mut segment = current.take().unwrap_or(Segment {
                    msn,
                    uri: None,
                    duration: 0.0,
                    start_ms: None,
                    parts: Vec::new(),
                });
                segment.uri = Some(line.to_owned());
                segment.duration = duration;
                segment.start_ms = segment.start_ms.or(pending_pdt.take());
                p.push(segment);
            }
        }
        if let Some(segment) = current {
            p.push(segment);
        }
        Ok(p)
    }

    /// Appends a segment, deriving its start from the previous one when it has no date-time.
    fn push(&mut self, mut segment: Segment) {
        if segment.start_ms.is_none()
            && let Some(prev) = self.segments.last()
        {
            segment.start_ms = prev.start_ms.map(|s| s + prev.duration * 1000.0);
        }
        self.segments.push(segment);
    }

    /// Every listed part, oldest first, with its end on the wall clock.
    pub fn parts(&self) -> impl Iterator<Item = PartRef<'_>> {
        self.segments.iter().flat_map(|s| {
            let mut end = s.start_ms;
            s.parts.iter().enumerate().map(move |(i, part)| {
                end = end.map(|e| e + part.duration * 1000.0);
                PartRef {
                    msn: s.msn,
                    index: i as u32,
                    part,
                    end_ms: end,
                }
            })
        })
    }

    /// The part after the newest listed one, `(msn, index)`: what a blocking reload asks for
    /// (`_HLS_msn`, `_HLS_part`, RFC 8216bis §6.2.5.2).
    pub fn next_part(&self) -> Option<(u64, u32)> {
        let last = self.segments.last()?;
        Some(match last.uri {
            None => (last.msn, last.parts.len() as u32),
            Some(_) => (last.msn + 1, 0),
        })
    }
}

fn check_header(text: &str) -> Result<(), String> {
    if text.trim_start().starts_with("#EXTM3U") {
        Ok(())
    } else {
        Err("not a playlist (no #EXTM3U)".to_owned())
    }
}

/// The value of `key` in an attribute list (quotes removed), RFC 8216bis §4.2.
pub fn attribute<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => {
                let (v, t) = quoted.split_once('"')?;
                (v, t.strip_prefix(',').unwrap_or(t))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if name.trim() == key {
            return Some(value);
        }
        rest = tail;
    }
    None
}

/// An ISO 8601 date-time (`2023-11-14T22:13:40.000Z`, or with a `+hh:mm` offset) as Unix
/// milliseconds.
pub fn parse_date_time(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.splitn(3, '-').map(|v| v.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            c,
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
        )
    };
    let mut t = clock.splitn(3, ':');
    let (h, m) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 - offset_min * 60;
    Some(secs as f64 * 1000.0 + sec * 1000.0)
}

#[cfg(test)]
#[path = "playlist_tests.rs"]
mod tests;
