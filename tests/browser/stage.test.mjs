// onair browser test: guests on stage — a broadcaster (studio), an invited guest (guest page) and a viewer (watch page), three Chromium pages with fake cameras.
// Run from the repository root after `cargo build`: node --test tests/browser/stage.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { WAIT, links, openPage, useOnair, waitForState, withDiagnostics } from "./harness.mjs";

useOnair();

/** Decoded frames and playback time of the video matched by `selector`, or null when it is absent. */
const progress = (page, selector) =>
  page.evaluate((s) => {
    const video = document.querySelector(s);
    if (!video) return null;
    return {
      width: video.videoWidth,
      frames: video.getVideoPlaybackQuality().totalVideoFrames,
      time: video.currentTime,
    };
  }, selector);

/** Waits until the video matched by `selector` has a picture, then until its frames and time advance. */
async function assertPlaying(page, selector, what) {
  await page.waitForFunction(
    (s) => {
      const video = document.querySelector(s);
      return Boolean(video) && video.videoWidth > 0;
    },
    selector,
    { timeout: WAIT },
  );
  const first = await progress(page, selector);
  await page.waitForFunction(
    ({ s, frames, time }) => {
      const video = document.querySelector(s);
      return Boolean(video) && video.getVideoPlaybackQuality().totalVideoFrames > frames + 5 && video.currentTime > time;
    },
    { s: selector, frames: first.frames, time: first.time },
    { timeout: WAIT },
  );
  const later = await progress(page, selector);
  assert.ok(later.width > 0, `${what}: has a picture`);
  assert.ok(later.frames > first.frames, `${what}: decoded frames advance`);
  assert.ok(later.time > first.time, `${what}: currentTime advances`);
}

/** Records every SDP answer the page applies (window.__answers), first one first. */
const recordAnswers = (page) =>
  page.addInitScript(() => {
    window.__answers = [];
    const original = RTCPeerConnection.prototype.setRemoteDescription;
    RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
      if (description?.type === "answer") window.__answers.push(description.sdp);
      return original.call(this, description, ...rest);
    };
  });

/** The audio m-section of an SDP. */
const audioSection = (sdp) => sdp.split(/\r?\n(?=m=)/).find((section) => section.startsWith("m=audio")) ?? "";

/** Asserts that the page's first answer (its WHIP session) accepted the RFC 6464 audio level extension. */
async function assertAudioLevelNegotiated(page, what) {
  const [whip] = await page.evaluate(() => window.__answers);
  assert.ok(whip, `${what}: the WHIP answer was recorded`);
  assert.match(
    audioSection(whip),
    /^a=extmap:\d+ urn:ietf:params:rtp-hdrext:ssrc-audio-level\r?$/m,
    `${what}: the WHIP answer negotiates Chromium's audio level (active speaker)`,
  );
}

/** The user ids of a page's stage tiles. */
const tileUsers = (page) =>
  page.evaluate(() => [...document.querySelectorAll("[data-testid=stage-tile]")].map((t) => t.dataset.user));

/** The tile showing `user` on a page. */
const tileVideo = (user) => `[data-testid=stage-tile][data-user="${user}"] video`;

test("broadcaster, invited guest and viewer: everyone sees the stage, the guest leaves without the viewer reconnecting", async () => {
  const studio = await openPage("studio");
  const guest = await openPage("guest");
  const watch = await openPage("watch");
  await withDiagnostics({ studio, guest, watch }, async () => {
    // The broadcaster goes live with the fake camera and invites a guest.
    await recordAnswers(studio);
    await recordAnswers(guest);
    await studio.goto(links().studio);
    await studio.click("#go-live");
    await waitForState(studio, "live");
    await assertAudioLevelNegotiated(studio, "broadcaster");
    await studio.click("#invite");
    const inviteBox = studio.locator("#invite-link");
    await inviteBox.waitFor({ state: "visible" });
    const invite = await inviteBox.inputValue();
    assert.match(invite, /\/guest\/[^/?]+\?token=./, "the studio shows a guest link");

    // The viewer starts before the guest joins: the guest must appear without a reconnect.
    await watch.addInitScript(() => {
      // Counts WHEP offers: a reconnect would POST a new one.
      window.__whepPosts = 0;
      const original = window.fetch;
      window.fetch = (input, init) => {
        const url = typeof input === "string" ? input : input.url;
        if (init?.method === "POST" && url.includes("/whep/")) window.__whepPosts += 1;
        return original(input, init);
      };
    });
    await watch.goto(links().watch);
    await watch.evaluate(() => (window.__sameDocument = true));
    await assertPlaying(watch, "#video", "viewer: the broadcaster");
    const whepPostsBefore = await watch.evaluate(() => window.__whepPosts);
    assert.ok(whepPostsBefore >= 1, "the fetch counter sees the watch page's WHEP offer");

    // The guest opens the invite, previews the camera and joins.
    await guest.goto(invite);
    await guest.locator("#join:not([disabled])").waitFor({ timeout: WAIT });
    await guest.click("#join");
    await waitForState(guest, "live");
    // The page marks its own preview with the id the server's stage message calls "you".
    const me = await guest
      .waitForFunction(() => document.getElementById("main").dataset.user && document.getElementById("preview").dataset.user, null, {
        timeout: WAIT,
      })
      .then((handle) => handle.jsonValue());
    assert.ok(me, "the guest learnt its own id from the stage message");
    await assertAudioLevelNegotiated(guest, "guest");

    // The guest sees the broadcaster in the main picture, and never itself in a tile.
    await assertPlaying(guest, "#main", "guest: the broadcaster");
    const broadcaster = await guest.evaluate(() => document.getElementById("main").dataset.user);
    assert.notEqual(broadcaster, me, "the guest's main picture is the broadcaster");
    assert.ok(!(await tileUsers(guest)).includes(me), "the guest has no tile of itself");

    // The viewer: the broadcaster in the main picture and the guest in a tile, both playing.
    await watch.locator(tileVideo(me)).waitFor({ timeout: WAIT });
    await assertPlaying(watch, tileVideo(me), "viewer: the guest");
    await assertPlaying(watch, "#video", "viewer: the broadcaster, with a guest on stage");
    assert.equal(await watch.evaluate(() => document.getElementById("video").dataset.user), broadcaster);
    assert.deepEqual(await tileUsers(watch), [me], "the viewer shows exactly one guest tile");
    await watch.waitForFunction(
      () => /joined the stage/.test(document.getElementById("stage-notices").textContent),
      null,
      { timeout: WAIT },
    );

    // The broadcaster sees the guest (and never itself) and lists it with Mute/Remove.
    await studio.locator(tileVideo(me)).waitFor({ timeout: WAIT });
    await assertPlaying(studio, tileVideo(me), "broadcaster: the guest");
    assert.deepEqual(await tileUsers(studio), [me], "the broadcaster has one tile: the guest");
    await studio.locator(`[data-testid=guest][data-user="${me}"]`).waitFor({ timeout: WAIT });
    // The audience is the one viewer: the studio's and the guest's own stage views don't count.
    await studio.waitForFunction(() => document.getElementById("viewers").textContent === "1", null, { timeout: WAIT });
    await studio.waitForFunction(
      () => /chatting as/.test(document.querySelector("[data-testid=chat-status]").textContent),
      null,
      { timeout: WAIT },
    );

    // Mute from the studio: the guest is told, everyone's label says so; then unmute.
    await studio.click(`[data-testid=guest][data-user="${me}"] [data-testid=guest-mute]`);
    await guest.locator("#muted-note").waitFor({ state: "visible", timeout: WAIT });
    await watch.waitForFunction(
      (s) => /\(muted\)/.test(document.querySelector(s)?.closest("figure")?.textContent ?? ""),
      tileVideo(me),
      { timeout: WAIT },
    );
    await studio.click(`[data-testid=guest][data-user="${me}"] [data-testid=guest-mute]`);
    await guest.locator("#muted-note").waitFor({ state: "hidden", timeout: WAIT });

    // The guest leaves: the viewer's tile goes, the broadcaster keeps playing, no reconnect.
    await guest.click("#leave");
    await waitForState(guest, "idle");
    await watch.waitForFunction(
      () => document.querySelectorAll("[data-testid=stage-tile]").length === 0,
      null,
      { timeout: WAIT },
    );
    await watch.waitForFunction(
      () => /left the stage/.test(document.getElementById("stage-notices").textContent),
      null,
      { timeout: WAIT },
    );
    await studio.waitForFunction(
      () => document.querySelectorAll("[data-testid=stage-tile], [data-testid=guest]").length === 0,
      null,
      { timeout: WAIT },
    );
    await assertPlaying(watch, "#video", "viewer: the broadcaster after the guest left");
    assert.equal(await watch.evaluate(() => window.__sameDocument), true, "the watch page was not reloaded");
    const whepPostsAfter = await watch.evaluate(() => window.__whepPosts);
    assert.equal(whepPostsAfter, whepPostsBefore, "the viewer made no new WHEP request (no reconnect)");

    // The guest joins again and the broadcaster removes it: it is told and taken off stage.
    await guest.locator("#join:not([disabled])").waitFor({ timeout: WAIT });
    await guest.click("#join");
    await waitForState(guest, "live");
    await guest.waitForFunction((id) => document.getElementById("preview").dataset.user === id, me, { timeout: WAIT });
    await watch.locator(tileVideo(me)).waitFor({ timeout: WAIT });
    await studio.locator(`[data-testid=guest][data-user="${me}"]`).waitFor({ timeout: WAIT });
    await studio.click(`[data-testid=guest][data-user="${me}"] [data-testid=guest-remove]`);
    await guest.waitForFunction(
      () => /removed you/.test(document.getElementById("error").textContent),
      null,
      { timeout: WAIT },
    );
    await watch.waitForFunction(
      () => document.querySelectorAll("[data-testid=stage-tile]").length === 0,
      null,
      { timeout: WAIT },
    );
    await watch.waitForFunction(
      () => /removed from the stage/.test(document.getElementById("stage-notices").textContent),
      null,
      { timeout: WAIT },
    );
  });
});
