// onair web: recordings page logic (lists GET /api/recordings; plays a recording in the page or downloads it)
import { errorFromResponse, setStatus, showMessage } from "/web/onair.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;

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

function play(recording) {
  $("player").hidden = false;
  $("player-title").textContent = `${recording.room} · ${recording.start.replace("T", " ").slice(0, 19)}`;
  const video = $("video");
  video.src = recording.url;
  video.play().catch(() => {});
  $("player").scrollIntoView({ behavior: "smooth" });
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

refresh();
