// onair web: studio page logic (device selection, preview, WHIP publish, viewer count, chat while live)
import { OnairSession, fetchRoom, roomFromPath, tokenFromQuery, setStatus, showMessage, errorFromResponse } from "/web/onair.js";
import { StageGrid, systemText } from "/web/stage.js";
import { mountChat } from "/web/chat.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  preview: $("preview"),
  camera: $("camera"),
  microphone: $("microphone"),
  goLive: $("go-live"),
  stop: $("stop"),
  viewers: $("viewers"),
  error: $("error"),
  tokenHelp: $("token-help"),
  roomName: $("room-name"),
  watchLink: $("watch-link"),
  chat: $("chat"),
};
const CHAT_OFFLINE = "Chat opens when you go live.";

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const VIEWER_POLL_MS = 2000;

const room = roomFromPath("studio");
const token = tokenFromQuery();
const stream = new MediaStream();
let session = null;
let chat = null; // the chat panel, over the WHIP session's "chat" data channel

function fail(message) {
  showMessage(ui.error, message);
}

function showTokenHelp() {
  const command = document.createElement("code");
  command.textContent = `onair token --room ${room} --role broadcaster --name YOUR_NAME`;
  const suffix = document.createElement("code");
  suffix.textContent = "?token=<the printed token>";
  ui.tokenHelp.replaceChildren(
    "This studio link has no token, so it cannot go live. On the server, run ",
    command,
    " and open this page again with ",
    suffix,
    " at the end of the address (onair serve also prints a ready-made studio link when it starts).",
  );
  ui.tokenHelp.hidden = false;
}

function constraints(kind, deviceId) {
  const base = kind === "video" ? VIDEO : AUDIO;
  return deviceId ? { ...base, deviceId: { exact: deviceId } } : base;
}

function mediaErrorText(error) {
  switch (error?.name) {
    case "NotAllowedError":
      return "Camera and microphone access was denied. Allow it in the browser's site settings, then reload.";
    case "NotReadableError":
      return "The camera or microphone is in use by another program.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera or microphone was found.";
    default:
      return `Cannot open the camera or microphone: ${error?.message ?? error}`;
  }
}

/** Opens the default camera and microphone; falls back to whichever one works alone. */
async function openDefaultMedia() {
  try {
    const media = await navigator.mediaDevices.getUserMedia({ video: VIDEO, audio: AUDIO });
    media.getTracks().forEach((track) => stream.addTrack(track));
    return;
  } catch (error) {
    if (error.name === "NotAllowedError") throw error;
  }
  let lastError = null;
  for (const kind of ["video", "audio"]) {
    try {
      const media = await navigator.mediaDevices.getUserMedia({ [kind]: constraints(kind) });
      media.getTracks().forEach((track) => stream.addTrack(track));
    } catch (error) {
      lastError = error;
    }
  }
  if (stream.getTracks().length === 0) throw lastError;
}

async function refreshDeviceLists() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  fillSelect(ui.camera, devices.filter((d) => d.kind === "videoinput"), "video", "Camera");
  fillSelect(ui.microphone, devices.filter((d) => d.kind === "audioinput"), "audio", "Microphone");
}

function fillSelect(select, devices, kind, fallbackLabel) {
  const current = stream.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  const options = devices.map((device, i) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${fallbackLabel} ${i + 1}`;
    option.selected = device.deviceId === current;
    return option;
  });
  if (options.length === 0) {
    const option = document.createElement("option");
    option.textContent = "none found";
    options.push(option);
  }
  select.replaceChildren(...options);
  select.disabled = devices.length === 0;
}

/** Switches the camera or microphone, also on the air (no renegotiation: replaceTrack). */
async function switchDevice(kind, deviceId) {
  showMessage(ui.error, "");
  let track;
  try {
    const media = await navigator.mediaDevices.getUserMedia({ [kind]: constraints(kind, deviceId) });
    track = media.getTracks()[0];
  } catch (error) {
    fail(mediaErrorText(error));
    return;
  }
  for (const old of stream.getTracks().filter((t) => t.kind === kind)) {
    stream.removeTrack(old);
    old.stop();
  }
  stream.addTrack(track);
  ui.preview.srcObject = stream;
  const sender = session?.transceiver(kind)?.sender;
  if (sender) await sender.replaceTrack(track);
  await refreshDeviceLists();
}

async function goLive() {
  if (!token || session) return;
  if (stream.getTracks().length === 0) {
    fail("Nothing to send: no camera or microphone is open.");
    return;
  }
  showMessage(ui.error, "");
  ui.goLive.disabled = true;
  ui.stop.disabled = false;
  setStatus(ui.status, "connecting", "connecting…");
  const current = new OnairSession(`/whip/${encodeURIComponent(room)}`, {
    token,
    onStateChange: (state) => onConnectionState(current, state),
  });
  session = current;
  try {
    // The chat channel exists once publish() has created the PeerConnection (it may first
    // fetch ICE servers) and opens only after the answer, so attaching afterwards misses nothing.
    await current.publish(stream, { chat: true });
    if (session === current && current.chat) chat?.attach(current.chat);
  } catch (error) {
    if (session !== current) return; // stopped meanwhile
    await endSession();
    setStatus(ui.status, "error", "not live");
    fail(`Could not go live: ${error.message}`);
  }
}

function onConnectionState(current, state) {
  if (session !== current) return;
  if (state === "connected") {
    setStatus(ui.status, "live", "live");
    watchStage();
  } else if (state === "disconnected") {
    setStatus(ui.status, "connecting", "connection unstable…");
  } else if (state === "failed") {
    endSession();
    setStatus(ui.status, "error", "not live");
    fail("The media connection to the server failed (are its UDP ports reachable?). Try going live again.");
  }
}

async function endSession() {
  const current = session;
  session = null;
  chat?.detach(CHAT_OFFLINE);
  stopWatchingStage();
  ui.goLive.disabled = !token;
  ui.stop.disabled = true;
  await current?.close();
}

// --- guests on stage ---------------------------------------------------------------------
const STAGE_SLOTS = 5;
let stageView = null; // WHEP session showing the guests (own media excluded by the server)
let grid = null;

/** Plays the guests: a multi-slot WHEP session whose "stage" channel lists who is where. */
async function watchStage() {
  if (stageView || !grid) return;
  const view = new OnairSession(`/whep/${encodeURIComponent(room)}`, { token });
  stageView = view;
  try {
    await view.play({ slots: STAGE_SLOTS, stage: true });
    if (stageView === view) grid.attach(view, view.stage);
  } catch (error) {
    if (stageView === view) stageView = null;
    showMessage(document.getElementById("stage-notices"), `Cannot show the guests: ${error.message}`);
  }
}

function stopWatchingStage() {
  const view = stageView;
  stageView = null;
  grid?.clear();
  renderGuests([]);
  view?.close();
}

/** The guest list with Mute/Remove; names are text, never HTML. */
function renderGuests(participants) {
  const list = document.getElementById("guest-list");
  const rows = participants.filter((p) => p.role === "guest").map((p) => {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "guest");
    li.dataset.user = p.id;
    const name = document.createElement("span");
    name.textContent = p.muted ? `${p.name} (muted)` : p.name;
    const mute = document.createElement("button");
    mute.type = "button";
    mute.textContent = p.muted ? "Unmute" : "Mute";
    mute.setAttribute("data-testid", "guest-mute");
    mute.addEventListener("click", () => control(p.id, p.muted ? "unmute" : "mute"));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.setAttribute("data-testid", "guest-remove");
    remove.addEventListener("click", () => control(p.id, "remove"));
    li.append(name, mute, remove);
    return li;
  });
  list.replaceChildren(...rows);
}

async function control(user, action) {
  try {
    const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/stage/${encodeURIComponent(user)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ action }),
    });
    if (!response.ok) throw await errorFromResponse(response);
  } catch (error) {
    fail(`Could not ${action} the guest: ${error.message}`);
  }
}

/** Asks the server for a guest invite (POST /api/rooms/{room}/invites) and shows the link. */
async function invite() {
  try {
    const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/invites`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: "{}",
    });
    if (!response.ok) throw await errorFromResponse(response);
    const body = await response.json();
    const url = body.url ? new URL(body.url, location.href).href
      : `${location.origin}/guest/${encodeURIComponent(room)}?token=${encodeURIComponent(body.token)}`;
    const input = document.getElementById("invite-link");
    input.value = url;
    document.getElementById("invite-box").hidden = false;
  } catch (error) {
    fail(`Could not create an invite: ${error.message}`);
  }
}

function initStage() {
  grid = new StageGrid(document.getElementById("stage-grid"), {
    muted: false,
    onStage: (message) => renderGuests(message.participants),
    onSystem: (message) => {
      document.getElementById("stage-notices").textContent = systemText(message);
    },
  });
  const inviteButton = document.getElementById("invite");
  inviteButton.disabled = !token;
  inviteButton.addEventListener("click", invite);
  document.getElementById("copy-invite").addEventListener("click", () => {
    const input = document.getElementById("invite-link");
    navigator.clipboard?.writeText(input.value).catch(() => input.select());
  });
}

async function stop() {
  await endSession();
  setStatus(ui.status, "idle", "offline");
}

async function pollViewers() {
  const asked = ui.status.dataset.state === "live" ? session : null;
  try {
    const info = await fetchRoom(room, token);
    ui.viewers.textContent = String(info.viewers ?? 0);
    if (asked && asked === session && wasReplaced(asked, info.publisher)) {
      await endSession();
      setStatus(ui.status, "error", "not live");
      fail("This room went live from another tab or device with the same token, so this one stopped.");
    }
  } catch {
    ui.viewers.textContent = "–";
  }
  setTimeout(pollViewers, VIEWER_POLL_MS);
}

/** True when the room's publisher is another WHIP session than ours (same user went live elsewhere). */
function wasReplaced(current, publisher) {
  const id = publisher?.session;
  if (typeof id !== "string" || !id || !current.resource) return false;
  return !new URL(current.resource).pathname.endsWith(`/${id}`);
}

async function init() {
  if (!room) {
    setStatus(ui.status, "error", "no room");
    fail("This address names no room. Open /studio/<room>?token=<token>.");
    return;
  }
  document.title = `onair studio · ${room}`;
  ui.roomName.textContent = room;
  const watchUrl = `${location.origin}/watch/${encodeURIComponent(room)}`;
  ui.watchLink.href = watchUrl;
  ui.watchLink.textContent = watchUrl;
  if (!token) showTokenHelp();
  initStage();
  if (token) chat = mountChat(ui.chat, { room, token, transport: "datachannel", idleText: CHAT_OFFLINE });
  pollViewers();

  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus(ui.status, "error", "no camera access");
    fail("The browser allows camera access only on secure pages: open the studio over HTTPS (onair serve --https) or on localhost.");
    return;
  }
  setStatus(ui.status, "idle", "opening camera…");
  try {
    await openDefaultMedia();
  } catch (error) {
    setStatus(ui.status, "error", "no camera");
    fail(mediaErrorText(error));
    return;
  }
  ui.preview.srcObject = stream;
  await refreshDeviceLists();
  navigator.mediaDevices.addEventListener("devicechange", () => refreshDeviceLists());
  ui.camera.addEventListener("change", () => switchDevice("video", ui.camera.value));
  ui.microphone.addEventListener("change", () => switchDevice("audio", ui.microphone.value));
  ui.goLive.addEventListener("click", goLive);
  ui.stop.addEventListener("click", stop);
  ui.goLive.disabled = !token;
  setStatus(ui.status, "idle", "offline");
}

addEventListener("pagehide", () => session && stop());
init();
