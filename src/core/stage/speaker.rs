//! Active speaker (pure): RFC 6464 client-to-mixer audio levels, smoothed per publisher by a
//! [`LevelMeter`], and a [`SpeakerSelector`] with hysteresis so the highlight does not flicker
//! between people talking over each other. Times are milliseconds on any monotonic clock.

/// URI of the RFC 6464 header extension (negotiated with `a=extmap`, RFC 8285 §5).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Time constant of the meter's exponential smoothing.
const METER_TAU_MS: f32 = 300.0;
/// A meter that heard nothing for this long reads silent.
const METER_STALE_MS: u64 = 500;
/// Loudness (127 - level, i.e. dB above -127 dBov) below which nobody is "speaking":
/// -50 dBov, above typical microphone noise.
pub const SPEAKING_THRESHOLD: u32 = 77;
/// A challenger must be this much louder than the current speaker...
const SWITCH_MARGIN: u32 = 3;
/// ...for this long before the highlight moves.
const SWITCH_HOLD_MS: u64 = 400;
/// The current speaker stays highlighted this long after falling silent.
const SILENCE_HOLD_MS: u64 = 1500;

/// The `a=extmap` id of the audio level extension in an SDP's audio section, if negotiated.
pub fn audio_level_ext_id(sdp: &str) -> Option<u8> {
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_audio = media.starts_with("audio");
        } else if in_audio && let Some(rest) = line.strip_prefix("a=extmap:") {
            let mut parts = rest.split_whitespace();
            let id = parts.next()?.split('/').next()?;
            if parts.next() == Some(AUDIO_LEVEL_URI) {
                return id.parse().ok().filter(|id| (1..=14).contains(id));
            }
        }
    }
    None
}

/// Decodes the one-byte RFC 6464 §3 payload: V flag in the top bit, level 0-127 in -dBov.
/// Returns the loudness `127 - level` (0 = silence, 127 = full scale).
pub fn loudness(ext_payload: &[u8]) -> Option<u32> {
    let byte = *ext_payload.first()?;
    Some(127 - u32::from(byte & 0x7f))
}

/// Exponentially smoothed loudness of one publisher.
#[derive(Debug, Clone, Default)]
pub struct LevelMeter {
    value: f32,
    last_ms: Option<u64>,
}

impl LevelMeter {
    /// A silent meter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one packet's loudness (from [`loudness`]) heard at `now_ms`.
    pub fn observe(&mut self, loudness: u32, now_ms: u64) {
        let dt = self.last_ms.map_or(METER_TAU_MS, |last| {
            now_ms.saturating_sub(last).min(10_000) as f32
        });
        let alpha = 1.0 - (-dt / METER_TAU_MS).exp();
        self.value += alpha * (loudness.min(127) as f32 - self.value);
        self.last_ms = Some(now_ms);
    }

    /// The smoothed loudness at `now_ms` (0 when nothing was heard recently).
    pub fn read(&self, now_ms: u64) -> u32 {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) <= METER_STALE_MS => {
                self.value.round() as u32
            }
            _ => 0,
        }
    }
}

/// Picks the active speaker from everyone's smoothed loudness, with hysteresis.
#[derive(Debug, Clone, Default)]
pub struct SpeakerSelector {
    current: Option<String>,
    challenger: Option<(String, u64)>,
    silent_since: Option<u64>,
}

impl SpeakerSelector {
    /// Nobody speaking.
    pub fn new() -> Self {
        Self::default()
    }

    /// The active speaker.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Feeds one observation of every participant's loudness; returns the new speaker when it
    /// changed (`Some(None)`: nobody speaks any more).
    pub fn update(&mut self, levels: &[(&str, u32)], now_ms: u64) -> Option<Option<String>> {
        let loudest = levels
            .iter()
            .filter(|(_, l)| *l >= SPEAKING_THRESHOLD)
            .max_by_key(|(_, l)| *l);
        let current_level = self
            .current
            .as_deref()
            .and_then(|c| levels.iter().find(|(u, _)| *u == c))
            .map(|(_, l)| *l);
        let current_speaking = current_level.is_some_and(|l| l >= SPEAKING_THRESHOLD);
        if current_speaking {
            self.silent_since = None;
        }
        match loudest {
            None => {
                self.challenger = None;
                if self.current.is_some() && !current_speaking {
                    let since = *self.silent_since.get_or_insert(now_ms);
                    if now_ms.saturating_sub(since) >= SILENCE_HOLD_MS || current_level.is_none() {
                        return self.set(None);
                    }
                }
                None
            }
            Some((user, level)) => {
                if self.current.as_deref() == Some(*user) {
                    self.challenger = None;
                    return None;
                }
                if self.current.is_none() || current_level.is_none() {
                    return self.set(Some(user));
                }
                let beats = *level >= current_level.unwrap_or(0) + SWITCH_MARGIN;
                if !beats {
                    self.challenger = None;
                    return None;
                }
                match &self.challenger {
                    Some((c, since)) if c == user => {
                        if now_ms.saturating_sub(*since) >= SWITCH_HOLD_MS {
                            return self.set(Some(user));
                        }
                        None
                    }
                    _ => {
                        self.challenger = Some(((*user).to_owned(), now_ms));
                        None
                    }
                }
            }
        }
    }

    fn set(&mut self, user: Option<&str>) -> Option<Option<String>> {
        self.challenger = None;
        self.silent_since = None;
        let user = user.map(str::to_owned);
        if user == self.current {
            return None;
        }
        self.current = user.clone();
        Some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extmap_id_of_the_audio_section_only() {
        let sdp = "v=0\r\nm=video 9 X 96\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
                   m=audio 9 X 111\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=extmap:3/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n";
        assert_eq!(audio_level_ext_id(sdp), Some(3));
        assert_eq!(audio_level_ext_id("v=0\r\nm=audio 9 X 111\r\n"), None);
    }

    #[test]
    fn level_byte_ignores_the_voice_flag() {
        assert_eq!(loudness(&[0x80 | 30]), Some(97));
        assert_eq!(loudness(&[127]), Some(0));
        assert_eq!(loudness(&[]), None);
    }

    #[test]
    fn meter_smooths_and_goes_silent_when_packets_stop() {
        let mut m = LevelMeter::new();
        for t in 0..50 {
            m.observe(100, t * 20);
        }
        assert!(m.read(980) >= 95, "{}", m.read(980));
        // One quiet packet does not drop the level at once.
        m.observe(0, 1000);
        assert!(m.read(1000) > 90);
        assert_eq!(m.read(2000), 0, "stale");
    }

    #[test]
    fn hysteresis_holds_the_speaker_and_needs_a_clear_challenger() {
        let mut s = SpeakerSelector::new();
        assert_eq!(
            s.update(&[("a", 100), ("b", 10)], 0),
            Some(Some("a".into()))
        );
        // b slightly louder: no switch.
        assert_eq!(s.update(&[("a", 100), ("b", 101)], 100), None);
        // b clearly louder, but not for long enough yet.
        assert_eq!(s.update(&[("a", 90), ("b", 110)], 200), None);
        assert_eq!(s.update(&[("a", 90), ("b", 110)], 500), None);
        assert_eq!(
            s.update(&[("a", 90), ("b", 110)], 650),
            Some(Some("b".into()))
        );
        assert_eq!(s.current(), Some("b"));
    }

    #[test]
    fn silence_clears_the_speaker_after_a_hold() {
        let mut s = SpeakerSelector::new();
        s.update(&[("a", 100)], 0);
        assert_eq!(s.update(&[("a", 10)], 200), None);
        assert_eq!(s.update(&[("a", 10)], 1000), None);
        assert_eq!(s.update(&[("a", 10)], 1800), Some(None));
        // A speaker who leaves the stage is cleared at once.
        s.update(&[("b", 100)], 2000);
        assert_eq!(s.update(&[], 2100), Some(None));
    }
}
