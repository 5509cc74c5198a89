// debug only (temporary; deleted before the report)
import { test } from "node:test";
import { links, openPage, useOnair, waitForState } from "./harness.mjs";
useOnair();
test("dbg", async () => {
  const studio = await openPage("studio");
  await studio.addInitScript(() => {
    window.__msgs = [];
    const orig = RTCPeerConnection.prototype.createDataChannel;
    RTCPeerConnection.prototype.createDataChannel = function (...a) {
      const ch = orig.apply(this, a);
      window.__msgs.push(a[0] + ": created " + new Error().stack.split("\n").slice(2, 4).join(" | "));
      ch.addEventListener("message", (e) => window.__msgs.push(a[0] + ":" + e.data.slice(0, 100)));
      ch.addEventListener("open", () => window.__msgs.push(a[0] + ": OPEN"));
      ch.addEventListener("close", () => window.__msgs.push(a[0] + ": CLOSE"));
      return ch;
    };
  });
  await studio.goto(links().studio);
  await studio.click("#go-live");
  await waitForState(studio, "live");
  await studio.waitForTimeout(3000);
  console.log(await studio.evaluate(() => window.__msgs));
});
