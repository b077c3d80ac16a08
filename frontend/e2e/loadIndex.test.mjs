// A capture saved without its index, opened from the captures panel (issue 14): its first load reads
// every step to build the index, and the progress bar under the top bar shows how far that is
// (GET /api/loading), then the views are drawn.
//
// Real captures of a tiny llama, a real backend, real chromium. The tiny capture builds in
// milliseconds, too fast for a 400 ms poll to see, so the backend is started with its build held
// (deterministically, not slowed): after the store records its first progress report that is not
// the last, the build waits until the test creates a gate file. Everything else is the real load:
// the steps are read and digested by the server's own code, in runs of a few KB (lazy.CHUNK) so that
// the build has many of them.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { FULL, STANDARD, getJSON, launchBrowser, makeCaptures, shoot, startBackend, tempDir } from "./harness.mjs";

const HELD_SERVER = `
import sys, time
from pathlib import Path
from backend.server import _serve, create_app
from spectra_vis.store import lazy

data, port, gate = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
lazy.CHUNK = 4000  # bytes of steps read at once: a run of one or a few steps
app = create_app(data)
builds = app.state.store.builds
report = builds.report
held = []

def held_report(key, done, total):
    report(key, done, total)
    if done < total and not held:
        held.append(done)
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

builds.report = held_report
_serve(app, "127.0.0.1", port, "warning")
`;

let dir, gate, server, url, browser, page;
const errors = [], badResponses = [];

before(async () => {
  dir = tempDir("spectra-e2e-index-");
  makeCaptures(dir);
  rmSync(join(dir, STANDARD.replace(/\.json$/, ".index.safetensors"))); // as if saved elsewhere
  gate = join(dir, ".release-build");
  server = await startBackend(dir, (port) => ["-c", HELD_SERVER, dir, String(port), gate]);
  url = server.url;
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("response", (r) => { if (r.status() >= 400) badResponses.push(`${r.status()} ${r.url()}`); });
  await page.goto(url);
  await page.locator("[data-testid=captures-panel]").waitFor();
}, { timeout: 300000 });

after(async () => {
  if (gate) writeFileSync(gate, "");
  await browser?.close();
  server?.stop();
});

describe("a capture saved without its index", () => {
  test("its first load shows the index build as a determinate bar with a percentage, then the views", async () => {
    const doc = JSON.parse(readFileSync(join(dir, STANDARD), "utf8"));
    const total = doc.trials.reduce((n, t) => n + t.steps.length, 0);
    await page.evaluate(() => { // every state of the bar, as it changes
      window.barSeen = [];
      const note = () => {
        const el = document.querySelector("[data-testid=load-progress]");
        const state = el ? `${el.getAttribute("data-phase")}|${el.getAttribute("data-building") ?? ""}|${el.getAttribute("aria-valuenow") ?? ""}` : "none";
        if (window.barSeen.at(-1) !== state) window.barSeen.push(state);
      };
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await page.locator(`.files li[data-path="${STANDARD}"] button`).click();

    const bar = page.locator(`[data-testid=load-progress][data-building="${STANDARD}"]`);
    await bar.waitFor({ timeout: 30000 });
    const { loading } = await getJSON(`${url}/api/loading`); // the build is held: it stays where it is
    assert.equal(loading.length, 1);
    const [build] = loading;
    assert.deepEqual([build.path, build.total], [STANDARD, total]);
    assert.ok(build.done > 0 && build.done < total, `${build.done} of ${total} steps`);
    const pct = Math.floor((100 * build.done) / total);
    await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.getAttribute("aria-valuenow") === want,
      [`[data-testid=load-progress][data-building="${STANDARD}"]`, String(pct)], { timeout: 10000 });
    const text = await bar.locator("span").textContent();
    assert.match(text, new RegExp(`^Building the index of ${STANDARD.replace(/\./g, "\\.")}: ${pct}% of ${total} steps · \\d+ s$`));
    assert.equal(await bar.getAttribute("data-phase"), "load");
    assert.equal(await bar.locator(".load-progress-track.indeterminate").count(), 0, "a determinate bar");
    const [fill, track] = await Promise.all([bar.locator(".load-progress-fill"), bar.locator(".load-progress-track")].map((l) => l.boundingBox()));
    assert.ok(Math.abs(fill.width / track.width - build.done / total) < 0.02, `fill ${fill.width} of ${track.width} for ${build.done}/${total}`);
    await shoot(page.locator(".load-progress"), "load-index-progress");

    writeFileSync(gate, ""); // the build goes on
    await page.locator(`.files li.current[data-path="${STANDARD}"]`).waitFor({ timeout: 60000 });
    const caps = await getJSON(`${url}/api/captures`);
    const cid = caps.current;
    assert.equal(caps.captures.find((c) => c.capture_id === cid)?.path, STANDARD);
    for (const view of ["tensor-grid", "heatmap-tokens"]) {
      await page.locator(`[data-testid=${view}][data-capture-id="${cid}"]`).waitFor({ timeout: 60000 });
    }
    await page.locator("[data-testid=load-progress]").waitFor({ state: "detached", timeout: 60000 });
    assert.deepEqual(await getJSON(`${url}/api/loading`), { loading: [] });
    assert.ok(existsSync(join(dir, STANDARD.replace(/\.json$/, ".index.safetensors"))), "the index is kept beside the capture");
    const seen = await page.evaluate(() => window.barSeen);
    const building = seen.filter((s) => s.startsWith(`load|${STANDARD}|`));
    assert.ok(building.length > 0 && seen.indexOf(building[0]) > 0, `states seen: ${seen.join(", ")}`);
    assert.equal(seen.at(-1), "none", `states seen: ${seen.join(", ")}`);
  });

  test("a capture with its index loads without a build: the bar never shows one", async () => {
    await page.evaluate(() => { window.barSeen = []; });
    await page.locator(`.files li[data-path="${FULL}"] button`).click();
    await page.locator(`.files li.current[data-path="${FULL}"]`).waitFor({ timeout: 60000 });
    await page.locator("[data-testid=load-progress]").waitFor({ state: "detached", timeout: 60000 });
    const seen = await page.evaluate(() => window.barSeen);
    assert.ok(seen.includes("load||") && seen.every((s) => (s.split("|")[1] ?? "") === ""), `states seen: ${seen.join(", ")}`);
  });

  test("no page errors", () => {
    assert.deepEqual(errors, []);
    assert.deepEqual(badResponses, []);
  });
});
