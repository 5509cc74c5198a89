// onair browser test: Debian's Chromium (playwright-core) goes live in the studio and plays on the watch page.
// Run from the repository root after `cargo build`: node --test tests/browser/
import { test } from "node:test";
import assert from "node:assert/strict";
import { WAIT, links, openPage, useOnair, waitForState, withDiagnostics } from "./harness.mjs";

useOnair();

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

test("studio goes live, watch page plays, and resumes after Stop and Go live without reloading", async () => {
  const studio = await openPage("studio");
  const watch = await openPage("watch");
  await withDiagnostics({ studio, watch }, async () => {
    await studio.goto(links().studio);
    await studio.click("#go-live"); // waits until the camera is open and the button enabled
    await waitForState(studio, "live");
    assert.equal((await studio.textContent("#status")).trim(), "live");

    await watch.goto(links().watch);
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
    const url = new URL(links().studio);
    url.search = "";
    await studio.goto(url.href);
    const help = studio.locator("#token-help");
    await help.waitFor({ state: "visible" });
    assert.match(await help.textContent(), /onair token --room \S+ --role broadcaster --name/);
    assert.equal(await studio.isDisabled("#go-live"), true);
  });
});
