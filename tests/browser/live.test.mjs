// onair browser test: Debian's Chromium (playwright-core) goes live in the studio and plays on the watch page.
// Run from the repository root after `cargo build`: node --test tests/browser/
// ONAIR_BIN overrides the server binary (default target/debug/onair), CHROMIUM_BIN the browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.ONAIR_BIN ?? path.join(ROOT, "target/debug/onair");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const WAIT = 30_000; // generous: CI machines are small; nothing here asserts speed
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
const diagnostics = []; // console lines of every page, printed when a test fails

/** Starts `onair serve` on a free port and resolves with the links it prints. */
function startServer() {
  assert.ok(existsSync(BIN), `server binary ${BIN} is missing: run \`cargo build\` first (or set ONAIR_BIN)`);
  dataDir = mkdtempSync(path.join(tmpdir(), "onair-browser-"));
  const args = ["serve", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--udp-host", "127.0.0.1"];
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  const state = { child, log: "", links: null };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server printed no links in time:\n${state.log}`)), WAIT);
    const onData = (chunk) => {
      state.log += chunk.toString();
      // Whole lines only, anchored, so that log lines mentioning "studio" or "watch" don't match.
      const lines = state.log.slice(0, state.log.lastIndexOf("\n") + 1);
      const base = lines.match(/listening on (http\S+)/)?.[1];
      const studio = lines.match(/^\s*studio.*?(http\S+)/m)?.[1];
      const watch = lines.match(/^\s*watch.*?(http\S+)/m)?.[1];
      if (base && studio && watch && !state.links) {
        state.links = { base: base.replace(/\/$/, ""), studio, watch };
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

/** Runs `body`; on failure prints the page consoles, both status lines and the server log. */
async function withDiagnostics(pages, body) {
  try {
    await body();
  } catch (error) {
    for (const [name, page] of Object.entries(pages)) {
      const text = (id) => page.evaluate((i) => document.getElementById(i)?.textContent ?? null, id).catch(() => null);
      const [status, message] = [await text("status"), await text("error")];
      diagnostics.push(`[${name}] ${page.url()} status=${JSON.stringify(status)} error=${JSON.stringify(message)}`);
      await page.screenshot({ path: path.join(tmpdir(), `onair-${name}-failure.png`) }).catch(() => {});
    }
    console.error(`--- page diagnostics ---\n${diagnostics.join("\n")}`);
    console.error(`--- server log ---\n${server?.log ?? "(no server)"}`);
    throw error;
  }
}

/** Waits until the page's status is `state`; fails early, with the page's message, on "error". */
async function waitForState(page, state) {
  const status = page.locator(`#status[data-state="${state}"], #status[data-state="error"]`);
  await status.waitFor({ timeout: WAIT });
  if ((await status.getAttribute("data-state")) === "error") {
    const message = await page.evaluate(() => document.getElementById("error").textContent);
    assert.fail(`${page.url()}: expected status "${state}", got an error: ${message}`);
  }
}

/** Decoded frames of the watch page's <video>. */
const frames = (page) => page.evaluate(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames);

/** Waits until the <video> has decoded clearly more frames than `since` (no rate is asserted). */
async function waitForMoreFrames(page, since) {
  await page.waitForFunction(
    (n) => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > n + 5,
    since,
    { timeout: WAIT },
  );
}

async function assertPlaying(watch) {
  await watch.waitForFunction(() => document.getElementById("video").videoWidth > 0, null, { timeout: WAIT });
  const first = await frames(watch);
  await watch.waitForTimeout(1000);
  await waitForMoreFrames(watch, first);
  assert.ok((await frames(watch)) > first, "decoded frames increase");
  await waitForState(watch, "live");
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

test("studio goes live, watch page plays, and resumes after Stop and Go live without reloading", async () => {
  const studio = await openPage("studio");
  const watch = await openPage("watch");
  await withDiagnostics({ studio, watch }, async () => {
    await studio.goto(server.links.studio);
    await studio.click("#go-live"); // waits until the camera is open and the button enabled
    await waitForState(studio, "live");
    assert.equal((await studio.textContent("#status")).trim(), "live");

    await watch.goto(server.links.watch);
    await watch.evaluate(() => (window.__sameDocument = true));
    await assertPlaying(watch);
    await studio.waitForFunction(() => document.getElementById("viewers").textContent === "1", null, { timeout: WAIT });

    await studio.click("#stop");
    await waitForState(studio, "idle");
    await waitForState(watch, "waiting");
    assert.match(await watch.textContent("#status"), /waiting for the broadcaster/);

    await studio.click("#go-live");
    await waitForState(studio, "live");
    await assertPlaying(watch);
    assert.equal(await watch.evaluate(() => window.__sameDocument), true, "the watch page was not reloaded");
  });
});

test("studio without a token explains how to get one", async () => {
  const studio = await openPage("studio-no-token");
  await withDiagnostics({ studio }, async () => {
    const url = new URL(server.links.studio);
    url.search = "";
    await studio.goto(url.href);
    const help = studio.locator("#token-help");
    await help.waitFor({ state: "visible" });
    assert.match(await help.textContent(), /onair token --room \S+ --role broadcaster --name/);
    assert.equal(await studio.isDisabled("#go-live"), true);
  });
});
