"""Interop: aiortc (Python's independent WebRTC stack, ECDSA-only DTLS, libx264/libopus via PyAV)
publishes H.264 + Opus over WHIP to the real onair binary, and an aiortc WHEP viewer decodes it."""

import asyncio
import fractions
import time

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

WIDTH, HEIGHT, FPS = 320, 240, 30


class MovingBar(MediaStreamTrack):
    """A 320x240 grey ramp with a white bar sweeping across it, at 30 fps."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        target = self.start + self.n / FPS
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        bar = (self.n * 4) % WIDTH
        luma = bytearray(WIDTH * HEIGHT)
        for y in range(HEIGHT):
            row = y * WIDTH
            for x in range(0, WIDTH, 8):
                value = 235 if bar <= x < bar + 24 else 16 + (x * 200) // WIDTH
                luma[row + x : row + x + 8] = bytes([value]) * 8
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(bytes([128]) * (WIDTH * HEIGHT // 4))
        frame.planes[2].update(bytes([128]) * (WIDTH * HEIGHT // 4))
        frame.pts = self.n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


async def post_offer(session, url, pc, token=None):
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with session.post(url, data=pc.localDescription.sdp, headers=headers) as r:
        body = await r.text()
        assert r.status == 201, f"{r.status}: {body}"
        assert r.headers.get("Location") and r.headers.get("ETag")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return r.headers["Location"]


async def publish_and_watch(server):
    room = "interop"
    publisher = RTCPeerConnection()
    video = publisher.addTransceiver(MovingBar(), direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    video.setCodecPreferences(h264)
    publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")

    viewer = RTCPeerConnection()
    viewer.addTransceiver("video", direction="recvonly")
    viewer.addTransceiver("audio", direction="recvonly")
    frames, sizes, audio_frames = [], set(), []

    @viewer.on("track")
    def on_track(track):
        async def read():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    frames.append(frame)
                    sizes.add((frame.width, frame.height))
                else:
                    audio_frames.append(frame)

        asyncio.ensure_future(read())

    async with aiohttp.ClientSession() as http:
        token = server.token(room, "broadcaster")
        whip = await post_offer(http, f"{server.base}/whip/{room}", publisher, token)
        whep = await post_offer(http, f"{server.base}/whep/{room}", viewer)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(frames) < 30 or len(audio_frames) < 25):
            await asyncio.sleep(0.1)
        async with http.get(f"{server.base}/api/rooms/{room}") as r:
            detail = await r.json()
        # A session is ended by its owner: the anonymous viewer by its URL alone, the
        # publisher with the token that created it.
        for url, auth in ((whep, {}), (whip, {"Authorization": f"Bearer {token}"})):
            async with http.delete(f"{server.base}{url}", headers=auth) as r:
                assert r.status == 200
    await viewer.close()
    await publisher.close()
    return frames, sizes, audio_frames, detail


def test_aiortc_publishes_over_whip_and_watches_over_whep(server):
    frames, sizes, audio_frames, detail = asyncio.run(publish_and_watch(server))
    assert detail["live"] is True and detail["viewers"] == 1, detail
    assert len(frames) >= 30, f"decoded {len(frames)} video frames"
    assert sizes == {(WIDTH, HEIGHT)}, sizes
    assert len(audio_frames) >= 25, f"received {len(audio_frames)} audio frames"
