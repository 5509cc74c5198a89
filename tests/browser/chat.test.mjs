// onair browser test: chat. Two Chromium watch pages chat over their WHEP data channels, a moderator deletes
// a message and it disappears on the other page, the broadcaster answers from the studio while live, a
// command typed in the chat box reaches everyone, and web/chat.js over the WebSocket joins the same room.
// Run from the repository root after `cargo build`: node --test tests/browser/
import { test } from "node:test";
import assert from "node:assert/strict";
import { WAIT, links, openPage, token, useOnair, withDiagnostics } from "./harness.mjs";

const ROOM = "demo";

useOnair({ args: ["--udp-ports", "52000-52199"] });

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

test("two watch pages chat, a moderator deletes a message and it disappears on the other page", async () => {
  const ann = await openPage("ann");
  const mod = await openPage("moderator");
  await withDiagnostics({ ann, mod }, async () => {
    await ann.goto(`${links().watch}?token=${token(ROOM, "viewer", "Ann")}`);
    await mod.goto(`${links().watch}?token=${token(ROOM, "moderator", "Mo")}`);
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
    await studio.goto(links().studio);
    await studio.getByTestId("chat-status").filter({ hasText: "Chat opens when you go live." }).waitFor();
    await studio.click("#go-live");
    await studio.locator('#status[data-state="live"]').waitFor();
    await chatConnected(studio);

    await viewer.goto(links().watch); // anonymous
    await chatConnected(viewer);
    await say(viewer, "great stream!");
    await line(studio, "great stream!").waitFor();
    await say(studio, "thank you");
    const answer = line(viewer, "thank you");
    await answer.waitFor();
    assert.equal(await answer.locator(".chat-badge").textContent(), "host");

    // The live page (LL-HLS) mounts the same panel over the WebSocket.
    await hls.goto(`${links().base}/`);
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
