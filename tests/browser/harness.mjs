// onair browser tests: the shared harness. One onair server (fresh data directory, port 0, media on
// loopback, TURN on loopback and free ports) and one Debian Chromium per test file; pages that record
// their console, errors and failed requests; on failure the statuses, screenshots and the server log are printed.
// ONAIR_BIN overrides the server binary (default target/debug/onair), CHROMIUM_BIN the browser.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
export const BIN = process.env.ONAIR_BIN ?? path.join(ROOT, "target/debug/onair");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
/** Generous: CI machines are small; nothing here asserts speed. */
export const WAIT = 45_000;
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
/**
 * The embedded TURN server of every test server, unless the file's config has its own `[turn]`: on
 * loopback and free ports (as tests/it/common does). The default, 0.0.0.0:3478, lets only one test server
 * run at a time on a machine: a second one exits with "TURN cannot listen on 0.0.0.0:3478".
 */
const TEST_TURN = '[turn]\nlisten = "127.0.0.1"\nudp_port = 0\ntcp_port = 0\n';
/** Element ids and test ids whose text is printed for each page when a test fails. */
const STATUS_SELECTORS = ["#status", "#error", "#detail", "[data-testid=chat-status]", "[data-testid=chat-notice]"];

let server; // { child, log, links: { base, studio, watch } }
let browser;
let dataDir;
const diagnostics = [];

/**
 * Registers the file's before/after hooks: starts `onair serve` with `args` (and `config` written to an
 * onair.toml in its data directory) and Chromium; stops both afterwards.
 */
export function useOnair({ args = [], config = null } = {}) {
  before(async () => {
    server = await startServer(args, config);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  process.on("exit", () => server?.child.kill("SIGKILL"));
}

/** The links the server printed: `base`, `studio` (with a broadcaster token) and `watch`. */
export const links = () => server.links;

/** A token for `room` minted by `onair token` with the server's secret (same data directory). */
export function token(room, role, name) {
  return execFileSync(BIN, ["token", "--data-dir", dataDir, "--room", room, "--role", role, "--name", name], {
    encoding: "utf8",
  }).trim();
}

function startServer(extraArgs, config) {
  assert.ok(existsSync(BIN), `server binary ${BIN} is missing: run \`cargo build\` first (or set ONAIR_BIN)`);
  dataDir = mkdtempSync(path.join(tmpdir(), "onair-browser-"));
  const args = ["serve", "--http", "127.0.0.1:0", "--https", "off", "--data-dir", dataDir, "--udp-host", "127.0.0.1", ...extraArgs];
  const toml = config ?? "";
  const file = path.join(dataDir, "onair.toml");
  writeFileSync(file, /^\s*\[turn\]/m.test(toml) ? toml : `${toml}\n${TEST_TURN}`);
  args.push("--config", file);
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

/** A page in its own browser context whose console, errors, failed requests and dialogs are recorded. */
export async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("console", (msg) => diagnostics.push(`[${name} console.${msg.type()}] ${msg.text()}`));
  page.on("pageerror", (error) => diagnostics.push(`[${name} pageerror] ${error.message}`));
  page.on("requestfailed", (req) => diagnostics.push(`[${name} requestfailed] ${req.method()} ${req.url()}`));
  page.on("response", (res) => {
    if (res.status() >= 400) diagnostics.push(`[${name} http ${res.status()}] ${res.request().method()} ${res.url()}`);
  });
  page.on("dialog", (dialog) => {
    diagnostics.push(`[${name} dialog] ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return page;
}

/** Runs `body`; on failure prints each page's statuses, saves screenshots and prints the server log. */
export async function withDiagnostics(pages, body) {
  try {
    await body();
  } catch (error) {
    for (const [name, page] of Object.entries(pages)) {
      const texts = await page
        .evaluate((selectors) => selectors.map((s) => [s, document.querySelector(s)?.textContent ?? null]), STATUS_SELECTORS)
        .catch(() => []);
      const shown = texts.filter(([, text]) => text !== null).map(([s, text]) => `${s}=${JSON.stringify(text)}`);
      diagnostics.push(`[${name}] ${page.url()} ${shown.join(" ")}`);
      await page.screenshot({ path: path.join(tmpdir(), `onair-${name}-failure.png`) }).catch(() => {});
    }
    console.error(`--- page diagnostics ---\n${diagnostics.join("\n")}`);
    console.error(`--- server log ---\n${server?.log ?? "(no server)"}`);
    throw error;
  }
}

/** Waits until the page's status is `state`; fails early, with the page's message, on "error". */
export async function waitForState(page, state) {
  const status = page.locator(`#status[data-state="${state}"], #status[data-state="error"]`);
  await status.waitFor({ timeout: WAIT });
  if ((await status.getAttribute("data-state")) === "error") {
    const message = await page.evaluate(() => document.getElementById("error").textContent);
    assert.fail(`${page.url()}: expected status "${state}", got an error: ${message}`);
  }
}
