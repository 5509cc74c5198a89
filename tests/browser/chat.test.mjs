// onair browser test: chat. Two Chromium watch pages chat over their WHEP data channels, a moderator deletes
// a message and it disappears on the other page, the broadcaster answers from the studio while live, a
// command typed in the chat box reaches everyone, and web/chat.js over the WebSocket joins the same room.
// Run from the repository root after `cargo build`: node --test tests/browser/
// ONAIR_BIN overrides the server binary (default target/debug/onair), CHROMIUM_BIN the browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.ONAIR_BIN ?? path.join(ROOT, "target/debug/onair");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const WAIT = 30_000; // generous: CI machines are small; nothing here asserts speed
const ROOM = "demo";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
];

let server; // { child, log, links }
let browser;
let dataDir;
const diagnostics = [];

/** Starts `onair serve` on a free port and resolves with the links it prints. */
function startServer() {
  assert.ok(existsSync(BIN), `server binary ${BIN} is missing: run \`cargo build\` first (or set ONAIR_BIN)`);
  dataDir = mkdtempSync(path.join(tmpdir(), "onair-chat-browser-"));
  const args = ["serve", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--udp-host", "127.0.0.1", "--udp-ports", "52000-52199"];
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  const state = { child, log: "", links: null };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server printed no links in time:\n${state.log}`)), WAIT);
    const onData = (chunk) => {
      state.log += chunk.toString();
      const lines = state.log.slice(0, state.log.lastIndexOf("\n") + 1);
      const base = lines.match(/listening on (http\S+)/)?.[1];
      const studio = lines.match(/^\s*studio.*?(http\S+)/m)?.[1];
      const watch = lines.match(/^\s*watch.*?(http\S+)/m)?.[1];
      if (base && studio && watch && !state.links) {
        state.links = { base: new URL(watch).origin, studio, watch };
        clearTimeout(timer);
        resolve(state);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("exit", (code, signal) => {
      if (state.links) return;
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before printing its links:\n${state.log}`));
    });
  });
}

async function stopServer() {
  const child = server?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** A token minted by `onair token` with the server's secret (same data directory). */
function token(role, name) {
  return execFileSync(BIN, ["token", "--data-dir", dataDir, "--room", ROOM, "--role", role, "--name", name], {
    encoding: "utf8",
  }).trim();
}

async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("console", (msg) => diagnostics.push(`[${name} console.${msg.type()}] ${msg.text()}`));
  page.on("pageerror", (error) => diagnostics.push(`[${name} pageerror] ${error.message}`));
  page.on("requestfailed", (req) => diagnostics.push(`[${name} requestfailed] ${req.method()} ${req.url()}`));
  page.on("dialog", (dialog) => {
    diagnostics.push(`[${name} dialog] ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return page;
}

async function withDiagnostics(pages, body) {
  try {
    await body();
  } catch (error) {
    for (const [name, page] of Object.entries(pages)) {
      const status = await page.evaluate(() => document.querySelector("[data-testid=chat-status]")?.textContent ?? null).catch(() => null);
      const notice = await page.evaluate(() => document.querySelector("[data-testid=chat-notice]")?.textContent ?? null).catch(() => null);
      diagnostics.push(`[${name}] ${page.url()} chat-status=${JSON.stringify(status)} notice=${JSON.stringify(notice)}`);
      await page.screenshot({ path: path.join(tmpdir(), `onair-chat-${name}-failure.png`) }).catch(() => {});
    }
    console.error(`--- page diagnostics ---\n${diagnostics.join("\n")}`);
    console.error(`--- server log ---\n${server?.log ?? "(no server)"}`);
    throw error;
  }
}

/** Waits until the page's chat panel has its welcome. */
async function chatConnected(page) {
  await page.locator('[data-testid=chat-status][data-state="connected"]').waitFor();
}

/** Types `text` into the chat box and presses Enter. */
async function say(page, text) {
  const input = page.getByTestId("chat-input");
  await input.fill(text);
  await input.press("Enter");
}

/** The chat line of `page` whose text is exactly `text`. */
function line(page, text) {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  return page.locator("li.chat-line").filter({ has: page.locator(".chat-text", { hasText: exact }) });
}

before(async () => {
  server = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

process.on("exit", () => server?.child.kill("SIGKILL"));

test("two watch pages chat, a moderator deletes a message and it disappears on the other page", async () => {
  const ann = await openPage("ann");
  const mod = await openPage("moderator");
  await withDiagnostics({ ann, mod }, async () => {
    await ann.goto(`${server.links.watch}?token=${token("viewer", "Ann")}`);
    await mod.goto(`${server.links.watch}?token=${token("moderator", "Mo")}`);
    await chatConnected(ann);
    await chatConnected(mod);

    await say(ann, "hello from ann");
    await line(mod, "hello from ann").waitFor();
    await line(ann, "hello from ann").waitFor();
    await say(mod, "hi ann");
    const reply = line(ann, "hi ann");
    await reply.waitFor();
    assert.equal(await reply.locator(".chat-badge").textContent(), "mod", "role badge");
    assert.equal(await ann.locator("[data-testid=chat-delete]").count(), 0, "viewers get no moderation buttons");

    // Text is text: markup arrives as characters, never as elements.
    const markup = '<img src=x onerror="alert(1)"><b>bold</b>';
    await say(ann, markup);
    const shown = line(mod, markup);
    await shown.waitFor();
    assert.equal(await shown.locator(".chat-text").textContent(), markup);
    assert.equal(await mod.locator(".chat-messages img, .chat-messages b").count(), 0);

    const target = line(mod, "hello from ann");
    await target.hover();
    await target.getByTestId("chat-delete").click();
    await line(ann, "hello from ann").waitFor({ state: "detached" });
    await line(mod, "hello from ann").waitFor({ state: "detached" });
    assert.equal(await line(ann, "hi ann").count(), 1, "only that message went");

    // A command typed in the chat box reaches everyone's view of the room state.
    await say(mod, "/slow 15");
    await ann.getByTestId("chat-modes").filter({ hasText: "slow mode 15 s" }).waitFor();
    await say(mod, "/slow off");
    await ann.waitForFunction(() => document.querySelector("[data-testid=chat-modes]").textContent === "");
    await ann.context().close();
    await mod.context().close();
  });
});

test("the broadcaster answers from the studio while live, and web/chat.js over WebSocket joins the same room", async () => {
  const studio = await openPage("studio");
  const viewer = await openPage("viewer");
  const hls = await openPage("websocket");
  await withDiagnostics({ studio, viewer, hls }, async () => {
    await studio.goto(server.links.studio);
    await studio.getByTestId("chat-status").filter({ hasText: "Chat opens when you go live." }).waitFor();
    await studio.click("#go-live");
    await studio.locator('#status[data-state="live"]').waitFor();
    await chatConnected(studio);

    await viewer.goto(server.links.watch); // anonymous
    await chatConnected(viewer);
    await say(viewer, "great stream!");
    await line(studio, "great stream!").waitFor();
    await say(studio, "thank you");
    const answer = line(viewer, "thank you");
    await answer.waitFor();
    assert.equal(await answer.locator(".chat-badge").textContent(), "host");

    // The live page (LL-HLS) mounts the same panel over the WebSocket.
    await hls.goto(`${server.links.base}/`);
    await hls.evaluate(async (room) => {
      const { mountChat } = await import("/web/chat.js");
      const host = document.createElement("div");
      document.body.append(host);
      window.__chat = mountChat(host, { room, transport: "websocket" });
    }, ROOM);
    await chatConnected(hls);
    await line(hls, "thank you").waitFor(); // from the history in the welcome
    await say(hls, "hello over WebSocket");
    await line(studio, "hello over WebSocket").waitFor();
    await line(viewer, "hello over WebSocket").waitFor();

    await studio.click("#stop");
    await studio.getByTestId("chat-status").filter({ hasText: "Chat opens when you go live." }).waitFor();
  });
});
