#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, idempotently: Debian's Chromium (for
# the browser tests), libopus + pkg-config (the Rust test clients encode Opus), GStreamer 1.22
# and aiortc (independent WebRTC stacks for the interop tests), ffmpeg (ffprobe checks the LL-HLS
# segments and the recordings), and the browser tests' npm packages (playwright-core drives the
# system Chromium and downloads nothing; hls.js plays LL-HLS on the live page).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)  # tests/it/tls.rs: curl --http2
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
# coturn: the TURN test shows onair-minted credentials allocate on a real coturn too.
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
# GStreamer 1.22 webrtcbin (an RSA-certificate WHIP publisher) for the interop test.
gst_probe='import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0")
from gi.repository import Gst
Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ["webrtcbin", "nicesrc", "x264enc", "opusenc", "rtph264pay", "videotestsrc"])'
/usr/bin/python3 -c "$gst_probe" >/dev/null 2>&1 || need+=(python3-gi gir1.2-gstreamer-1.0 \
  gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-nice)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.onair-lock
if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
  echo "setup: installing browser test packages"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi

# The interop tests' independent WebRTC stack (aiortc) in its own virtualenv, reinstalled only
# when requirements.txt changed.
venv=target/interop-venv
reqs=tests/interop/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$reqs" "$venv/.onair-reqs"; then
  echo "setup: installing interop test packages"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
  cp "$reqs" "$venv/.onair-reqs"
fi
