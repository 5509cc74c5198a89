"""A WHIP publisher built on GStreamer's webrtcbin (GStreamer 1.22 presents an RSA DTLS
certificate): x264 H.264 + Opus test sources, non-trickle offer, POST to the WHIP endpoint.

Run with the system python3 (Debian's python3-gi):
    gst_whip.py URL TOKEN SECONDS
Prints `connected` once ICE+DTLS are up and `done` when the time is over; exits non-zero on error.
"""

import sys
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = """
webrtcbin name=webrtc bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1
 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=400 key-int-max=30
 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=96
 ! application/x-rtp,media=video,encoding-name=H264,payload=96 ! webrtc.
audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc
 ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! webrtc.
"""


def main():
    url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE)
    webrtc = pipeline.get_by_name("webrtc")
    loop = GLib.MainLoop()
    failure = []

    def fail(message):
        failure.append(message)
        loop.quit()

    def post_offer(offer_sdp):
        request = urllib.request.Request(
            url,
            data=offer_sdp.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 201:
                    return fail(f"WHIP POST answered {response.status}")
                answer = response.read().decode()
        except Exception as error:  # HTTP errors and refused connections alike
            return fail(f"WHIP POST failed: {error}")
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        webrtc.emit("set-remote-description", description, Gst.Promise.new())

    def on_gathering(element, _param):
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            post_offer(element.get_property("local-description").sdp.as_text())

    def on_connection(element, _param):
        state = element.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            print("connected", flush=True)
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            fail("connection failed")

    def on_offer(promise, element):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            return fail(f"webrtcbin could not create an offer: {reply}")
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_negotiation_needed(element):
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, element))

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    webrtc.connect("notify::connection-state", on_connection)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message::error", lambda _bus, message: fail(str(message.parse_error()[0])))
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add_seconds(seconds, loop.quit)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if failure:
        print(failure[0], file=sys.stderr)
        sys.exit(1)
    print("done", flush=True)


if __name__ == "__main__":
    main()
