// debug only (temporary; deleted before the report)
import { test } from "node:test";
import { links, openPage, useOnair, waitForState, token } from "./harness.mjs";
useOnair();
test("dbg", async () => {
  const studio = await openPage("studio");
  const guest = await openPage("guest");
  await guest.addInitScript(() => {
    window.__msgs = [];
    const orig = RTCPeerConnection.prototype.createDataChannel;
    RTCPeerConnection.prototype.createDataChannel = function (...a) {
      const ch = orig.apply(this, a);
      ch.addEventListener("message", (e) => window.__msgs.push(a[0] + ":" + e.data.slice(0, 300)));
      ch.addEventListener("open", () => window.__msgs.push(a[0] + ": OPEN"));
      return ch;
    };
  });
  await studio.goto(links().studio);
  await studio.click("#go-live");
  await waitForState(studio, "live");
  await guest.goto(links().base + "/guest/demo?token=" + token("demo", "guest", "Gina"));
  await guest.locator("#join:not([disabled])").waitFor();
  await guest.click("#join");
  await guest.waitForTimeout(6000);
  console.log(JSON.stringify(await guest.evaluate(() => window.__msgs), null, 1));
  console.log(await guest.evaluate(() => [document.getElementById("status").textContent, document.getElementById("main").dataset.user, document.getElementById("main").videoWidth]));
});
