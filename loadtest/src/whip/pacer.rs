//! Test/load client: the WHIP publisher's send loops — paces encoded video frames and Opus
//! packets onto the wire as RTP in real time, and turns PLI/FIR into forced keyframes. Does I/O.
//!
//! Packetization is done here rather than by `TrackLocalStaticSample`: frames are split with
//! rtc's RFC 6184 payloader (STAP-A for SPS+PPS, FU-A above the MTU) and written to a
//! `TrackLocalStaticRTP`, so sequence numbers and timestamps are exactly ours. RTP timestamps
//! follow the wall clock of the pacing ticks (90 kHz video, 48 kHz Opus), so a tick the runtime
//! missed shows up as a timestamp jump, like a real capture device, not as drift.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp::packetizer::Payloader;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::media::{AudioSource, EncodedFrame, OPUS_RTP_CLOCK_RATE, VideoSource};
use crate::peer::{is_terminal, until_connected};
use crate::probe::LatencyProbe;

/// Largest RTP payload this publisher sends (webrtc-rs and browsers use ~1200 too).
const RTP_MTU: usize = 1200;
/// RTP clock rate of video (RFC 6184 §8.2.1).
const VIDEO_CLOCK_RATE: u64 = 90_000;

/// Send-side counters, shared with [`super::Publisher::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_sent: AtomicU64,
    pub keyframes_sent: AtomicU64,
    pub frames_empty: AtomicU64,
    pub video_packets_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    pub audio_bytes_sent: AtomicU64,
    pub plis_received: AtomicU64,
    pub firs_received: AtomicU64,
    pub send_errors: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Where one media stream goes: the local track, its SSRC and the negotiated payload type.
#[derive(Clone)]
pub(crate) struct RtpOut {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
}

impl RtpOut {
    /// Writes one packet; `false` means the connection is gone and the loop should end.
    async fn write(
        &self,
        header: Header,
        payload: Bytes,
        counters: &Counters,
        state: &watch::Receiver<RTCPeerConnectionState>,
    ) -> bool {
        let packet = Packet { header, payload };
        match self.track.write_rtp(packet).await {
            Ok(()) => true,
            Err(error) => {
                if is_terminal(*state.borrow()) {
                    return false;
                }
                bump(&counters.send_errors, 1);
                tracing::debug!(%error, ssrc = self.ssrc, "write_rtp failed");
                true
            }
        }
    }

    fn header(&self, sequence_number: u16, timestamp: u32, marker: bool) -> Header {
        Header {
            version: 2,
            marker,
            payload_type: self.payload_type,
            sequence_number,
            timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        }
    }
}

/// A pacing clock ticking every `num / den` seconds. Converts a tick's scheduled instant into
/// an RTP timestamp: `base + round(ticks * clock_rate * num / den)`, where `ticks` counts whole
/// periods since the first tick (exact for 90 kHz at common frame rates, and for Opus).
struct Clock {
    interval: tokio::time::Interval,
    num: u128,
    den: u128,
    start: Option<Instant>,
    base: u32,
    clock_rate: u128,
}

impl Clock {
    fn new(num: u64, den: u64, clock_rate: u64) -> Self {
        let (num, den) = (u128::from(num.max(1)), u128::from(den.max(1)));
        let period = Duration::from_nanos((1_000_000_000 * num / den) as u64);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            interval,
            num,
            den,
            start: None,
            base: rand::random(),
            clock_rate: u128::from(clock_rate),
        }
    }

    /// Waits for the next tick; returns the RTP timestamp of the media due at it.
    async fn tick(&mut self) -> u32 {
        let at = self.interval.tick().await;
        let start = *self.start.get_or_insert(at);
        let elapsed = at.duration_since(start).as_nanos();
        let units = rtp_units(elapsed, self.num, self.den, self.clock_rate);
        self.base.wrapping_add(units as u32)
    }
}

/// RTP clock units from the first tick to the tick nearest `elapsed_ns`, for a tick period of
/// `num / den` seconds: whole periods first, so every tick lands on an exact multiple.
fn rtp_units(elapsed_ns: u128, num: u128, den: u128, clock_rate: u128) -> u128 {
    let period_ns = 1_000_000_000 * num;
    let ticks = (elapsed_ns * den + period_ns / 2) / period_ns;
    (ticks * clock_rate * num + den / 2) / den
}

/// Sends one video frame per tick at the source's frame rate until the connection ends; notes
/// each packet's send instant in `probe`, if any, just before handing it to the stack.
pub(crate) async fn run_video(
    out: RtpOut,
    mut source: VideoSource,
    keyframe_request: Arc<AtomicBool>,
    counters: Arc<Counters>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    probe: Option<Arc<LatencyProbe>>,
    mut change: Option<(u64, VideoSource)>,
) {
    if !until_connected(&mut state).await {
        return;
    }
    let mut frames: u64 = 0;
    let mut clock = Clock::new(1, u64::from(source.config().fps), VIDEO_CLOCK_RATE);
    let mut payloader = H264Payloader::default();
    let mut seq: u16 = rand::random();
    loop {
        let timestamp = clock.tick().await;
        if is_terminal(*state.borrow()) {
            return;
        }
        if change.as_ref().is_some_and(|(after, _)| frames >= *after)
            && let Some((_, next)) = change.take()
        {
            // A new encoder, as when a browser changes resolution: new SPS/PPS and an IDR.
            source = next;
        }
        frames += 1;
        if keyframe_request.swap(false, Ordering::AcqRel) {
            source.force_keyframe();
        }
        let (returned, frame) = encode(source).await;
        let Some(returned) = returned else { return };
        source = returned;
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "video encoder failed; video stops");
                return;
            }
        };
        if frame.data.is_empty() {
            bump(&counters.frames_empty, 1);
            continue;
        }
        let payloads = match payloader.payload(RTP_MTU, &frame.data) {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "H.264 payloader rejected a frame");
                bump(&counters.send_errors, 1);
                continue;
            }
        };
        let last = payloads.len().saturating_sub(1);
        let mut bytes = 0;
        for (i, payload) in payloads.into_iter().enumerate() {
            bytes += payload.len() as u64;
            let header = out.header(seq, timestamp, i == last);
            seq = seq.wrapping_add(1);
            if let Some(probe) = &probe {
                probe.record_send(&payload);
            }
            if !out.write(header, payload, &counters, &state).await {
                return;
            }
            bump(&counters.video_packets_sent, 1);
        }
        bump(&counters.video_bytes_sent, bytes);
        bump(&counters.frames_sent, 1);
        if frame.keyframe {
            bump(&counters.keyframes_sent, 1);
        }
    }
}

/// Encodes the next frame; a live encoder runs on the blocking pool so the reactor never waits
/// on openh264. Returns the source back (`None` if the blocking task died).
async fn encode(
    mut source: VideoSource,
) -> (Option<VideoSource>, Result<EncodedFrame, crate::MediaError>) {
    if source.is_looped() {
        let frame = source.next_frame();
        return (Some(source), frame);
    }
    match tokio::task::spawn_blocking(move || {
        let frame = source.next_frame();
        (source, frame)
    })
    .await
    {
        Ok((source, frame)) => (Some(source), frame),
        Err(error) => (
            None,
            Err(crate::MediaError::Config(format!("encoder task: {error}"))),
        ),
    }
}

/// [`AudioLevelStamp::level`] when no audio level is to be sent.
pub(crate) const NO_AUDIO_LEVEL: u8 = u8::MAX;

/// The RFC 6464 client-to-mixer audio level stamped on every Opus packet, under the extension
/// id the answer negotiated (RFC 8285 one-byte form).
pub(crate) struct AudioLevelStamp {
    /// Negotiated `a=extmap` id.
    pub id: u8,
    /// Level in -dBov (0 loudest, 127 silence), or [`NO_AUDIO_LEVEL`]; changed while sending.
    pub level: Arc<AtomicU8>,
}

impl AudioLevelStamp {
    fn apply(&self, header: &mut Header) {
        let level = self.level.load(Ordering::Relaxed);
        if level == NO_AUDIO_LEVEL {
            return;
        }
        let level = level.min(127);
        // RFC 6464 §3: V (voice activity) in the top bit, claimed for anything above silence.
        let byte = if level < 127 { 0x80 | level } else { level };
        if let Err(error) = header.set_extension(self.id, Bytes::copy_from_slice(&[byte])) {
            tracing::debug!(%error, id = self.id, "cannot stamp the audio level");
        }
    }
}

/// Sends one Opus packet per tick (every `frame_ms`) until the connection ends, each with the
/// current audio level when `level` is given.
pub(crate) async fn run_audio(
    out: RtpOut,
    mut source: AudioSource,
    counters: Arc<Counters>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    level: Option<AudioLevelStamp>,
    hold: Option<Duration>,
) {
    if !until_connected(&mut state).await {
        return;
    }
    // Packets held back at the start, then sent at once (see `PublishOptions::audio_hold`).
    let hold_until = hold.map(|h| Instant::now() + h);
    let mut held: Vec<(Header, Bytes)> = Vec::new();
    let config = source.config();
    let mut clock = Clock::new(
        u64::from(config.frame_ms),
        1000,
        u64::from(OPUS_RTP_CLOCK_RATE),
    );
    let mut seq: u16 = rand::random();
    let mut first = true;
    loop {
        let timestamp = clock.tick().await;
        if is_terminal(*state.borrow()) {
            return;
        }
        let payload = match source.next_packet() {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "Opus encoder failed; audio stops");
                return;
            }
        };
        let len = payload.len() as u64;
        // Marker on the first packet of a talkspurt (RFC 3551 §4.1): here, the very first.
        let mut header = out.header(seq, timestamp, std::mem::take(&mut first));
        if let Some(level) = &level {
            level.apply(&mut header);
        }
        seq = seq.wrapping_add(1);
        if hold_until.is_some_and(|until| Instant::now() < until) {
            held.push((header, payload));
            continue;
        }
        for (header, payload) in held.drain(..) {
            let len = payload.len() as u64;
            if !out.write(header, payload, &counters, &state).await {
                return;
            }
            bump(&counters.audio_packets_sent, 1);
            bump(&counters.audio_bytes_sent, len);
        }
        if !out.write(header, payload, &counters, &state).await {
            return;
        }
        bump(&counters.audio_packets_sent, 1);
        bump(&counters.audio_bytes_sent, len);
    }
}

/// Reads the RTCP the forwarder delivers for the video track: each PLI or FIR is counted and
/// makes the next frame an IDR (RFC 4585 §6.3.1, RFC 5104 §4.3.1).
pub(crate) async fn run_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    keyframe_request: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for packet in packets {
            let any = packet.as_any();
            if any.is::<PictureLossIndication>() {
                bump(&counters.plis_received, 1);
                keyframe_request.store(true, Ordering::Release);
            } else if any.is::<FullIntraRequest>() {
                bump(&counters.firs_received, 1);
                keyframe_request.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rtp_units;

    #[test]
    fn rtp_timestamps_advance_by_whole_frames() {
        // 30 fps video: 3000 units per frame even though 1/30 s is not a whole nanosecond count.
        let frame_ns = 1_000_000_000u128 / 30;
        for k in [0u128, 1, 2, 29, 30, 100_000] {
            assert_eq!(
                rtp_units(k * frame_ns, 1, 30, 90_000),
                k * 3000,
                "frame {k}"
            );
        }
        // A late tick snaps to the nearest period; a skipped one leaves a gap of two.
        assert_eq!(rtp_units(frame_ns + 4_000_000, 1, 30, 90_000), 3000);
        assert_eq!(rtp_units(3 * frame_ns, 1, 30, 90_000), 9000);
        // 20 ms Opus on the 48 kHz clock: 960 per packet.
        assert_eq!(rtp_units(20_000_000 * 7, 20, 1000, 48_000), 7 * 960);
    }
}
