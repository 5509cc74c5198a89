// onair web: recordings page logic (lists GET /api/recordings; plays a recording in the page or downloads it;
// replays the broadcast's chat from GET /recordings/{stem}/chat beside the player, in sync with video.currentTime)
import { errorFromResponse, setStatus, showMessage } from "/web/onair.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;
/** How often the chat replay follows the player while it plays (timeupdate alone is ~4 Hz). */
const FOLLOW_MS = 100;
const BADGES = { broadcaster: "host", moderator: "mod", guest: "guest" };

function duration(seconds) {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/**
 * The chat of one recording replayed against the player's clock: an event shows once
 * `video.currentTime` reaches its `offset`; seeking re-renders from the start. Text is only ever set as
 * text (textContent), never parsed as HTML.
 */
class ChatReplay {
  constructor(events) {
    this.events = events.filter((e) => typeof e.offset === "number").sort((a, b) => a.offset - b.offset);
    /** Index of the last event applied, -1 for none. */
    this.applied = -1;
    this.list = $("replay-messages");
    this.list.replaceChildren();
  }

  /** Index of the last event whose offset is at or before `time`. */
  indexAt(time) {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid].offset <= time) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Shows the chat as it was at `time` (seconds into the recording). */
  seek(time) {
    const target = this.indexAt(time);
    if (target === this.applied) return;
    if (target < this.applied) {
      this.list.replaceChildren();
      this.applied = -1;
    }
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    for (let i = this.applied + 1; i <= target; i += 1) this.apply(this.events[i]);
    this.applied = target;
    if (atBottom || target < 0) this.list.scrollTop = this.list.scrollHeight;
  }

  apply(event) {
    switch (event.type) {
      case "chat":
        this.list.append(this.line(event, "chat-line", event.text ?? ""));
        break;
      case "reaction":
        this.list.append(this.line(event, "chat-line reaction", event.emoji ?? ""));
        break;
      case "deleted":
        for (const item of this.list.querySelectorAll("li[data-id]")) {
          if (item.dataset.id === event.id) item.remove();
        }
        break;
      case "cleared":
        this.list.replaceChildren();
        break;
      default:
        break;
    }
  }

  line(event, className, text) {
    const item = document.createElement("li");
    item.className = className;
    item.dataset.testid = "replay-line";
    item.dataset.offset = String(event.offset);
    if (event.id) item.dataset.id = event.id;
    const user = event.user ?? {};
    const badge = BADGES[user.role];
    if (badge) {
      const b = document.createElement("span");
      b.className = `chat-badge role-${user.role}`;
      b.textContent = badge;
      item.append(b);
    }
    const name = document.createElement("span");
    name.className = "chat-name";
    name.textContent = user.name ?? user.id ?? "";
    const body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = text;
    const at = document.createElement("time");
    at.className = "hint";
    at.textContent = ` ${duration(Math.max(0, event.offset))}`;
    item.append(name, body, at);
    return item;
  }
}

let replay = null;
let follow = null;

async function loadReplay(recording, video) {
  const aside = $("replay");
  replay = null;
  $("replay-messages").replaceChildren();
  aside.hidden = !recording.chat;
  if (!recording.chat) return;
  $("replay-note").textContent = "loading the chat…";
  try {
    const response = await fetch(recording.chat);
    if (!response.ok) throw await errorFromResponse(response);
    const body = await response.json();
    if (video.dataset.file !== recording.file) return;
    replay = new ChatReplay(body.events ?? []);
    const count = replay.events.filter((e) => e.type === "chat").length;
    const notes = [`${count} message${count === 1 ? "" : "s"}, shown as the recording plays`];
    if (body.truncated) notes.push("(long chat: the rest is left out)");
    $("replay-note").textContent = notes.join(" ");
    aside.dataset.state = "ready";
    replay.seek(video.currentTime);
  } catch (error) {
    $("replay-note").textContent = `no chat replay: ${error.message}`;
    aside.dataset.state = "error";
  }
}

function play(recording) {
  $("player").hidden = false;
  $("player-title").textContent = `${recording.room} · ${recording.start.replace("T", " ").slice(0, 19)}`;
  const video = $("video");
  video.dataset.file = recording.file;
  video.src = recording.url;
  loadReplay(recording, video);
  video.play().catch(() => {});
  $("player").scrollIntoView({ behavior: "smooth" });
}

function followPlayer() {
  const video = $("video");
  const sync = () => replay?.seek(video.currentTime);
  for (const name of ["timeupdate", "seeking", "seeked", "loadedmetadata", "pause"]) video.addEventListener(name, sync);
  video.addEventListener("play", () => {
    clearInterval(follow);
    follow = setInterval(sync, FOLLOW_MS);
  });
  for (const name of ["pause", "ended", "emptied"]) video.addEventListener(name, () => clearInterval(follow));
}

function row(recording) {
  const tr = document.createElement("tr");
  tr.dataset.file = recording.file;
  const cells = [
    recording.room,
    recording.start.replace("T", " ").slice(0, 19),
    recording.state === "recording" ? `${duration(recording.duration)} (recording…)` : duration(recording.duration),
    size(recording.size),
  ];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i >= 2) td.className = "num";
    tr.append(td);
  });
  const actions = document.createElement("td");
  actions.className = "actions";
  if (recording.state !== "recording") {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Play";
    button.dataset.testid = "play";
    button.addEventListener("click", () => play(recording));
    actions.append(button);
  }
  const link = document.createElement("a");
  link.href = recording.url;
  link.download = recording.file;
  link.textContent = "Download";
  link.dataset.testid = "download";
  actions.append(link);
  if (recording.playlist) {
    const hls = document.createElement("a");
    hls.href = recording.playlist;
    hls.textContent = "HLS";
    hls.title = "VOD HLS playlist (Safari, VLC, ffplay, hls.js)";
    hls.dataset.testid = "playlist";
    actions.append(hls);
  }
  if (recording.state === "interrupted") {
    const note = document.createElement("span");
    note.className = "hint";
    note.textContent = "interrupted (fragmented MP4; repaired at the next server start)";
    actions.append(note);
  }
  tr.append(actions);
  return tr;
}

async function refresh() {
  try {
    const response = await fetch("/api/recordings", { cache: "no-store" });
    if (!response.ok) throw await errorFromResponse(response);
    const body = await response.json();
    $("rows").replaceChildren(...body.recordings.map(row));
    showMessage($("error"), "");
    $("empty").hidden = body.recordings.length > 0;
    const notes = [];
    if (!body.enabled) notes.push("Recording is switched off on this server (recordings = false).");
    if (body.write_errors) notes.push(`${body.write_errors} recording(s) stopped by write errors; see the server log.`);
    $("summary").textContent = notes.join(" ");
    setStatus($("status"), "ready", `${body.recordings.length} recording${body.recordings.length === 1 ? "" : "s"}`);
  } catch (error) {
    setStatus($("status"), "error", "error");
    showMessage($("error"), error.message);
  }
  setTimeout(refresh, REFRESH_MS);
}

followPlayer();
refresh();
