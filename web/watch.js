// onair web: watch page logic (WHEP playback, waiting/live status, automatic reconnect, viewer count, chat)
import { OnairSession, fetchRoom, roomFromPath, tokenFromQuery, setStatus, showMessage } from "/web/onair.js";
import { mountChat } from "/web/chat.js";
import { StageGrid, systemText } from "/web/stage.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  video: $("video"),
  overlay: $("overlay"),
  unmute: $("unmute"),
  retry: $("retry"),
  viewers: $("viewers"),
  error: $("error"),
  detail: $("detail"),
  roomName: $("room-name"),
  chat: $("chat"),
  stageGrid: $("stage-grid"),
  stageNotices: $("stage-notices"),
};
/** Audio+video pairs offered: the broadcaster and up to four guests (the server caps it). */
const STAGE_SLOTS = 5;
let grid = null; // the guests on stage beside the main picture

const ROOM_POLL_MS = 2000;
const TICK_MS = 500;
const FRAME_GAP_MS = 1500; // no decoded frame for this long: the broadcaster is gone
const DISCONNECT_GRACE_MS = 3000; // "disconnected" often heals by itself
const STALL_MS = 5000; // the room is live but nothing arrives: this session is broken
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 5000;

const room = roomFromPath("watch");
const token = tokenFromQuery();

let session = null;
let attempt = 0;
let retryTimer = 0;
let disconnectTimer = 0;
let roomLive = null; // from the API; null while unknown
let media = { frames: 0, audioPackets: 0, lastFrameAt: 0, lastAudioAt: 0 };
let stalledSince = 0;
let chat = null; // the chat panel, over each WHEP session's "chat" data channel
let chatCounts = false; // once chat presence reports the viewer count, it is the one shown

function show(state, text) {
  setStatus(ui.status, state, text);
  ui.overlay.textContent = text;
  ui.overlay.hidden = state === "live";
}

function connect() {
  clearTimeout(retryTimer);
  showMessage(ui.error, "");
  ui.retry.hidden = true;
  if (attempt === 0) show("connecting", "connecting…");
  const current = new OnairSession(`/whep/${encodeURIComponent(room)}`, {
    token,
    onStateChange: (state) => onConnectionState(current, state),
  });
  session = current;
  media = { frames: 0, audioPackets: 0, lastFrameAt: 0, lastAudioAt: 0 };
  current.play({ chat: true, slots: STAGE_SLOTS }).then(
    (stream) => {
      if (session !== current) return;
      if (current.chat) chat?.attach(current.chat);
      grid?.attach(current, current.chat);
      ui.video.srcObject = stream;
      ui.video.play().catch(() => {});
    },
    (error) => {
      if (session !== current) return;
      session = null;
      current.close();
      chat?.detach(error.permanent ? error.message : "chat reconnects with the video…");
      if (error.permanent) {
        show("error", "cannot play");
        showMessage(ui.error, error.message);
        ui.retry.hidden = false;
      } else {
        scheduleReconnect(error.message);
      }
    },
  );
}

function onConnectionState(current, state) {
  if (session !== current) return;
  clearTimeout(disconnectTimer);
  if (state === "connected") {
    attempt = 0;
    showMessage(ui.detail, "");
    updateStatus();
  } else if (state === "disconnected") {
    show("connecting", "connection unstable…");
    disconnectTimer = setTimeout(() => {
      if (session === current) reconnect("the connection was lost");
    }, DISCONNECT_GRACE_MS);
  } else if (state === "failed") {
    reconnect("the connection failed");
  }
}

function reconnect(reason) {
  const old = session;
  session = null;
  old?.close();
  chat?.detach("chat reconnects with the video…");
  scheduleReconnect(reason);
}

function scheduleReconnect(reason) {
  const delay = Math.min(BACKOFF_MIN_MS * 2 ** attempt, BACKOFF_MAX_MS);
  attempt += 1;
  show("reconnecting", `reconnecting in ${Math.round(delay / 1000)} s…`);
  showMessage(ui.detail, reason ? `Last attempt: ${reason}` : "");
  retryTimer = setTimeout(connect, delay);
}

/** Samples decoded video frames and received audio packets from the PeerConnection. */
async function sampleMedia() {
  const pc = session?.pc;
  if (!pc || pc.connectionState !== "connected") return;
  const stats = await pc.getStats();
  if (session?.pc !== pc) return; // reconnected meanwhile
  let frames = 0;
  let audioPackets = 0;
  stats.forEach((report) => {
    if (report.type !== "inbound-rtp") return;
    if (report.kind === "video") frames += report.framesDecoded ?? 0;
    if (report.kind === "audio") audioPackets += report.packetsReceived ?? 0;
  });
  const now = performance.now();
  if (frames > media.frames) media.lastFrameAt = now;
  if (audioPackets > media.audioPackets) media.lastAudioAt = now;
  media.frames = frames;
  media.audioPackets = audioPackets;
}

/** Live while frames arrive; otherwise waiting (or starting when the API already says live). */
function updateStatus() {
  if (session?.pc?.connectionState !== "connected") {
    stalledSince = 0;
    return;
  }
  const now = performance.now();
  const video = media.lastFrameAt > 0 && now - media.lastFrameAt < FRAME_GAP_MS;
  const audio = media.lastAudioAt > 0 && now - media.lastAudioAt < FRAME_GAP_MS;
  if (!video && ui.status.dataset.state === "live") refreshRoom(); // frames stopped: ask now
  stalledSince = roomLive && !video && !audio ? stalledSince || now : 0;
  if (stalledSince && now - stalledSince > STALL_MS) {
    stalledSince = 0;
    reconnect("no media arrived although the room is live");
    return;
  }
  if (video) show("live", "live");
  else if (audio && roomLive) show("live", "live (audio only)");
  else if (roomLive) show("starting", "starting…");
  else show("waiting", "waiting for the broadcaster");
}

async function tick() {
  try {
    await sampleMedia();
  } catch {
    // The PeerConnection closed during getStats; the next tick sees the new one.
  }
  updateStatus();
  setTimeout(tick, TICK_MS);
}

let roomRequest = null;

/** Refreshes `roomLive` and the viewer count (one request at a time). */
function refreshRoom() {
  roomRequest ??= fetchRoom(room, token)
    .then((info) => {
      roomLive = Boolean(info.live);
      if (!chatCounts) ui.viewers.textContent = String(info.viewers ?? 0);
    })
    .catch(() => {
      roomLive = null;
    })
    .finally(() => {
      roomRequest = null;
    });
  return roomRequest;
}

async function pollRoom() {
  await refreshRoom();
  setTimeout(pollRoom, ROOM_POLL_MS);
}

function toggleSound() {
  const unmuting = ui.video.muted;
  ui.video.muted = !unmuting;
  grid?.setMuted(!unmuting);
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

function init() {
  if (!room) {
    show("error", "no room");
    showMessage(ui.error, "This address names no room. Open /watch/<room>.");
    ui.unmute.disabled = true;
    return;
  }
  document.title = `${room} · onair`;
  ui.roomName.textContent = room;
  chat = mountChat(ui.chat, {
    room,
    token,
    transport: "datachannel",
    onViewers: (count) => {
      chatCounts = true;
      ui.viewers.textContent = String(count);
    },
  });
  grid = new StageGrid(ui.stageGrid, {
    main: ui.video,
    onSystem: (message) => {
      ui.stageNotices.textContent = systemText(message);
    },
  });
  ui.unmute.addEventListener("click", toggleSound);
  ui.retry.addEventListener("click", () => {
    attempt = 0;
    connect();
  });
  addEventListener("pagehide", () => {
    clearTimeout(retryTimer);
    const old = session;
    session = null;
    old?.close();
  });
  addEventListener("pageshow", (event) => {
    if (!event.persisted) return; // restored from the back/forward cache: play again
    attempt = 0;
    connect();
  });
  connect();
  pollRoom();
  tick();
}

init();
