//! `HlsStream`: the in-memory LL-HLS state of one room (egress path: the tap writes parts and
//! segments here; the HTTP handlers read playlists and media, waiting on its version). Memory
//! is bounded: a sliding window of segments, each part a slice of its segment's bytes once the
//! segment is complete, inits kept per version. One short `std` lock, never held across an
//! await; waiters watch a version counter. Does no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::Mutex;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::watch;

use crate::core::hls::{
    HlsTiming, MediaPlaylist, Multivariant, PartEntry, PlaylistPosition, Rendition,
    RenditionReport, Resource, SegmentEntry,
};

/// Segments kept downloadable after they leave the playlist (RFC 8216bis §6.2.2: a segment
/// stays available for its duration plus the playlist's after it first appeared).
const EXTRA_SEGMENTS: u64 = 2;
/// Init versions kept (a new one comes with new parameter sets).
const INIT_VERSIONS: usize = 4;

/// What the multivariant playlist says about the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// RFC 6381 codec of the video (`avc1.PPCCLL`), or `None` for audio only.
    pub video_codec: Option<String>,
    /// Picture size.
    pub resolution: Option<(u32, u32)>,
    /// Opus channels, or `None` without audio.
    pub audio_channels: Option<u8>,
}

/// A part as the tap hands it over.
#[derive(Debug, Clone)]
pub struct NewPart {
    /// Parent segment.
    pub msn: u64,
    /// Index in it.
    pub index: u32,
    /// Seconds.
    pub duration: f64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// First part of a segment after a discontinuity.
    pub discontinuity: bool,
    /// Wall clock of its first sample (Unix ms), for `EXT-X-PROGRAM-DATE-TIME`.
    pub program_date_time_ms: u64,
    /// `moof` + `mdat`.
    pub bytes: Bytes,
}

/// What a media request finds in the store.
#[derive(Debug)]
pub enum Lookup {
    /// The stream has no such rendition.
    NoRendition,
    /// The part or segment.
    Found(Bytes),
    /// Not there (yet, or any more): where the playlist stands, for the blocking decision.
    Missing(PlaylistPosition),
}

#[derive(Debug)]
struct RenditionStore {
    playlist: MediaPlaylist,
    inits: VecDeque<(u32, Bytes)>,
    parts: HashMap<(u64, u32), Bytes>,
    open_parts: Vec<Bytes>,
    segments: BTreeMap<u64, Bytes>,
    /// Bytes and seconds per segment, for `BANDWIDTH`.
    sizes: BTreeMap<u64, (usize, f64)>,
}

impl RenditionStore {
    fn new(timing: HlsTiming, init: Bytes) -> Self {
        Self {
            playlist: MediaPlaylist::new(timing),
            inits: VecDeque::from([(0, init)]),
            parts: HashMap::new(),
            open_parts: Vec::new(),
            segments: BTreeMap::new(),
            sizes: BTreeMap::new(),
        }
    }

    fn init_version(&self) -> u32 {
        self.inits.back().map_or(0, |(v, _)| *v)
    }

    fn last_part(&self) -> Option<(u64, u64)> {
        self.playlist.position().last_part
    }
}

#[derive(Debug)]
struct Inner {
    video: Option<RenditionStore>,
    audio: Option<RenditionStore>,
    info: StreamInfo,
    ended: bool,
    version: u64,
    cache: HashMap<(Rendition, bool, bool), (u64, Bytes)>,
}

impl Inner {
    fn get(&self, r: Rendition) -> Option<&RenditionStore> {
        match r {
            Rendition::Video => self.video.as_ref(),
            Rendition::Audio => self.audio.as_ref(),
        }
    }

    fn get_mut(&mut self, r: Rendition) -> Option<&mut RenditionStore> {
        match r {
            Rendition::Video => self.video.as_mut(),
            Rendition::Audio => self.audio.as_mut(),
        }
    }
}

/// One room's LL-HLS stream: its renditions, parts, segments and playlists.
#[derive(Debug)]
pub struct HlsStream {
    stream_id: u32,
    timing: HlsTiming,
    inner: Mutex<Inner>,
    /// One version channel per rendition: a part of one rendition wakes only the requests
    /// blocked on that rendition (the other's `EXT-X-RENDITION-REPORT` changes too, but never
    /// what its blocked requests wait for).
    versions: [watch::Sender<u64>; 2],
}

impl HlsStream {
    /// A new stream with id `stream_id` (in every media URI) and the init segment of each
    /// rendition it has.
    pub fn new(
        stream_id: u32,
        timing: HlsTiming,
        info: StreamInfo,
        video_init: Option<Bytes>,
        audio_init: Option<Bytes>,
    ) -> Self {
        Self {
            stream_id,
            timing,
            inner: Mutex::new(Inner {
                video: video_init.map(|i| RenditionStore::new(timing, i)),
                audio: audio_init.map(|i| RenditionStore::new(timing, i)),
                info,
                ended: false,
                version: 0,
                cache: HashMap::new(),
            }),
            versions: [watch::Sender::new(0), watch::Sender::new(0)],
        }
    }

    /// The id in every media URI of this stream.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The timing rules.
    pub fn timing(&self) -> &HlsTiming {
        &self.timing
    }

    /// Follows changes of rendition `r`: the value increases whenever a part or segment of
    /// `r` or an init is added, and when the stream ends.
    pub fn subscribe(&self, r: Rendition) -> watch::Receiver<u64> {
        self.versions[slot(r)].subscribe()
    }

    /// Requests following this stream now: blocked playlist reloads and part requests.
    pub fn waiters(&self) -> usize {
        self.versions
            .iter()
            .map(watch::Sender::receiver_count)
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("HLS store lock poisoned")
    }

    /// A change of rendition `r` (`None`: of both); wakes the requests blocked on it.
    fn changed(&self, inner: &mut Inner, r: Option<Rendition>) {
        inner.version += 1;
        let v = inner.version;
        match r {
            Some(r) => {
                self.versions[slot(r)].send_replace(v);
            }
            None => {
                for sender in &self.versions {
                    sender.send_replace(v);
                }
            }
        }
    }

    fn uri(&self, resource: Resource) -> String {
        resource.name()
    }

    /// A new init segment for `r` (new parameter sets); following segments map to it.
    pub fn set_init(&self, r: Rendition, init: Bytes, info: StreamInfo) {
        let mut inner = self.lock();
        inner.info = info;
        if let Some(store) = inner.get_mut(r) {
            let version = store.init_version() + 1;
            store.inits.push_back((version, init));
            while store.inits.len() > INIT_VERSIONS {
                store.inits.pop_front();
            }
        }
        self.changed(&mut inner, None);
    }

    /// Publishes a part of `r` (RFC 8216bis §6.2.1: available as soon as it is listed).
    pub fn add_part(&self, r: Rendition, part: NewPart) {
        let stream = self.stream_id;
        let mut inner = self.lock();
        let Some(store) = inner.get_mut(r) else {
            return;
        };
        let part_uri = self.uri(Resource::Part {
            rendition: r,
            stream,
            msn: part.msn,
            index: part.index,
        });
        let in_progress = store
            .playlist
            .segments
            .back()
            .is_some_and(|s| s.msn == part.msn && !s.complete);
        if !in_progress {
            store.open_parts.clear();
            let map_uri = self.uri(Resource::Init {
                rendition: r,
                stream,
                version: store.init_version(),
            });
            store.playlist.segments.push_back(SegmentEntry {
                msn: part.msn,
                duration: 0.0,
                parts: Vec::new(),
                complete: false,
                discontinuity: part.discontinuity && !store.playlist.segments.is_empty(),
                program_date_time_ms: part.program_date_time_ms,
                uri: self.uri(Resource::Segment {
                    rendition: r,
                    stream,
                    msn: part.msn,
                }),
                map_uri,
            });
        }
        let segment = store.playlist.segments.back_mut().expect("pushed above");
        segment.duration += part.duration;
        segment.parts.push(PartEntry {
            duration: part.duration,
            independent: part.independent,
            uri: part_uri,
        });
        store
            .parts
            .insert((part.msn, part.index), part.bytes.clone());
        store.open_parts.push(part.bytes);
        store.playlist.preload_hint = Some(self.uri(Resource::Part {
            rendition: r,
            stream,
            msn: part.msn,
            index: part.index + 1,
        }));
        self.report(&mut inner, r);
        self.changed(&mut inner, Some(r));
    }

    /// Completes segment `msn` of `r`; its bytes are exactly its parts' bytes.
    pub fn end_segment(&self, r: Rendition, msn: u64, duration: f64) {
        let stream = self.stream_id;
        let window = self.timing.window_segments;
        let mut inner = self.lock();
        let Some(store) = inner.get_mut(r) else {
            return;
        };
        let Some(segment) = store
            .playlist
            .segments
            .back_mut()
            .filter(|s| s.msn == msn && !s.complete)
        else {
            return;
        };
        segment.complete = true;
        segment.duration = duration;
        let parts = std::mem::take(&mut store.open_parts);
        let total: usize = parts.iter().map(Bytes::len).sum();
        let mut joined = Vec::with_capacity(total);
        for p in &parts {
            joined.extend_from_slice(p);
        }
        let joined = Bytes::from(joined);
        // Parts become views of the segment: one copy of the media in memory.
        let mut at = 0;
        for (index, p) in parts.iter().enumerate() {
            store
                .parts
                .insert((msn, index as u32), joined.slice(at..at + p.len()));
            at += p.len();
        }
        store.sizes.insert(msn, (total, duration));
        store.segments.insert(msn, joined);
        store.playlist.preload_hint = Some(self.uri(Resource::Part {
            rendition: r,
            stream,
            msn: msn + 1,
            index: 0,
        }));
        while store.playlist.segments.len() > window {
            if let Some(old) = store.playlist.segments.pop_front()
                && old.discontinuity
            {
                store.playlist.discontinuity_sequence += 1;
            }
        }
        let keep_from = store
            .playlist
            .media_sequence()
            .saturating_sub(EXTRA_SEGMENTS);
        store.segments.retain(|m, _| *m >= keep_from);
        store.sizes.retain(|m, _| *m >= keep_from);
        store.parts.retain(|(m, _), _| *m >= keep_from);
        self.report(&mut inner, r);
        self.changed(&mut inner, Some(r));
    }

    /// `EXT-X-ENDLIST`: the broadcast is over; waiting requests are answered.
    pub fn end(&self) {
        let mut inner = self.lock();
        inner.ended = true;
        for r in [Rendition::Video, Rendition::Audio] {
            if let Some(store) = inner.get_mut(r) {
                store.playlist.ended = true;
                store.playlist.preload_hint = None;
            }
        }
        self.changed(&mut inner, None);
    }

    /// True once [`HlsStream::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }

    /// `EXT-X-RENDITION-REPORT` of `changed` in the other rendition's playlist.
    fn report(&self, inner: &mut Inner, changed: Rendition) {
        let last = inner.get(changed).and_then(RenditionStore::last_part);
        if let (Some((last_msn, last_part)), Some(other)) = (last, inner.get_mut(changed.other())) {
            other.playlist.rendition_report = Some(RenditionReport {
                uri: Resource::Playlist(changed).name(),
                last_msn,
                last_part,
            });
        }
    }

    /// Whether the stream has rendition `r`.
    pub fn has(&self, r: Rendition) -> bool {
        self.lock().get(r).is_some()
    }

    /// Where playlist `r` stands, for blocking decisions.
    pub fn position(&self, r: Rendition) -> Option<PlaylistPosition> {
        self.lock().get(r).map(|s| s.playlist.position())
    }

    /// Playlist `r`, as a delta update when `skip`, gzip-compressed when `gzip`; rendered once
    /// per change however many clients ask.
    pub fn playlist(&self, r: Rendition, skip: bool, gzip: bool) -> Option<Bytes> {
        let mut inner = self.lock();
        let version = inner.version;
        if let Some((v, bytes)) = inner.cache.get(&(r, skip, gzip))
            && *v == version
        {
            return Some(bytes.clone());
        }
        let text = inner.get(r)?.playlist.render(skip);
        let bytes = if gzip {
            gzip_bytes(text.as_bytes())
        } else {
            Bytes::from(text)
        };
        inner
            .cache
            .insert((r, skip, gzip), (version, bytes.clone()));
        Some(bytes)
    }

    /// The multivariant playlist.
    pub fn multivariant(&self) -> String {
        let inner = self.lock();
        Multivariant {
            video_codec: inner.info.video_codec.clone(),
            resolution: inner.info.resolution,
            frame_rate: None,
            audio_channels: inner.audio.as_ref().and(inner.info.audio_channels),
            bandwidth: bandwidth(&inner),
        }
        .render()
    }

    /// Init segment `version` of `r`.
    pub fn init(&self, r: Rendition, version: u32) -> Option<Bytes> {
        let inner = self.lock();
        let store = inner.get(r)?;
        store
            .inits
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, b)| b.clone())
    }

    /// Part `index` of segment `msn` of `r` (the whole segment when `index` is `None`), or
    /// where the playlist stands when it is not there: one lock for a media request.
    pub fn lookup(&self, r: Rendition, msn: u64, index: Option<u32>) -> Lookup {
        let inner = self.lock();
        let Some(store) = inner.get(r) else {
            return Lookup::NoRendition;
        };
        let found = match index {
            Some(i) => store.parts.get(&(msn, i)),
            None => store.segments.get(&msn),
        };
        match found {
            Some(bytes) => Lookup::Found(bytes.clone()),
            None => Lookup::Missing(store.playlist.position()),
        }
    }

    /// Part `index` of segment `msn` of `r`, once published.
    pub fn part(&self, r: Rendition, msn: u64, index: u32) -> Option<Bytes> {
        self.lock().get(r)?.parts.get(&(msn, index)).cloned()
    }

    /// Segment `msn` of `r`, once complete.
    pub fn segment(&self, r: Rendition, msn: u64) -> Option<Bytes> {
        self.lock().get(r)?.segments.get(&msn).cloned()
    }

    /// Bytes held for media (segments and the parts of the segments in progress).
    pub fn memory(&self) -> usize {
        let inner = self.lock();
        [inner.video.as_ref(), inner.audio.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| {
                s.segments.values().map(Bytes::len).sum::<usize>()
                    + s.open_parts.iter().map(Bytes::len).sum::<usize>()
                    + s.inits.iter().map(|(_, b)| b.len()).sum::<usize>()
            })
            .sum()
    }
}

/// Peak bits per second over complete segments of all renditions together (RFC 8216bis
/// §4.4.6.2 `BANDWIDTH`), or an estimate from the parts before the first segment completes.
fn bandwidth(inner: &Inner) -> u64 {
    let stores: Vec<&RenditionStore> = [inner.video.as_ref(), inner.audio.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let leader = stores.first();
    let mut peak = 0.0_f64;
    if let Some(leader) = leader {
        for (msn, (_, duration)) in &leader.sizes {
            let bytes: usize = stores
                .iter()
                .filter_map(|s| s.sizes.get(msn).map(|(b, _)| *b))
                .sum();
            if *duration > 0.1 {
                peak = peak.max(bytes as f64 * 8.0 / duration);
            }
        }
    }
    if peak == 0.0 {
        let (bytes, secs) = stores.iter().fold((0usize, 0.0_f64), |(b, d), s| {
            let seg = s.playlist.segments.back();
            (
                b + s.open_parts.iter().map(Bytes::len).sum::<usize>(),
                d.max(seg.map_or(0.0, |s| s.duration)),
            )
        });
        peak = if secs > 0.1 {
            bytes as f64 * 8.0 / secs
        } else {
            1_000_000.0
        };
    }
    // Round up to kbit/s with 10 % headroom: BANDWIDTH is a peak, not an average.
    ((peak * 1.1 / 1000.0).ceil() as u64) * 1000
}

/// Index of `r` in [`HlsStream::versions`].
fn slot(r: Rendition) -> usize {
    match r {
        Rendition::Video => 0,
        Rendition::Audio => 1,
    }
}

fn gzip_bytes(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
