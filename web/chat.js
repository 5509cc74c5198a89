// onair web: reusable chat panel (DESIGN.md §4) over a WHIP/WHEP "chat" data channel or the /ws/{room} WebSocket
//
// Usage:
//   import { mountChat } from "/web/chat.js";
//   // LL-HLS and other pages without WebRTC: the panel opens /ws/{room}?token= and reconnects itself.
//   const chat = mountChat(document.getElementById("chat"), { room, token, transport: "websocket" });
//   // WHIP/WHEP pages: create an RTCDataChannel labelled "chat" before the offer, then hand it over,
//   // again after every reconnect (OnairSession.play({ chat: true }) / publish(stream, { chat: true })).
//   const chat = mountChat(el, { room, token, transport: "datachannel", onViewers: (n) => ... });
//   chat.attach(session.chat);   // ... chat.detach(reason) when the session ends
//
// Options: room (required), token ("" = anonymous), transport ("websocket" | "datachannel"),
// onViewers(count) (viewer count from welcome/presence), idleText (shown while detached).
// The panel never inserts received text as HTML: every string goes through textContent.
// Moderators (role broadcaster or moderator) get buttons beside each message and the commands
// of `/help` in the input box; everyone gets role badges, reactions and the viewer count.

const MAX_LINES = 200; // messages kept on screen
const MAX_INPUT = 500; // the server's default chat.max_length; it checks the real limit
const NOTICE_MS = 6000;
const REACTION_MS = 2500;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 10000;
const REACTIONS = ["🎉", "❤️", "😂", "👏", "🔥"];
const BADGES = { broadcaster: "host", moderator: "mod", guest: "guest" };
const HELP = [
  "/ban USER [SECONDS]  ban (no duration: until /unban)",
  "/unban USER",
  "/timeout USER [SECONDS]  mute (default 600 s); /untimeout USER",
  "/delete MESSAGE_ID   /clear",
  "/slow SECONDS|off   /guestsonly [on|off]",
  "/filter add WORD   /filter remove WORD",
  "/promote USER   /demote USER  (broadcaster only)",
  "/mute USER   /unmute USER   /remove USER  guests on stage (broadcaster only)",
  "USER is an id or a display name.",
];

/** Mounts a chat panel into `container`; see the comment at the top of this file. */
export function mountChat(container, options) {
  return new ChatPanel(container, options);
}

/** Parses a chat-box command into a `mod` (or `stage`) message; throws Error with a human message. */
export function parseCommand(line, resolveUser = (u) => u) {
  const [name, ...args] = line.trim().slice(1).split(/\s+/);
  const user = () => {
    if (!args[0]) throw new Error(`/${name} needs a user`);
    return resolveUser(args[0]);
  };
  const seconds = (value, fallback) => {
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value)) throw new Error(`"${value}" is not a number of seconds`);
    return Number(value);
  };
  const mod = (action, fields = {}) => ({ type: "mod", action, ...fields });
  switch ((name ?? "").toLowerCase()) {
    case "ban": {
      const s = seconds(args[1], undefined);
      return mod("ban", s === undefined ? { user: user() } : { user: user(), seconds: s });
    }
    case "unban":
      return mod("unban", { user: user() });
    case "timeout": {
      const s = seconds(args[1], undefined);
      return mod("timeout", s === undefined ? { user: user() } : { user: user(), seconds: s });
    }
    case "untimeout":
      return mod("timeout", { user: user(), seconds: 0 });
    case "delete":
      if (!args[0]) throw new Error("/delete needs a message id (or use the del button)");
      return mod("delete", { id: args[0] });
    case "clear":
      return mod("clear");
    case "slow":
      if (!args[0]) throw new Error("/slow needs seconds, or off");
      return mod("slow", { seconds: args[0] === "off" ? 0 : seconds(args[0]) });
    case "guestsonly":
    case "guests_only":
      if (args[0] === undefined) return mod("guests_only");
      if (args[0] !== "on" && args[0] !== "off") throw new Error("/guestsonly takes on or off");
      return mod("guests_only", { on: args[0] === "on" });
    case "filter":
      if (!["add", "remove"].includes(args[0]) || !args[1]) throw new Error("/filter add WORD or /filter remove WORD");
      return mod(args[0] === "add" ? "filter_add" : "filter_remove", { word: args[1] });
    case "promote":
      return mod("promote", { user: user() });
    case "demote":
      return mod("demote", { user: user() });
    case "mute":
    case "unmute":
    case "remove":
      return { type: "stage", action: name.toLowerCase(), user: user() };
    default:
      throw new Error(`unknown command /${name ?? ""}; type /help`);
  }
}

/** Creates an element with a class, text and attributes; text always via textContent. */
function el(tag, className = "", text = null, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

class ChatPanel {
  constructor(container, { room, token = "", transport = "websocket", onViewers = () => {}, idleText = "connecting…" } = {}) {
    if (!room) throw new Error("mountChat needs a room");
    this.room = room;
    this.token = token;
    this.transport = transport;
    this.onViewers = onViewers;
    this.idleText = idleText;
    this.you = null;
    this.state = { slow: 0, guests_only: false, promoted: [] };
    this.users = new Map(); // id -> {id, name, role}: for commands by name
    this.channel = null;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = 0;
    this.noticeTimer = 0;
    this.destroyed = false;
    this.banned = false;
    this.#build(container);
    if (transport === "websocket") this.#connectSocket();
    else this.#setStatus("idle", idleText);
  }

  /** Data-channel transport: use `channel` (an RTCDataChannel labelled "chat") from now on. */
  attach(channel) {
    this.#detachChannel();
    this.channel = channel;
    const onMessage = (event) => this.#receive(event.data);
    const onOpen = () => this.#setStatus("connecting", "joining the chat…");
    const onClose = () => {
      if (this.channel === channel) this.#setStatus("idle", this.banned ? "banned" : "chat disconnected");
    };
    channel.addEventListener("message", onMessage);
    channel.addEventListener("open", onOpen);
    channel.addEventListener("close", onClose);
    this.channelCleanup = () => {
      channel.removeEventListener("message", onMessage);
      channel.removeEventListener("open", onOpen);
      channel.removeEventListener("close", onClose);
    };
    this.#setStatus("connecting", channel.readyState === "open" ? "joining the chat…" : "connecting…");
  }

  /** Data-channel transport: the session ended; `reason` is shown until the next attach. */
  detach(reason = this.idleText) {
    this.#detachChannel();
    if (!this.banned) this.#setStatus("idle", reason);
    this.#setWritable(false);
  }

  /** Sends a protocol message (an object); false when not connected. */
  send(message) {
    const text = JSON.stringify(message);
    if (this.channel?.readyState === "open") {
      this.channel.send(text);
      return true;
    }
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(text);
      return true;
    }
    this.#notice("Not connected to the chat.");
    return false;
  }

  /** Sends a chat message, or runs a /command. */
  say(text) {
    const line = text.trim();
    if (!line) return false;
    if (line === "/help") {
      this.#notice(HELP.join("\n"), NOTICE_MS * 3);
      return true;
    }
    if (line.startsWith("/")) {
      try {
        return this.send(parseCommand(line, (u) => this.#resolveUser(u)));
      } catch (error) {
        this.#notice(error.message);
        return false;
      }
    }
    return this.send({ type: "chat", text: line });
  }

  /** Removes the panel and closes its connection. */
  destroy() {
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    this.#detachChannel();
    this.socket?.close(1000);
    this.root.remove();
  }

  // ---- transport ----

  #detachChannel() {
    this.channelCleanup?.();
    this.channelCleanup = null;
    this.channel = null;
  }

  #connectSocket() {
    if (this.destroyed || this.banned) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/${encodeURIComponent(this.room)}${query}`);
    this.socket = socket;
    this.#setStatus("connecting", this.attempt === 0 ? "connecting…" : "reconnecting…");
    socket.addEventListener("message", (event) => this.#receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.destroyed) return;
      this.socket = null;
      this.#setWritable(false);
      if (this.banned || event.code === 1008) {
        this.#setStatus("error", "banned from this chat");
        return;
      }
      const delay = Math.min(BACKOFF_MIN_MS * 2 ** this.attempt, BACKOFF_MAX_MS);
      this.attempt += 1;
      this.#setStatus("connecting", `reconnecting in ${Math.round(delay / 1000)} s…`);
      this.retryTimer = setTimeout(() => this.#connectSocket(), delay);
    });
  }

  // ---- protocol ----

  #receive(data) {
    let message;
    try {
      message = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return; // not ours
    }
    switch (message.type) {
      case "welcome":
        return this.#welcome(message);
      case "chat":
        return this.#addLine(message);
      case "reaction":
        return this.#reaction(message);
      case "deleted":
        this.list.querySelector(`li[data-id="${CSS.escape(String(message.id))}"]`)?.remove();
        return;
      case "cleared":
        this.list.replaceChildren(el("li", "chat-system", "The chat was cleared by a moderator."));
        return;
      case "state":
        return this.#applyState(message);
      case "presence":
        for (const user of message.joined ?? []) this.#remember(user);
        return this.#viewers(message.viewers);
      case "error":
        if (message.code === "banned") {
          this.banned = true;
          this.#setStatus("error", "banned from this chat");
        }
        this.#notice(message.message || message.code);
        return;
      default:
        return; // newer server: ignore what this page does not know
    }
  }

  #welcome(message) {
    this.attempt = 0;
    this.you = message.you;
    this.#remember(message.you);
    this.list.replaceChildren();
    for (const line of message.history ?? []) this.#addLine(line);
    this.#applyState(message.state ?? {});
    this.#viewers(message.viewers);
    this.root.dataset.role = this.you?.role ?? "";
    this.#setStatus("connected", `chatting as ${this.you?.name ?? "?"}`);
    this.#setWritable(true);
  }

  get #moderates() {
    return this.you?.role === "broadcaster" || this.you?.role === "moderator";
  }

  #remember(user) {
    if (user?.id) this.users.set(user.id, user);
    if (this.users.size > 2000) this.users.delete(this.users.keys().next().value);
  }

  /** An id as typed, or the id of the one known user with that display name. */
  #resolveUser(text) {
    if (this.users.has(text)) return text;
    const named = [...this.users.values()].filter((u) => u.name?.toLowerCase() === text.toLowerCase());
    return named.length === 1 ? named[0].id : text;
  }

  #viewers(count) {
    if (typeof count !== "number") return;
    this.viewerCount.textContent = `${count} watching`;
    this.onViewers(count);
  }

  #addLine(line) {
    if (!line?.id || !line.user) return;
    this.#remember(line.user);
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const item = el("li", "chat-line", null, { "data-id": line.id, "data-user": line.user.id, "data-testid": "chat-line" });
    const badge = BADGES[line.user.role];
    if (badge) item.append(el("span", `chat-badge role-${line.user.role}`, badge));
    const name = el("span", "chat-name", line.user.name ?? line.user.id);
    if (line.ts) name.title = new Date(line.ts).toLocaleTimeString();
    item.append(name, el("span", "chat-text", line.text ?? ""));
    if (this.#moderates && line.user.id !== this.you?.id) item.append(this.#modButtons(line));
    this.list.append(item);
    while (this.list.children.length > MAX_LINES) this.list.firstElementChild.remove();
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  #modButtons(line) {
    const box = el("span", "chat-actions");
    const button = (label, title, testid, message) => {
      const b = el("button", "chat-action", label, { type: "button", title, "aria-label": title, "data-testid": testid });
      b.addEventListener("click", () => this.send(message));
      box.append(b);
    };
    const who = line.user.name ?? line.user.id;
    button("del", "Delete this message", "chat-delete", { type: "mod", action: "delete", id: line.id });
    button("mute", `Time out ${who} for 10 minutes`, "chat-timeout", { type: "mod", action: "timeout", user: line.user.id, seconds: 600 });
    button("ban", `Ban ${who}`, "chat-ban", { type: "mod", action: "ban", user: line.user.id });
    return box;
  }

  #reaction(message) {
    if (this.reactionsBox.children.length >= 20) this.reactionsBox.firstElementChild.remove();
    const bubble = el("span", "chat-reaction", message.emoji ?? "", { title: message.user?.name ?? "" });
    this.reactionsBox.append(bubble);
    setTimeout(() => bubble.remove(), REACTION_MS);
  }

  #applyState(state) {
    this.state = { ...this.state, ...state };
    const badges = [];
    if (this.state.slow > 0) badges.push(`slow mode ${this.state.slow} s`);
    if (this.state.guests_only) badges.push("guests only");
    this.modes.replaceChildren(...badges.map((text) => el("span", "chat-mode", text)));
    this.modPanel.hidden = !this.#moderates;
    if (this.#moderates) this.#renderModPanel();
  }

  #renderModPanel() {
    const section = (title, items, render) => {
      const box = el("div", "chat-mod-section");
      box.append(el("h3", "", title));
      if (!items?.length) box.append(el("p", "chat-mod-empty", "none"));
      else {
        const ul = el("ul");
        for (const item of items) ul.append(render(item));
        box.append(ul);
      }
      return box;
    };
    const row = (text, label, message) => {
      const li = el("li", "", text);
      const b = el("button", "chat-action", label, { type: "button" });
      b.addEventListener("click", () => this.send(message));
      li.append(" ", b);
      return li;
    };
    const until = (r) => (r.until ? ` until ${new Date(r.until).toLocaleTimeString()}` : "");
    const parts = [
      section("Banned", this.state.bans, (r) => row(`${r.user.name}${until(r)}`, "unban", { type: "mod", action: "unban", user: r.user.id })),
      section("Timed out", this.state.timeouts, (r) => row(`${r.user.name}${until(r)}`, "lift", { type: "mod", action: "timeout", user: r.user.id, seconds: 0 })),
      section("Filtered words", this.state.filter, (w) => row(w, "remove", { type: "mod", action: "filter_remove", word: w })),
    ];
    if (this.you?.role === "broadcaster") {
      parts.push(section("Promoted moderators", this.state.promoted, (u) => row(u.name, "demote", { type: "mod", action: "demote", user: u.id })));
    }
    parts.push(el("pre", "chat-help", HELP.join("\n")));
    this.modBody.replaceChildren(...parts);
  }

  // ---- view ----

  #setStatus(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }

  #setWritable(writable) {
    this.input.disabled = !writable;
    this.sendButton.disabled = !writable;
    for (const b of this.reactButtons) b.disabled = !writable;
  }

  #notice(text, ms = NOTICE_MS) {
    clearTimeout(this.noticeTimer);
    this.noticeBox.textContent = text;
    this.noticeBox.hidden = !text;
    this.noticeTimer = setTimeout(() => (this.noticeBox.hidden = true), ms);
  }

  #build(container) {
    const root = el("section", "chat", null, { "data-testid": "chat", "aria-label": "Chat" });
    const head = el("header", "chat-head");
    this.viewerCount = el("span", "chat-viewers", "", { "data-testid": "chat-viewers" });
    this.modes = el("span", "chat-modes", null, { "data-testid": "chat-modes" });
    head.append(el("h2", "", "Chat"), this.modes, this.viewerCount);
    this.status = el("p", "chat-status", null, { "data-testid": "chat-status", role: "status" });
    this.list = el("ol", "chat-messages", null, { "data-testid": "chat-messages", "aria-live": "polite" });
    this.reactionsBox = el("div", "chat-reactions", null, { "aria-hidden": "true", "data-testid": "chat-reactions" });
    this.noticeBox = el("p", "chat-notice", null, { "data-testid": "chat-notice", role: "alert" });
    this.noticeBox.hidden = true;

    const form = el("form", "chat-form");
    this.input = el("input", "", null, {
      type: "text",
      maxlength: String(MAX_INPUT),
      placeholder: "Say something… (/help for commands)",
      "aria-label": "Chat message",
      "data-testid": "chat-input",
      autocomplete: "off",
    });
    this.sendButton = el("button", "", "Send", { type: "submit", "data-testid": "chat-send" });
    form.append(this.input, this.sendButton);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.say(this.input.value)) this.input.value = "";
    });

    const reactions = el("div", "chat-react-buttons");
    this.reactButtons = REACTIONS.map((emoji) => {
      const b = el("button", "chat-react", emoji, { type: "button", title: `React ${emoji}`, "aria-label": `React ${emoji}` });
      b.addEventListener("click", () => this.send({ type: "reaction", emoji }));
      return b;
    });
    reactions.append(...this.reactButtons);

    this.modPanel = el("details", "chat-mod", null, { "data-testid": "chat-mod" });
    this.modPanel.append(el("summary", "", "Moderation"));
    this.modBody = el("div", "chat-mod-body");
    this.modPanel.append(this.modBody);
    this.modPanel.hidden = true;

    root.append(head, this.status, this.list, this.reactionsBox, this.noticeBox, form, reactions, this.modPanel);
    container.replaceChildren(root);
    this.root = root;
    this.#setWritable(false);
  }
}
