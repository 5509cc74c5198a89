// onair browser test: Chromium goes live in the studio; the live page plays the room over LL-HLS with hls.js (from npm),
// and prints hls.js's latency (a figure, not an assertion); after the broadcast the recordings page lists it.
// Run from the repository root after `cargo build`: node --test tests/browser/
// ONAIR_BIN overrides the server binary (default target/debug/onair), CHROMIUM_BIN the browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const BIN = process.env.ONAIR_BIN ?? path.join(ROOT, "target/debug/onair");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const HLS_JS = path.join(HERE, "node_modules/hls.js/dist/hls.min.js");
const WAIT = 45_000; // generous: CI machines are small; nothing here asserts speed
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

/** Starts `onair serve` on a free port with hls.js configured; resolves with the printed links. */
function startServer() {
  assert.ok(existsSync(BIN), `server binary ${BIN} is missing: run \`cargo build\` first (or set ONAIR_BIN)`);
  assert.ok(existsSync(HLS_JS), `${HLS_JS} is missing: run scripts/setup.sh (npm ci in tests/browser)`);
  dataDir = mkdtempSync(path.join(tmpdir(), "onair-hls-browser-"));
  const config = path.join(dataDir, "onair.toml");
  writeFileSync(config, `hls_js = ${JSON.stringify(HLS_JS)}\n`);
  const args = ["serve", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--udp-host", "127.0.0.1", "--config", config];
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  const state = { child, log: "", links: null };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server printed no links in time:\n${state.log}`)), WAIT);
    const onData = (chunk) => {
      state.log += chunk.toString();
      const lines = state.log.slice(0, state.log.lastIndexOf("\n") + 1);
      const base = lines.match(/listening on (http\S+)/)?.[1];
      const studio = lines.match(/^\s*studio.*?(http\S+)/m)?.[1];
      if (base && studio && !state.links) {
        state.links = { base: base.replace(/\/$/, ""), studio };
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

async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("console", (msg) => diagnostics.push(`[${name} console.${msg.type()}] ${msg.text()}`));
  page.on("pageerror", (error) => diagnostics.push(`[${name} pageerror] ${error.message}`));
  page.on("requestfailed", (req) => diagnostics.push(`[${name} requestfailed] ${req.method()} ${req.url()}`));
  page.on("response", (res) => {
    if (res.status() >= 400) diagnostics.push(`[${name} http ${res.status()}] ${res.request().method()} ${res.url()}`);
  });
  return page;
}

async function withDiagnostics(pages, body) {
  try {
    await body();
  } catch (error) {
    for (const [name, page] of Object.entries(pages)) {
      const text = (id) => page.evaluate((i) => document.getElementById(i)?.textContent ?? null, id).catch(() => null);
      diagnostics.push(`[${name}] ${page.url()} status=${JSON.stringify(await text("status"))} error=${JSON.stringify(await text("error"))} detail=${JSON.stringify(await text("detail"))}`);
      await page.screenshot({ path: path.join(tmpdir(), `onair-${name}-failure.png`) }).catch(() => {});
    }
    console.error(`--- page diagnostics ---\n${diagnostics.join("\n")}`);
    console.error(`--- server log ---\n${server?.log ?? "(no server)"}`);
    throw error;
  }
}

async function waitForState(page, state) {
  const status = page.locator(`#status[data-state="${state}"], #status[data-state="error"]`);
  await status.waitFor({ timeout: WAIT });
  if ((await status.getAttribute("data-state")) === "error") {
    const message = await page.evaluate(() => document.getElementById("error").textContent);
    assert.fail(`${page.url()}: expected status "${state}", got an error: ${message}`);
  }
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

test("the live page plays the room over LL-HLS with hls.js, then the recording is listed", async () => {
  const studio = await openPage("studio");
  const live = await openPage("live");
  const recordings = await openPage("recordings");
  await withDiagnostics({ studio, live, recordings }, async () => {
    await studio.goto(server.links.studio);
    await studio.click("#go-live");
    await waitForState(studio, "live");
    const room = new URL(server.links.studio).pathname.split("/").pop();

    await live.goto(`${server.links.base}/live/${room}`);
    await waitForState(live, "live");
    // hls.js (not the browser's own HLS) in low-latency mode drives the <video>.
    const mode = await live.evaluate(() => ({ hls: Boolean(window.hls), lowLatency: window.hls?.config.lowLatencyMode }));
    assert.deepEqual(mode, { hls: true, lowLatency: true });
    const decoded = () => live.evaluate(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames);
    const first = await decoded();
    await live.waitForFunction((n) => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > n + 10, first, { timeout: WAIT });
    // Let hls.js settle at its target latency, then report the figures (no assertion on them).
    await live.waitForTimeout(5000);
    const figures = await live.evaluate(() => ({
      latency: window.hls.latency,
      targetLatency: window.hls.targetLatency,
      drift: window.hls.drift,
      sinceCapture: document.getElementById("capture").textContent,
      liveEdge: document.getElementById("edge").textContent,
      buffer: document.getElementById("buffer").textContent,
    }));
    console.log(`hls.js latency ${figures.latency?.toFixed(3)} s (target ${figures.targetLatency?.toFixed(3)} s, drift ${figures.drift?.toFixed(3)}); since capture ${figures.sinceCapture}; live edge ${figures.liveEdge}; buffer ${figures.buffer}`);
    assert.ok(Number.isFinite(figures.latency), "hls.latency is a number");

    await studio.click("#stop");
    await waitForState(studio, "idle");

    // The broadcast is finalised into an MP4 and listed with play/download links.
    await recordings.goto(`${server.links.base}/recordings`);
    const row = recordings.locator(`tbody tr[data-file$=".mp4"]:not([data-file$=".live.mp4"])`);
    await row.first().waitFor({ timeout: WAIT });
    assert.match(await row.first().textContent(), new RegExp(room));
    const href = await row.first().locator('[data-testid="download"]').getAttribute("href");
    const response = await recordings.request.get(`${server.links.base}${href}`, { headers: { Range: "bytes=0-7" } });
    assert.equal(response.status(), 206);
    assert.equal((await response.body()).subarray(4, 8).toString(), "ftyp");
  });
});
