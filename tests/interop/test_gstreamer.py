"""Interop: GStreamer 1.22's webrtcbin (RSA DTLS certificate, libnice ICE, x264 + Opus) publishes
over WHIP to the real onair binary; an aiortc WHEP viewer decodes what onair forwards."""

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from test_aiortc import post_offer

GST_WHIP = Path(__file__).with_name("gst_whip.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-gi and GStreamer's bindings live


def has_lan_address():
    """libnice does not pair with loopback candidates: the server needs a non-loopback IPv4."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return not s.getsockname()[0].startswith("127.")
    except OSError:
        return False


async def watch(server, room, seconds):
    viewer = RTCPeerConnection()
    viewer.addTransceiver("video", direction="recvonly")
    viewer.addTransceiver("audio", direction="recvonly")
    frames, sizes = [], set()

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

        asyncio.ensure_future(read())

    async with aiohttp.ClientSession() as http:
        whep = await post_offer(http, f"{server.base}/whep/{room}", viewer)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(frames) < 60:
            await asyncio.sleep(0.1)
        async with http.delete(f"{server.base}{whep}") as r:
            assert r.status == 200
    await viewer.close()
    return frames, sizes


@pytest.mark.skipif(not has_lan_address(), reason="no non-loopback IPv4 address on this machine")
def test_gstreamer_webrtcbin_publishes_over_whip(lan_server):
    room = "gst"
    publisher = subprocess.Popen(
        [SYSTEM_PYTHON, str(GST_WHIP), f"{lan_server.base}/whip/{room}", lan_server.token(room, "broadcaster"), "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        frames, sizes = asyncio.run(watch(lan_server, room, 20))
    finally:
        publisher.terminate()
        out, err = publisher.communicate(timeout=10)
    assert "connected" in out, f"GStreamer never connected: {out} {err}"
    assert len(frames) >= 60, f"decoded {len(frames)} frames from GStreamer; publisher said: {out} {err}"
    assert sizes == {(320, 240)}, sizes


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
