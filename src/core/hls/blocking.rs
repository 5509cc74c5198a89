//! Delivery directives and blocking playlist reload (RFC 8216bis §6.2.5): parsing `_HLS_msn`,
//! `_HLS_part` and `_HLS_skip`, and deciding per request and per wake-up whether to answer,
//! keep waiting, refuse (`400`) or give up (`503`); the same for hinted parts (§6.2.6).
//! Egress path: `egress::hls` HTTP handler -> here. Pure: the waited time is passed in.

use std::time::Duration;

use super::{HlsError, HlsTiming};

/// `_HLS_skip` (§6.2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Skip {
    /// No delta update asked for.
    #[default]
    No,
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: skip old segments and old date ranges (onair writes none).
    V2,
}

/// The delivery directives of one playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u64>,
    /// `_HLS_skip`.
    pub skip: Skip,
}

/// Parses the query string of a playlist request. Parameters not starting with `_HLS_` (a
/// token, cache busters) are ignored; reserved ones onair does not know are refused.
pub fn parse_directives(query: Option<&str>) -> Result<Directives, HlsError> {
    let mut d = Directives::default();
    let mut seen_skip = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => {
                if d.msn.is_some() {
                    return Err(HlsError::Repeated("_HLS_msn"));
                }
                d.msn = Some(decimal(value).ok_or(HlsError::NotAnInteger("_HLS_msn"))?);
            }
            "_HLS_part" => {
                if d.part.is_some() {
                    return Err(HlsError::Repeated("_HLS_part"));
                }
                d.part = Some(decimal(value).ok_or(HlsError::NotAnInteger("_HLS_part"))?);
            }
            "_HLS_skip" => {
                if seen_skip {
                    return Err(HlsError::Repeated("_HLS_skip"));
                }
                seen_skip = true;
                d.skip = match value {
                    "YES" => Skip::Yes,
                    "v2" => Skip::V2,
                    _ => return Err(HlsError::BadSkip),
                };
            }
            k if k.starts_with("_HLS_") => return Err(HlsError::UnknownDirective(k.into())),
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err(HlsError::PartWithoutMsn);
    }
    Ok(d)
}

/// RFC 8216bis §4.4.3.7 `decimal-integer`: digits only, fitting 64 bits.
fn decimal(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Where a media playlist stands, as far as blocking is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaylistPosition {
    /// Media sequence number of the last complete segment.
    pub last_segment: Option<u64>,
    /// `(msn, index)` of the last part published (it may belong to the segment in progress).
    pub last_part: Option<(u64, u64)>,
    /// The playlist has `EXT-X-ENDLIST`: directives are ignored (§6.2.5.2).
    pub ended: bool,
}

/// What to do with a playlist request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer with the current playlist.
    Ready,
    /// Hold the request until the playlist changes.
    Wait,
    /// `400`.
    BadRequest(HlsError),
    /// `503`: blocked for more than three target durations (§6.2.5.2).
    Unavailable,
}

/// The Advance Part Limit of §6.2.5.2: `3 / PART-TARGET` parts when the part target is under a
/// second, else three.
pub fn advance_part_limit(timing: &HlsTiming) -> u64 {
    let target = timing.part_target.as_secs_f64();
    if target < 1.0 {
        (3.0 / target).floor() as u64
    } else {
        3
    }
}

/// Decides a playlist request with directives `d` against `pos`, after having waited `waited`.
pub fn decide(
    d: &Directives,
    pos: &PlaylistPosition,
    timing: &HlsTiming,
    waited: Duration,
) -> Decision {
    if pos.ended {
        return Decision::Ready;
    }
    let Some(msn) = d.msn else {
        return Decision::Ready;
    };
    let last = pos.last_segment.map_or(-1, |m| m as i64);
    if msn as i128 > i128::from(last) + 2 {
        return Decision::BadRequest(HlsError::MsnTooFar {
            requested: msn,
            last,
        });
    }
    let ready = match d.part {
        None => pos.last_segment.is_some_and(|m| m >= msn),
        Some(part) => {
            let limit = advance_part_limit(timing);
            let (last_msn, last_index) = pos.last_part.unwrap_or((0, 0));
            let ahead = match msn.cmp(&last_msn) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => part.saturating_sub(last_index),
                // Counted from the start of a later segment: at least `part + 1` parts ahead.
                std::cmp::Ordering::Greater => part + 1,
            };
            if ahead > limit {
                return Decision::BadRequest(HlsError::PartTooFar { requested: part });
            }
            // "Part N of segment M or later"; a part index past the last part of a complete
            // segment means part 0 of the next one (§6.2.5.2), which the ordering gives too.
            pos.last_part.is_some_and(|p| p >= (msn, part))
        }
    };
    if ready {
        Decision::Ready
    } else if waited >= timing.block_limit() {
        Decision::Unavailable
    } else {
        Decision::Wait
    }
}

/// What to do with a request for a part (or a segment, with `index` `None`) that is not in
/// the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartDecision {
    /// It is the hinted part, or the segment in progress: hold the request (§6.2.6).
    Wait,
    /// `404`: never was, no longer is, or not coming soon.
    NotFound,
}

/// Decides a request for part `(msn, index)` (a whole segment when `index` is `None`) that is
/// not available yet, after having waited `waited`: only what the next `EXT-X-PRELOAD-HINT`
/// names (the part after the last, or part 0 of the next segment) or the segment in progress
/// is worth waiting for, and not longer than three target durations.
pub fn decide_part(
    msn: u64,
    index: Option<u64>,
    pos: &PlaylistPosition,
    timing: &HlsTiming,
    waited: Duration,
) -> PartDecision {
    if pos.ended || waited >= timing.block_limit() {
        return PartDecision::NotFound;
    }
    let next_segment = pos.last_segment.map_or(0, |m| m + 1);
    let upcoming = match index {
        None => msn == next_segment,
        Some(index) => {
            let (last_msn, last_index) = match pos.last_part {
                Some(p) => p,
                None => return PartDecision::from(msn == next_segment && index == 0),
            };
            // The part after the last one exists only while its segment is in progress.
            let in_progress = pos.last_segment.is_none_or(|s| s < last_msn);
            (in_progress && msn == last_msn && index == last_index + 1)
                || (msn == last_msn + 1 && index == 0)
                || (msn == next_segment && index == 0)
        }
    };
    PartDecision::from(upcoming)
}

impl From<bool> for PartDecision {
    fn from(wait: bool) -> Self {
        if wait {
            PartDecision::Wait
        } else {
            PartDecision::NotFound
        }
    }
}

#[cfg(test)]
#[path = "blocking_tests.rs"]
mod tests;
