// onair web: the stage grid shared by watch, guest and studio pages — one tile per person on stage from the server's per-session "stage" messages (which slot/mid shows whom), the active speaker highlighted, guest join/leave/mute/removal notices. Names are text, never HTML.

/** Lays out the people a multi-slot WHEP session shows. Slot 0 may go to a `main` video element. */
export class StageGrid {
  constructor(container, { main = null, muted = true, onStage = () => {}, onSystem = () => {} } = {}) {
    this.container = container;
    this.main = main;
    this.muted = muted;
    this.onStage = onStage;
    this.onSystem = onSystem;
    this.session = null;
    this.tiles = new Map(); // user id -> { tile, video, label, mids }
    this.stage = null;
    this.speaker = null;
  }

  /** Follows `session` (an OnairSession after play) and the data channel carrying its stage messages. */
  attach(session, channel) {
    this.clear();
    this.session = session;
    // A closed session's channel can still deliver a message queued before it closed; only the
    // attached session speaks for the stage (a guest who left must not be marked on it again).
    const current = () => this.session === session;
    session.onTrack = () => current() && this.#render();
    channel?.addEventListener("message", (event) => {
      if (!current()) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handle(message);
    });
  }

  /** Handles one server message; ignores types that are not about the stage. */
  handle(message) {
    if (message.type === "stage") {
      this.stage = message;
      this.#render();
      this.onStage(message);
    } else if (message.type === "speaker") {
      this.speaker = message.user ?? null;
      this.#highlight();
    } else if (message.type === "system" && typeof message.event === "string" && message.event.startsWith("guest_")) {
      this.onSystem(message);
    }
  }

  /** Mutes or unmutes every tile. */
  setMuted(muted) {
    this.muted = muted;
    for (const { video } of this.tiles.values()) video.muted = muted;
  }

  /** Removes every tile and stops following the attached session. */
  clear() {
    this.session = null;
    for (const { tile } of this.tiles.values()) tile.remove();
    this.tiles.clear();
    this.stage = null;
    if (this.main) delete this.main.dataset.user;
  }

  #render() {
    const shown = (this.stage?.participants ?? []).filter((p) => p.slot !== null && p.slot !== undefined);
    const keep = new Set();
    for (const p of shown) {
      if (this.main && p.slot === 0) {
        this.main.dataset.user = p.id;
        this.main.title = p.name;
        continue;
      }
      keep.add(p.id);
      let entry = this.tiles.get(p.id);
      if (!entry) {
        const tile = document.createElement("figure");
        tile.className = "stage-tile";
        tile.dataset.testid = "stage-tile";
        tile.setAttribute("data-testid", "stage-tile");
        const video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        video.muted = this.muted;
        video.setAttribute("data-testid", "stage-video");
        const label = document.createElement("figcaption");
        tile.append(video, label);
        this.container.append(tile);
        entry = { tile, video, label, mids: "" };
        this.tiles.set(p.id, entry);
      }
      entry.tile.dataset.user = p.id;
      entry.label.textContent = p.muted ? `${p.name} (muted)` : p.name;
      const mids = `${p.video_mid}/${p.audio_mid}`;
      const tracks = [this.session?.tracks?.get(p.video_mid), this.session?.tracks?.get(p.audio_mid)].filter(Boolean);
      if (entry.mids !== mids || entry.video.srcObject?.getTracks().length !== tracks.length) {
        entry.mids = mids;
        entry.video.srcObject = new MediaStream(tracks);
        entry.video.play().catch(() => {});
      }
    }
    for (const [user, { tile }] of this.tiles) {
      if (!keep.has(user)) {
        tile.remove();
        this.tiles.delete(user);
      }
    }
    this.container.hidden = this.tiles.size === 0;
    this.#highlight();
  }

  #highlight() {
    for (const [user, { tile }] of this.tiles) tile.classList.toggle("speaking", user === this.speaker);
    if (this.main) {
      const speaking = Boolean(this.speaker) && this.main.dataset.user === this.speaker;
      this.main.classList.toggle("speaking", speaking);
    }
  }
}

/** Human text for a guest_* system event. */
export function systemText(message) {
  const name = message.user?.name ?? "A guest";
  switch (message.event) {
    case "guest_joined": return `${name} joined the stage`;
    case "guest_left": return `${name} left the stage`;
    case "guest_muted": return `${name} was muted`;
    case "guest_unmuted": return `${name} was unmuted`;
    case "guest_removed": return `${name} was removed from the stage`;
    default: return `${name}: ${message.event}`;
  }
}
