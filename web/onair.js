// onair web: shared WHIP/WHEP client (offer, ICE gathering, POST, Link ice servers, DELETE) and page helpers.

/** Longest wait for ICE gathering before the offer is sent anyway (non-trickle). */
const GATHER_TIMEOUT_MS = 1000;

/** ICE servers learnt from `Link` headers, per endpoint origin, reused by later sessions. */
const iceServerCache = new Map();

/** Sessions whose PeerConnection exists and that are not closed: `window.onairSessions` in the
 * console (and for tests) reaches their `pc` for getStats(); diagnostics only. */
const liveSessions = new Set();
globalThis.onairSessions = liveSessions;

/** An error the pages can show as is: `message` is human text, `code` is machine-readable. */
export class OnairError extends Error {
  constructor(message, { status = 0, code = "error" } = {}) {
    super(message);
    this.name = "OnairError";
    this.status = status;
    this.code = code;
  }

  /** True when retrying the same request cannot help (bad token, wrong role, bad offer). */
  get permanent() {
    return [400, 401, 403, 406, 415].includes(this.status);
  }
}

/**
 * One WHIP (publish) or WHEP (play) session against an onair endpoint such as `/whip/demo`.
 * `onStateChange(state)` receives the PeerConnection's `connectionState`.
 */
export class OnairSession {
  constructor(endpoint, { token = "", onStateChange = () => {}, iceTransportPolicy } = {}) {
    this.endpoint = new URL(endpoint, location.href).href;
    this.token = token;
    this.onStateChange = onStateChange;
    this.pc = null;
    this.resource = null;
    this.etag = null;
    this.closed = false;
    /** The "chat" RTCDataChannel, when publish/play were asked for one (DESIGN.md §4). */
    this.chat = null;
    /** `?ice=relay` on the page: media only through TURN (the embedded server or `ice_servers`). */
    this.iceTransportPolicy = iceTransportPolicy ?? (new URLSearchParams(location.search).get("ice") === "relay" ? "relay" : "all");
  }

  /**
   * A relay-only connection gathers nothing without TURN servers, so they are fetched before the
   * RTCPeerConnection exists: an authorised `OPTIONS` on the endpoint answers with the same `Link`
   * ice-server headers as the `201` (RFC 9725 §4.6).
   */
  async #prefetchIceServers() {
    const origin = new URL(this.endpoint).origin;
    if (this.iceTransportPolicy !== "relay" || iceServerCache.has(origin)) return;
    let response;
    try {
      response = await fetch(this.endpoint, { method: "OPTIONS", headers: this.#authHeaders() });
    } catch {
      throw new OnairError("Cannot reach the onair server.", { code: "network" });
    }
    if (!response.ok) throw await errorFromResponse(response); // e.g. the token cannot publish here
    const iceServers = parseIceServerLinks(response.headers.get("Link"));
    if (iceServers.length === 0) {
      const why = "relay-only (?ice=relay) needs TURN servers, and the server offered none";
      throw new OnairError(`${why} (is its TURN server off, or a token missing?)`, {
        status: response.status,
        code: "no_ice_servers",
      });
    }
    iceServerCache.set(origin, iceServers);
  }

  /** WHIP: sends the tracks of `stream` (sendonly, H.264 preferred); `chat` adds the chat data channel. */
  async publish(stream, { maxVideoBitrate = 2_500_000, chat = false } = {}) {
    await this.#prefetchIceServers();
    const pc = this.#createPeerConnection();
    for (const track of [...stream.getVideoTracks(), ...stream.getAudioTracks()]) {
      const init = { direction: "sendonly", streams: [stream] };
      if (track.kind === "video") init.sendEncodings = [{ maxBitrate: maxVideoBitrate }];
      const transceiver = pc.addTransceiver(track, init);
      preferCodecs(transceiver, track.kind);
    }
    if (chat) this.chat = pc.createDataChannel("chat"); // after the media: m=application comes last
    await this.#negotiate();
  }

  /**
   * WHEP: receives video and audio; returns the MediaStream of the first (slot 0) pair. `chat`
   * adds the chat data channel; `slots` > 1 offers that many audio+video pairs (one per person
   * on stage, see `this.tracks` by mid and the server's `stage` messages); `stage` adds a
   * "stage" data channel that only carries `stage` messages (`this.stage`).
   */
  async play({ chat = false, slots = 1, stage = false } = {}) {
    await this.#prefetchIceServers();
    const pc = this.#createPeerConnection();
    const stream = new MediaStream();
    /** Received tracks by the mid of their m-section. */
    this.tracks = new Map();
    const first = [];
    pc.addEventListener("track", (event) => {
      this.tracks.set(event.transceiver.mid, event.track);
      if (first.includes(event.transceiver)) stream.addTrack(event.track);
      this.onTrack?.(event);
    });
    for (let i = 0; i < Math.max(1, slots); i += 1) {
      for (const kind of ["video", "audio"]) {
        const transceiver = pc.addTransceiver(kind, { direction: "recvonly" });
        preferCodecs(transceiver, kind);
        if (i === 0) first.push(transceiver);
      }
    }
    if (chat) this.chat = pc.createDataChannel("chat"); // after the media: m=application comes last
    if (stage) this.stage = pc.createDataChannel("stage");
    await this.#negotiate();
    return stream;
  }

  /** The transceiver carrying `kind` ("video" or "audio"), if any. */
  transceiver(kind) {
    return this.pc?.getTransceivers().find((t) => t.receiver.track.kind === kind) ?? null;
  }

  /** Ends the session: DELETE on the resource (best effort) and close the PeerConnection. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    liveSessions.delete(this);
    this.pc?.close();
    await this.#deleteResource();
  }

  async #deleteResource() {
    const resource = this.resource;
    this.resource = null;
    if (!resource) return;
    try {
      await fetch(resource, { method: "DELETE", headers: this.#authHeaders(), keepalive: true });
    } catch {
      // The server ends sessions whose media stops anyway.
    }
  }

  #createPeerConnection() {
    if (this.pc) throw new Error("session already started");
    const iceServers = iceServerCache.get(new URL(this.endpoint).origin) ?? [];
    const pc = new RTCPeerConnection({
      iceServers,
      bundlePolicy: "max-bundle",
      iceTransportPolicy: this.iceTransportPolicy,
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.closed) this.onStateChange(pc.connectionState);
    });
    this.pc = pc;
    liveSessions.add(this);
    return pc;
  }

  #authHeaders(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  }

  async #negotiate() {
    const pc = this.pc;
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, GATHER_TIMEOUT_MS);
    if (this.closed) throw new OnairError("session closed", { code: "closed" });

    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: this.#authHeaders({ "Content-Type": "application/sdp" }),
        body: pc.localDescription.sdp,
      });
    } catch {
      throw new OnairError("Cannot reach the onair server.", { code: "network" });
    }
    if (!response.ok) throw await errorFromResponse(response);

    const location = response.headers.get("Location");
    if (location) this.resource = new URL(location, response.url || this.endpoint).href;
    if (this.closed) {
      await this.#deleteResource(); // closed while the POST was in flight
      throw new OnairError("session closed", { code: "closed" });
    }
    this.etag = response.headers.get("ETag");
    const iceServers = parseIceServerLinks(response.headers.get("Link"));
    if (iceServers.length > 0) {
      try {
        // Applies to ICE restarts and, through the cache, to the next session from the start.
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
        iceServerCache.set(new URL(this.endpoint).origin, iceServers);
      } catch (error) {
        console.warn("onair: ignoring unusable ice servers from the Link header", error);
      }
    }
    const answer = await response.text();
    if (this.closed) return; // close() has sent the DELETE
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }
}

/** Puts H.264 packetization-mode=1 first on a transceiver (no-op where the API is missing). */
export function preferCodecs(transceiver, kind) {
  if (kind !== "video" || typeof transceiver.setCodecPreferences !== "function") return;
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.("video")?.codecs;
  if (!codecs) return;
  const isPreferred = (c) =>
    c.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? "");
  const preferred = codecs.filter(isPreferred);
  if (preferred.length === 0) return; // the server answers 406 with a clear message
  // Constrained Baseline (42e0..) first: every decoder plays it.
  preferred.sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences([...preferred, ...codecs.filter((c) => !isPreferred(c))]);
  } catch {
    // Keep the browser's default order.
  }
}

function rank(codec) {
  return /profile-level-id=42e0/i.test(codec.sdpFmtpLine ?? "") ? 0 : 1;
}

/** Resolves when ICE gathering is complete or after `timeoutMs`, whichever comes first. */
export function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
  });
}

/** Parses `Link: <turn:...>; rel="ice-server"; username="u"; credential="c"` into RTCIceServers. */
export function parseIceServerLinks(header) {
  if (!header) return [];
  const servers = [];
  for (const [, url, rest] of header.matchAll(/<([^>]*)>([^<]*)/g)) {
    const params = {};
    for (const m of rest.matchAll(/;\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,\s]+))/g)) {
      params[m[1].toLowerCase()] = (m[2] ?? m[3]).replace(/\\(.)/g, "$1");
    }
    if (!(params.rel ?? "").split(/\s+/).includes("ice-server")) continue;
    const server = { urls: url };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

/** Turns an error response (JSON `{"error","message"}` or anything else) into an OnairError. */
export async function errorFromResponse(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (typeof body.error === "string") code = body.error;
      if (typeof body.message === "string" && body.message) message = body.message;
    } catch {
      if (text.trim()) message = text.trim().slice(0, 300);
    }
  } catch {
    // Keep the status line.
  }
  return new OnairError(message, { status: response.status, code });
}

/** Room state from `GET /api/rooms/{room}`; a missing room is reported as not live. */
export async function fetchRoom(room, token = "") {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`/api/rooms/${encodeURIComponent(room)}`, { headers, cache: "no-store" });
  if (response.status === 404) return { room, live: false, publishers: 0, viewers: 0, exists: false };
  if (!response.ok) throw await errorFromResponse(response);
  return { exists: true, ...(await response.json()) };
}

/** The room of a `/studio/{room}` or `/watch/{room}` address, or "" when there is none. */
export function roomFromPath(prefix) {
  const match = location.pathname.match(new RegExp(`^/${prefix}/([^/]+)/?$`));
  if (!match) return "";
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return "";
  }
}

/** The `?token=` of the current address ("" when absent). */
export function tokenFromQuery() {
  return new URLSearchParams(location.search).get("token")?.trim() ?? "";
}

/** Sets a status element's text and `data-state` (styled by CSS, read by tests). */
export function setStatus(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

/** Shows `message` in `element` (hidden when empty). */
export function showMessage(element, message) {
  element.textContent = message ?? "";
  element.hidden = !message;
}
