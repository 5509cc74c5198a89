// onair web tests: StageGrid (web/stage.js) follows only the session it is attached to. A closed
// session's data channel can still deliver a stage message queued before it closed; the page must
// not show that stale stage (a guest who left marked on stage again, a removal after rejoining
// unseen). The race cannot be produced on demand in Chromium, so the grid's own logic is driven
// here, in Node, with the channels' message events under the test's control.
import { test } from "node:test";
import assert from "node:assert/strict";
import { StageGrid } from "../../web/stage.js";

/** A data channel stand-in: the grid only listens for "message" events on it. */
class FakeChannel extends EventTarget {
  deliver(message) {
    const event = new Event("message");
    event.data = typeof message === "string" ? message : JSON.stringify(message);
    this.dispatchEvent(event);
  }
}

/** A stage message putting `id` in slot 0, which the grid shows on the `main` video element. */
const onStage = (id) => ({
  type: "stage",
  participants: [{ id, name: id, slot: 0, video_mid: "0", audio_mid: "1", muted: false }],
});

function grid() {
  const main = { dataset: {}, title: "", classList: { toggle() {} } };
  const container = { hidden: false };
  const seen = [];
  const stage = new StageGrid(container, { main, onStage: (m) => seen.push(m) });
  return { stage, main, seen };
}

test("only the attached session's channel speaks for the stage", () => {
  const { stage, main, seen } = grid();
  const oldSession = { tracks: new Map() };
  const oldChannel = new FakeChannel();
  stage.attach(oldSession, oldChannel);
  oldChannel.deliver(onStage("guest-1"));
  assert.equal(main.dataset.user, "guest-1", "the attached session's stage is shown");
  assert.equal(seen.length, 1);

  // The page rejoins: a new session is attached, then the old channel delivers a late message.
  const newSession = { tracks: new Map() };
  const newChannel = new FakeChannel();
  stage.attach(newSession, newChannel);
  assert.equal(main.dataset.user, undefined, "attaching clears what the old session showed");
  oldChannel.deliver(onStage("guest-1"));
  oldSession.onTrack?.();
  assert.equal(main.dataset.user, undefined, "a stale stage message from the old session is ignored");
  assert.equal(seen.length, 1, "onStage is not called for the old session");

  newChannel.deliver("not json");
  newChannel.deliver(onStage("guest-2"));
  assert.equal(main.dataset.user, "guest-2", "the new session's stage is shown");
  assert.equal(seen.length, 2);
});

test("after clear() no channel speaks for the stage", () => {
  const { stage, main, seen } = grid();
  const channel = new FakeChannel();
  stage.attach({ tracks: new Map() }, channel);
  stage.clear();
  channel.deliver(onStage("guest-1"));
  assert.equal(main.dataset.user, undefined);
  assert.equal(seen.length, 0);
});
