// onair browser test: Chromium goes live in the studio; the live page plays the room over LL-HLS with hls.js (from npm),
// and prints hls.js's latency (a figure, not an assertion); after the broadcast the recordings page lists it.
// Run from the repository root after `cargo build`: node --test tests/browser/
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { HERE, WAIT, links, openPage, useOnair, waitForState, withDiagnostics } from "./harness.mjs";

const HLS_JS = path.join(HERE, "node_modules/hls.js/dist/hls.min.js");
assert.ok(existsSync(HLS_JS), `${HLS_JS} is missing: run scripts/setup.sh (npm ci in tests/browser)`);

useOnair({ config: `hls_js = ${JSON.stringify(HLS_JS)}\n` });

test("the live page plays the room over LL-HLS with hls.js, then the recording is listed", async () => {
  const studio = await openPage("studio");
  const live = await openPage("live");
  const recordings = await openPage("recordings");
  await withDiagnostics({ studio, live, recordings }, async () => {
    await studio.goto(links().studio);
    await studio.click("#go-live");
    await waitForState(studio, "live");
    const room = new URL(links().studio).pathname.split("/").pop();

    await live.goto(`${links().base}/live/${room}`);
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
    await recordings.goto(`${links().base}/recordings`);
    const row = recordings.locator(`tbody tr[data-file$=".mp4"]:not([data-file$=".live.mp4"])`);
    await row.first().waitFor({ timeout: WAIT });
    assert.match(await row.first().textContent(), new RegExp(room));
    const href = await row.first().locator('[data-testid="download"]').getAttribute("href");
    const response = await recordings.request.get(`${links().base}${href}`, { headers: { Range: "bytes=0-7" } });
    assert.equal(response.status(), 206);
    assert.equal((await response.body()).subarray(4, 8).toString(), "ftyp");
  });
});
