// onair web: guest page logic — camera preview, Join stage (WHIP with the invite's guest token), watch the stage over multi-slot WHEP with chat, Leave; shows when the broadcaster mutes or removes the guest
import { OnairSession, roomFromPath, tokenFromQuery, setStatus, showMessage } from "/web/onair.js";
import { mountChat } from "/web/chat.js";
import { StageGrid, systemText } from "/web/stage.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  main: $("main"),
  preview: $("preview"),
  join: $("join"),
  leave: $("leave"),
  mutedNote: $("muted-note"),
  error: $("error"),
  roomName: $("room-name"),
  chat: $("chat"),
  stageGrid: $("stage-grid"),
  stageNotices: $("stage-notices"),
};
const STAGE_SLOTS = 5;

const room = roomFromPath("guest");
const token = tokenFromQuery();
let stream = null;
let publisher = null;
let viewer = null;
let me = null;
let chat = null;
let grid = null;

async function openCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    ui.preview.srcObject = stream;
    ui.join.disabled = !token;
    setStatus(ui.status, "idle", "ready to join");
  } catch (error) {
    setStatus(ui.status, "error", "no camera");
    showMessage(ui.error, `The camera or microphone is not available: ${error.message}`);
  }
}

async function join() {
  if (publisher || !stream) return;
  ui.join.disabled = true;
  showMessage(ui.error, "");
  setStatus(ui.status, "connecting", "joining…");
  const pub = new OnairSession(`/whip/${encodeURIComponent(room)}`, {
    token,
    onStateChange: (state) => {
      if (publisher !== pub) return;
      if (state === "connected") setStatus(ui.status, "live", "on stage");
      if (state === "failed" || state === "closed") end("Your connection to the stage ended.");
    },
  });
  publisher = pub;
  ui.leave.disabled = false;
  try {
    await pub.publish(stream);
    if (publisher !== pub) return; // left, removed or disconnected meanwhile
    const view = new OnairSession(`/whep/${encodeURIComponent(room)}`, { token });
    viewer = view;
    const main = await view.play({ chat: true, slots: STAGE_SLOTS });
    if (viewer !== view) return;
    ui.main.srcObject = main;
    ui.main.play().catch(() => {});
    grid.attach(view, view.chat);
    if (view.chat) chat?.attach(view.chat);
  } catch (error) {
    if (publisher === pub) end(error.message);
  }
}

/** Leaves (button) or reacts to being removed or disconnected. */
function end(reason = "") {
  const [pub, view] = [publisher, viewer];
  publisher = null;
  viewer = null;
  pub?.close();
  view?.close();
  grid?.clear();
  delete ui.preview.dataset.user;
  chat?.detach(reason || "You left the stage.");
  ui.main.srcObject = null;
  ui.leave.disabled = true;
  ui.join.disabled = !token || !stream;
  ui.mutedNote.hidden = true;
  setStatus(ui.status, reason ? "error" : "idle", reason ? "off stage" : "you left");
  if (reason) showMessage(ui.error, reason);
}

function onStage(message) {
  me = message.you;
  ui.preview.dataset.user = me; // the preview is the only place this page shows its own media
  const self = message.participants.find((p) => p.id === me);
  ui.mutedNote.hidden = !self?.muted;
  if (self) setStatus(ui.status, "live", self.muted ? "on stage (muted)" : "on stage");
}

function onSystem(message) {
  ui.stageNotices.textContent = systemText(message);
  if (message.event === "guest_removed" && message.user?.id === me) {
    end("The broadcaster removed you from the stage.");
  }
}

function init() {
  ui.roomName.textContent = room ?? "";
  if (!room) {
    showMessage(ui.error, "This address names no room. Open the invite link you were sent.");
    return;
  }
  if (!token) showMessage(ui.error, "This link has no invite token; ask the broadcaster for a guest link.");
  grid = new StageGrid(ui.stageGrid, { main: ui.main, muted: false, onStage, onSystem });
  chat = mountChat(ui.chat, { room, token, transport: "datachannel", idleText: "Join the stage to chat." });
  ui.join.addEventListener("click", join);
  ui.leave.addEventListener("click", () => end());
  addEventListener("pagehide", () => end());
  openCamera();
}

init();
