// onair browser test: the recordings page replays a broadcast's chat beside the player. Chromium goes live in the
// studio, a viewer and the broadcaster chat (markup included, one message deleted by the broadcaster), the broadcast
// ends; the recordings page plays the MP4 and each message appears only once video.currentTime reaches its offset,
// seeking back and forth re-renders, the deleted message goes at its time, and text is never HTML.
// Run from the repository root after `cargo build`: node --test tests/browser/
import { test } from "node:test";
import assert from "node:assert/strict";
import { WAIT, links, openPage, token, useOnair, waitForState, withDiagnostics } from "./harness.mjs";

useOnair({ args: ["--udp-ports", "52400-52599"] });

async function chatConnected(page) {
  await page.locator('[data-testid=chat-status][data-state="connected"]').waitFor();
}

async function say(page, text) {
  const input = page.getByTestId("chat-input");
  await input.fill(text);
  await input.press("Enter");
}

function line(page, text) {
  return page.locator("li.chat-line").filter({ has: page.locator(".chat-text", { hasText: text }) });
}

/** The texts the replay panel shows now. */
const shown = (page) =>
  page.evaluate(() => [...document.querySelectorAll("#replay-messages li .chat-text")].map((n) => n.textContent));

/** Pauses the player at `time` and returns what the replay shows once the seek is done. */
async function at(page, time) {
  await page.evaluate(async (t) => {
    const video = document.getElementById("video");
    video.pause();
    const seeked = new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
    video.currentTime = t;
    await seeked;
  }, time);
  // One more tick of the page's own listeners.
  await page.waitForTimeout(50);
  return shown(page);
}

test("the recordings page replays the chat in sync with the player", async () => {
  const studio = await openPage("studio");
  const viewer = await openPage("viewer");
  const recordings = await openPage("recordings");
  const markup = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
  await withDiagnostics({ studio, viewer, recordings }, async () => {
    await studio.goto(links().studio);
    await studio.click("#go-live");
    await waitForState(studio, "live");
    await chatConnected(studio);
    const room = new URL(links().studio).pathname.split("/").pop();
    // The recording runs before anyone speaks.
    await recordings.goto(`${links().base}/recordings`);
    await recordings.waitForFunction(async () => {
      const body = await (await fetch("/api/recordings")).json();
      return body.recordings.some((r) => r.state === "recording");
    }, null, { timeout: WAIT, polling: 200 });

    await viewer.goto(`${links().watch}?token=${token(room, "viewer", "Ann")}`);
    await chatConnected(viewer);
    // Chromium's encoder raises the resolution as its bandwidth estimate grows, and new parameter sets start a
    // new recording: the chat starts right after such a switch (or once none came for a while) so that it falls
    // inside one recording.
    const running = () =>
      recordings.evaluate(async () => {
        const body = await (await fetch("/api/recordings")).json();
        return body.recordings.find((r) => r.state === "recording")?.file ?? null;
      });
    const before = await running();
    for (let i = 0; i < 40 && (await running()) === before; i += 1) await recordings.waitForTimeout(250);
    await studio.waitForTimeout(300);
    await say(viewer, "first from ann");
    await line(studio, "first from ann").waitFor();
    await studio.waitForTimeout(600);
    await say(studio, markup);
    await line(viewer, markup).waitFor();
    await studio.waitForTimeout(600);
    // The broadcaster deletes Ann's message with the chat command.
    const id = await line(studio, "first from ann").getAttribute("data-id");
    await say(studio, `/delete ${id}`);
    await line(viewer, "first from ann").waitFor({ state: "detached" });
    await studio.waitForTimeout(1500);
    await studio.click("#stop");
    await waitForState(studio, "idle");

    // The finished recordings are listed with their chat; the one that was running while we chatted is the one.
    const all = await recordings.waitForFunction(async () => {
      const body = await (await fetch("/api/recordings")).json();
      const done = body.recordings.length > 0 && body.recordings.every((r) => r.state === "complete");
      return done && body.recordings.some((r) => r.chat) ? body.recordings : false;
    }, null, { timeout: WAIT, polling: 250 }).then((h) => h.jsonValue());
    let recording = null;
    let replay = null;
    for (const candidate of all.filter((r) => r.chat)) {
      const body = await recordings.evaluate(async (url) => (await fetch(url)).json(), candidate.chat);
      const chats = body.events.filter((e) => e.type === "chat");
      if (chats.length && chats.every((e) => e.offset > 0 && e.offset < candidate.duration)) {
        recording = candidate;
        replay = body;
      }
    }
    assert.ok(recording, `one recording holds the whole chat: ${JSON.stringify(all)}`);
    const offset = (type, pred = () => true) => replay.events.find((e) => e.type === type && pred(e)).offset;
    const first = offset("chat", (e) => e.text === "first from ann");
    const second = offset("chat", (e) => e.text === markup);
    const deleted = offset("deleted");
    console.log(`recording ${recording.duration} s; chat at ${first} s, ${second} s; deleted at ${deleted} s`);
    assert.ok(0 < first && first < second && second < deleted && deleted < recording.duration, JSON.stringify(replay));

    await recordings.reload();
    const row = recordings.locator(`tbody tr[data-file="${recording.file}"]`);
    await row.getByTestId("play").click();
    await recordings.locator('[data-testid=replay][data-state="ready"]').waitFor();
    await recordings.waitForFunction(() => document.getElementById("video").readyState >= 1);

    // Nothing before its time; each message once its time is reached; the delete applied at its time.
    assert.deepEqual(await at(recordings, Math.max(0, first - 0.5)), []);
    assert.deepEqual(await at(recordings, (first + second) / 2), ["first from ann"]);
    assert.deepEqual(await at(recordings, (second + deleted) / 2), ["first from ann", markup]);
    assert.deepEqual(await at(recordings, deleted + 0.3), [markup]);
    // Seeking back re-renders from the start.
    assert.deepEqual(await at(recordings, (first + second) / 2), ["first from ann"]);
    assert.deepEqual(await at(recordings, 0), []);

    // Markup is text: no element was made from it and nothing ran.
    await at(recordings, deleted + 0.3);
    assert.equal(await recordings.locator("#replay-messages img, #replay-messages b").count(), 0);
    assert.equal(await recordings.evaluate(() => window.__pwned), undefined);
    const badge = await recordings.locator("#replay-messages li .chat-badge").first().textContent();
    assert.equal(badge, "host");

    // Playing through a message's time shows it then, not before.
    await at(recordings, Math.max(0, first - 1));
    const seen = await recordings.evaluate(async () => {
      const video = document.getElementById("video");
      await video.play();
      return new Promise((resolve) => {
        const check = () => {
          if (document.querySelector("#replay-messages li")) resolve(video.currentTime);
          else requestAnimationFrame(check);
        };
        check();
      });
    });
    console.log(`first message shown at currentTime ${seen.toFixed(3)} s (offset ${first} s)`);
    assert.ok(seen >= first, `shown at ${seen} before its offset ${first}`);
  });
});
