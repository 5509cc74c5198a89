// onair web: live page logic (LL-HLS playback with hls.js low-latency mode, or the browser's own HLS; latency and live edge; waiting/live status; automatic restart)
import { roomFromPath, tokenFromQuery, setStatus, showMessage } from "/web/onair.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  video: $("video"),
  overlay: $("overlay"),
  unmute: $("unmute"),
  goLive: $("go-live"),
  latency: $("latency"),
  capture: $("capture"),
  edge: $("edge"),
  buffer: $("buffer"),
  error: $("error"),
  detail: $("detail"),
  roomName: $("room-name"),
  playlistLink: $("playlist-link"),
  watchLink: $("watch-link"),
  chat: $("chat"),
};

const TICK_MS = 500;
const RETRY_MS = 2000; // the room has no stream yet, or it ended: look again
const STALL_MS = 6000; // no progress although playing: restart the player

const room = roomFromPath("live");
const token = tokenFromQuery();
const query = token ? `?token=${encodeURIComponent(token)}` : "";
const src = `/hls/${encodeURIComponent(room)}/index.m3u8${query}`;

let hls = null; // the hls.js instance (also window.hls, for tests and curious viewers)
let native = false;
let retryTimer = 0;
let lastTime = -1;
let lastProgressAt = 0;

function show(state, text) {
  setStatus(ui.status, state, text);
  ui.overlay.textContent = text;
  ui.overlay.hidden = state === "live";
}

/** Loads hls.js from `/vendor/hls.min.js` (served when the operator sets `hls_js`). */
function loadHlsJs() {
  return new Promise((resolve) => {
    if (window.Hls) return resolve(window.Hls);
    const script = document.createElement("script");
    script.src = "/vendor/hls.min.js";
    script.onload = () => resolve(window.Hls ?? null);
    script.onerror = () => resolve(null);
    document.head.append(script);
  });
}

/** Is the stream there? 200: yes; 404/503: not (yet). Avoids handing hls.js an error to retry. */
async function streamReady() {
  try {
    const response = await fetch(src, { cache: "no-store" });
    if (response.ok) return true;
    if (response.status === 404) {
      show("waiting", "waiting for the broadcaster");
      showMessage(ui.detail, "Nobody has gone live in this room yet.");
    } else {
      show("waiting", "waiting for the broadcaster");
      showMessage(ui.detail, "");
    }
  } catch {
    show("reconnecting", "server unreachable…");
  }
  return false;
}

function scheduleStart(delay = RETRY_MS) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(start, delay);
}

function stopPlayer() {
  hls?.destroy();
  hls = null;
  window.hls = null;
  if (native) ui.video.removeAttribute("src");
}

async function start() {
  stopPlayer();
  if (!(await streamReady())) {
    scheduleStart();
    return;
  }
  showMessage(ui.detail, "");
  show("starting", "starting…");
  lastProgressAt = performance.now();
  if (native) {
    ui.video.src = src;
    ui.video.play().catch(() => {});
    return;
  }
  // hls.js's default load policies already allow for blocking reloads (up to three target
  // durations on the server).
  hls = new window.Hls({ lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5 });
  window.hls = hls;
  const current = hls;
  hls.on(window.Hls.Events.ERROR, (_event, data) => {
    if (hls !== current || !data.fatal) return;
    if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    show("reconnecting", "reconnecting…");
    showMessage(ui.detail, `Last problem: ${data.details}`);
    scheduleStart();
  });
  hls.loadSource(src);
  hls.attachMedia(ui.video);
  ui.video.play().catch(() => {});
}

function fmt(seconds) {
  return Number.isFinite(seconds) && seconds >= 0 ? `${seconds.toFixed(2)} s` : "–";
}

/** The figures: latency to the live edge, time since capture, the live edge, the buffer. */
function tick() {
  const v = ui.video;
  const now = performance.now();
  const buffered = v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0;
  ui.buffer.textContent = fmt(buffered);
  const edge = hls?.liveSyncPosition ?? (v.seekable.length ? v.seekable.end(v.seekable.length - 1) : NaN);
  ui.edge.textContent = Number.isFinite(edge) ? `${edge.toFixed(2)} s` : "–";
  // EXT-X-PROGRAM-DATE-TIME of the frame on screen, against this machine's clock.
  const date = hls ? hls.playingDate : v.getStartDate?.();
  let playing = date && !Number.isNaN(date.getTime()) ? date.getTime() : NaN;
  if (!hls && Number.isFinite(playing)) playing += v.currentTime * 1000;
  ui.capture.textContent = fmt((Date.now() - playing) / 1000);
  ui.latency.textContent = hls ? fmt(hls.latency) : fmt(edge - v.currentTime);
  if (v.currentTime !== lastTime) {
    lastTime = v.currentTime;
    lastProgressAt = now;
    if (!v.paused && v.readyState >= 2) {
      show("live", "live");
      showMessage(ui.detail, "");
    }
  } else if ((hls || native) && now - lastProgressAt > STALL_MS) {
    // Nothing moves: the broadcaster left (the playlist waits) or the stream ended.
    show("waiting", "waiting for the broadcaster");
    lastProgressAt = now;
    scheduleStart(0);
  }
  setTimeout(tick, TICK_MS);
}

function toggleSound() {
  const unmuting = ui.video.muted;
  ui.video.muted = !unmuting;
  ui.unmute.textContent = unmuting ? "Mute" : "Unmute";
  ui.unmute.setAttribute("aria-pressed", String(unmuting));
  if (unmuting) {
    ui.video.play().catch(() => {
      ui.video.muted = true;
      ui.unmute.textContent = "Unmute";
      ui.unmute.setAttribute("aria-pressed", "false");
      showMessage(ui.error, "The browser blocked the sound; press Unmute again.");
    });
  }
}

function goLive() {
  const edge = hls?.liveSyncPosition ?? (ui.video.seekable.length ? ui.video.seekable.end(ui.video.seekable.length - 1) : null);
  if (edge) ui.video.currentTime = edge;
}

async function init() {
  if (!room) {
    show("error", "no room");
    showMessage(ui.error, "This address names no room. Open /live/<room>.");
    return;
  }
  document.title = `${room} · live · onair`;
  ui.roomName.textContent = room;
  ui.playlistLink.href = src;
  ui.watchLink.href = `/watch/${encodeURIComponent(room)}${query}`;
  ui.unmute.addEventListener("click", toggleSound);
  ui.goLive.addEventListener("click", goLive);
  import("/web/chat.js")
    .then(({ mountChat }) => mountChat(ui.chat, { room, token, transport: "websocket" }))
    .catch(() => {
      ui.chat.hidden = true;
    });
  const Hls = await loadHlsJs();
  if (Hls?.isSupported()) {
    native = false;
  } else if (ui.video.canPlayType("application/vnd.apple.mpegurl")) {
    native = true;
  } else {
    show("error", "cannot play");
    showMessage(
      ui.error,
      Hls
        ? "This browser supports neither Media Source Extensions nor HLS."
        : "hls.js is not installed on this server (set hls_js in onair.toml, see the README), and this browser has no HLS of its own. Use the WebRTC watch page instead.",
    );
    return;
  }
  addEventListener("pagehide", () => {
    clearTimeout(retryTimer);
    stopPlayer();
  });
  start();
  tick();
}

init();
