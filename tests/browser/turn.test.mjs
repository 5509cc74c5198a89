// onair browser test: relay-only ICE (`?ice=relay`) through the embedded TURN server — the studio publishes
// and the watch page plays, and getStats() shows both pages' selected candidate pairs are local relay candidates.
// Run from the repository root after `cargo build --bin onair`: node --test tests/browser/turn.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { WAIT, links, openPage, token, useOnair, waitForState, withDiagnostics } from "./harness.mjs";

/** TURN on loopback next to the media (the harness binds media to 127.0.0.1), on ports of its own:
 * listeners on free ports, relays in a random 100-port range so parallel runs do not collide. */
const relayFirst = 40000 + 100 * Math.floor(Math.random() * 90);
useOnair({
  config: `[turn]
listen = "127.0.0.1"
udp_port = 0
tcp_port = 0
relay_ports = "${relayFirst}-${relayFirst + 99}"
`,
});

/** `url` with `?ice=relay` added. */
function relayOnly(url) {
  const u = new URL(url);
  u.searchParams.set("ice", "relay");
  return u.href;
}

/**
 * What the page's connected session on `path` (e.g. "/whip/") reports: its configuration, the selected
 * candidate pair (transport.selectedCandidatePairId, else the nominated succeeded pair) with both ends,
 * and every local candidate gathered.
 */
function iceReport(page, path) {
  return page.evaluate(async (path) => {
    const sessions = [...(window.onairSessions ?? [])];
    const session = sessions.find((s) => new URL(s.endpoint).pathname.startsWith(path) && s.pc.connectionState === "connected");
    if (!session) {
      return { error: `no connected session on ${path}`, sessions: sessions.map((s) => [s.endpoint, s.pc.connectionState]) };
    }
    const reports = new Map();
    (await session.pc.getStats()).forEach((r) => reports.set(r.id, r));
    const all = [...reports.values()];
    const transport = all.find((r) => r.type === "transport" && r.selectedCandidatePairId);
    const pair =
      reports.get(transport?.selectedCandidatePairId) ??
      all.find((r) => r.type === "candidate-pair" && r.nominated && r.state === "succeeded");
    const candidate = (r) =>
      r && {
        candidateType: r.candidateType,
        protocol: r.protocol,
        address: r.address,
        port: r.port,
        relayProtocol: r.relayProtocol,
        url: r.url,
      };
    const config = session.pc.getConfiguration();
    return {
      policy: config.iceTransportPolicy,
      iceServers: config.iceServers.map((s) => s.urls),
      pair: pair && {
        state: pair.state,
        nominated: pair.nominated,
        bytesSent: pair.bytesSent,
        bytesReceived: pair.bytesReceived,
      },
      local: candidate(reports.get(pair?.localCandidateId)),
      remote: candidate(reports.get(pair?.remoteCandidateId)),
      gathered: all.filter((r) => r.type === "local-candidate").map(candidate),
    };
  }, path);
}

/**
 * The ICE report once the selected pair shows `succeeded` (at most 10 s): Chromium reports a
 * pair as `in-progress` again while each keep-alive check of it is on its way, so one snapshot
 * can catch a working pair between a check and its answer.
 */
async function settledIceReport(page, path) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const report = await iceReport(page, path);
    if (report.pair?.state === "succeeded" || Date.now() > deadline) return report;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Asserts that `page`'s session on `path` runs over a TURN relay of the embedded server; returns the report. */
async function assertRelayed(page, path) {
  const report = await settledIceReport(page, path);
  const shown = JSON.stringify(report, null, 2);
  assert.equal(report.error, undefined, shown);
  assert.equal(report.policy, "relay", `iceTransportPolicy: ${shown}`);
  assert.ok(
    report.iceServers.flat().some((url) => /^turn:127\.0\.0\.1:\d+\?transport=udp$/.test(url)),
    `the embedded TURN server (from the OPTIONS Link headers) is configured: ${shown}`,
  );
  assert.ok(report.pair, `a selected candidate pair: ${shown}`);
  assert.equal(report.pair.state, "succeeded", shown);
  assert.equal(report.local?.candidateType, "relay", `the selected pair's local candidate is a relay: ${shown}`);
  assert.match(report.local.url ?? "", /^turn:127\.0\.0\.1:\d+/, `relayed by the embedded server: ${shown}`);
  assert.ok(report.gathered.length > 0, shown);
  for (const c of report.gathered) assert.equal(c.candidateType, "relay", `relay-only gathers relays only: ${shown}`);
  return report;
}

/** The server's `/metrics` TURN counters. */
async function turnMetrics() {
  const text = await (await fetch(`${links().base}/metrics`)).text();
  const value = (pattern) => Number(text.match(new RegExp(`^${pattern} (\\d+)$`, "m"))?.[1] ?? NaN);
  return {
    allocations: value("onair_turn_allocations"),
    toPeers: value('onair_turn_relayed_bytes_total\\{direction="to_peer"\\}'),
    toClients: value('onair_turn_relayed_bytes_total\\{direction="to_client"\\}'),
  };
}

const frames = (page) => page.evaluate(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames);

test("relay-only studio publishes and relay-only watch page plays through the embedded TURN server", async (t) => {
  const studio = await openPage("studio-relay");
  const watch = await openPage("watch-relay");
  await withDiagnostics({ studio, watch }, async () => {
    const before = await turnMetrics();
    assert.equal(before.allocations, 0, "no TURN allocation before the pages start");

    await studio.goto(relayOnly(links().studio));
    await studio.click("#go-live"); // waits until the camera is open and the button enabled
    await waitForState(studio, "live");
    const published = await assertRelayed(studio, "/whip/");

    await watch.goto(relayOnly(links().watch));
    await watch.waitForFunction(() => document.getElementById("video").videoWidth > 0, null, { timeout: WAIT });
    const first = await frames(watch);
    await watch.waitForFunction(
      (n) => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > n + 5,
      first,
      { timeout: WAIT },
    );
    await waitForState(watch, "live");
    const played = await assertRelayed(watch, "/whep/");

    // The media really went through the relays: the publisher sent, the viewer received, and the
    // server counts relayed bytes both ways on (at least) the two allocations.
    const after = await assertRelayed(studio, "/whip/");
    assert.ok(after.pair.bytesSent > published.pair.bytesSent, `studio keeps sending: ${JSON.stringify(after.pair)}`);
    assert.ok(played.pair.bytesReceived > 0, `watch received: ${JSON.stringify(played.pair)}`);
    const metrics = await turnMetrics();
    assert.ok(metrics.allocations >= 2, `TURN allocations: ${JSON.stringify(metrics)}`);
    assert.ok(metrics.toPeers > 0 && metrics.toClients > 0, `TURN relayed bytes: ${JSON.stringify(metrics)}`);
    for (const [name, r] of [["studio", after], ["watch", played]]) {
      t.diagnostic(`${name}: ${r.local.protocol} relay ${r.local.address}:${r.local.port} via ${r.local.url} -> ${r.remote?.candidateType} ${r.remote?.address}:${r.remote?.port}`);
    }
    t.diagnostic(`TURN metrics: ${JSON.stringify(metrics)}`);
  });
});

test("relay-only studio with an unusable token shows the same reason as without relay", async () => {
  const reasons = {};
  for (const ice of ["all", "relay"]) {
    const page = await openPage(`studio-bad-token-${ice}`);
    await withDiagnostics({ [ice]: page }, async () => {
      const url = new URL(links().studio);
      url.searchParams.set("token", "not-a-token");
      url.searchParams.set("ice", ice);
      await page.goto(url.href);
      await page.click("#go-live");
      await page.locator('#status[data-state="error"]').waitFor({ timeout: WAIT });
      reasons[ice] = (await page.textContent("#error")).trim();
    });
  }
  assert.match(reasons.all, /^Could not go live: /, JSON.stringify(reasons));
  assert.equal(reasons.relay, reasons.all, "the OPTIONS refusal, not a missing-TURN message");
});

test("a page on another origin publishes relay-only with onair.js (Link readable from the OPTIONS)", async () => {
  const page = await openPage("cross-origin-relay");
  await withDiagnostics({ page }, async () => {
    // Same server, other origin: `localhost` instead of `127.0.0.1`.
    const other = new URL(links().base);
    other.hostname = "localhost";
    await page.goto(`${other.origin}/`);
    const endpoint = `${links().base}/whip/elsewhere`;
    const state = await page.evaluate(
      async ({ endpoint, token }) => {
        const { OnairSession } = await import("/web/onair.js");
        const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        const session = new OnairSession(endpoint, { token, iceTransportPolicy: "relay" });
        await session.publish(stream);
        if (session.pc.connectionState !== "connected") {
          await new Promise((resolve) =>
            session.pc.addEventListener("connectionstatechange", () => {
              if (["connected", "failed"].includes(session.pc.connectionState)) resolve();
            }),
          );
        }
        return session.pc.connectionState;
      },
      { endpoint, token: token("elsewhere", "broadcaster", "Remote Studio") },
    );
    assert.equal(state, "connected");
    await assertRelayed(page, "/whip/elsewhere");
  });
});
