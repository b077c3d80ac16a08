// Browser test of live runs (issue 15): real backend on loopback (runs allowed), a real tiny GGUF in
// its models directory, real llama-cpp-python runs, real chromium. A data directory with no capture
// at all, as after a fresh clone: a run started from the Run panel fills the live panel while the
// server still says "running" (the step count shown grows, read from the page and GET /api/runs),
// then the viewer opens the saved capture at its newest step without a reload; a second run is
// stopped and its partial capture is in the captures list. The live numbers are checked against
// the saved capture read from the API (tokens, L2 per layer).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PYTHON, REPO, freePort, getJSON, openViewer, saveScreenshot, tempDir } from "./harness.mjs";

const MODEL = "tiny.gguf"; // random weights: sampled at temperature 1 with a seed, varied tokens
const BROKEN = "broken.gguf";
const LONG = "tiny-the.gguf"; // greedy decoding always picks "▁the": it never stops early at an end token
const VECTOR = "steer.gguf"; // a control vector for MODEL (random directions on blocks 1..n_layer-1)
let viewer, models, nLayer, backend, page, errors, badResponses;

before(async () => {
  const dataDir = join(tempDir("spectra-e2e-run-"), "data");
  mkdirSync(join(dataDir, "models"), { recursive: true });
  const code = `import sys
from spectra_vis.testing.tiny_gguf import write_tiny_model
write_tiny_model(sys.argv[1])
write_tiny_model(sys.argv[2], prefer_token="\u2581the")`;

  execFileSync(PYTHON, ["-c", code, join(dataDir, "models", MODEL), join(dataDir, "models", LONG)], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  // A GGUF cut short (its header and part of its metadata): listed, but llama.cpp cannot load it.
  writeFileSync(join(dataDir, "models", BROKEN), readFileSync(join(dataDir, "models", MODEL)).subarray(0, 4096));
  const vector = `import sys
import numpy as np
from spectra_vis.record.profiles import read_model_card
from spectra_vis.store.control_vector import ControlVector, write_control_vector
card = read_model_card(sys.argv[1])
rng = np.random.default_rng(0)
dirs = {L: (5.0 * rng.standard_normal(card.n_embd)).astype(np.float32) for L in range(1, card.n_layer)}
write_control_vector(ControlVector(dirs, n_layer=card.n_layer), sys.argv[2])
print(card.n_layer)`;
  nLayer = Number(execFileSync(PYTHON, ["-c", vector, join(dataDir, "models", MODEL), join(dataDir, "models", VECTOR)], { cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim());
  models = join(dataDir, "models");
  viewer = await openViewer(dataDir);
  ({ backend, page, errors, badResponses } = viewer);
});

after(async () => {
  await viewer?.close();
});

const runPanel = () => page.locator("[data-testid=run-panel]");
const livePanel = () => page.locator("[data-testid=live-panel]");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const label = (text) => text.replace(/\n/g, "⏎").replace(/ /g, "·") || "∅"; // data/format's tokenLabel
// data/format's fmt: 4 significant digits, exponent form outside 1e-3..1e5.
const fmt4 = (v) => (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(4))));

/** Fill the Run form and press Run; the run's id, from the live panel. */
async function startRun(model, prompt, maxTokens, temperature, seed, preset = "standard", control = null) {
  const p = runPanel();
  await p.locator("[data-testid=run-control]").selectOption(control?.file ?? "");
  if (control) {
    await p.locator("[data-testid=run-strength]").fill(String(control.strength));
    await p.locator("[data-testid=run-layers]").fill(control.layers ?? "");
  }
  await p.locator("[data-testid=run-preset]").selectOption(preset);
  await p.locator("[data-testid=run-model]").selectOption(model);
  await p.locator("[data-testid=run-prompts]").fill(prompt);
  await p.locator("[data-testid=run-max-tokens]").fill(String(maxTokens));
  await p.locator("[data-testid=run-temperature]").fill(String(temperature));
  await p.locator("[data-testid=run-seed]").fill(String(seed));
  const known = new Set((await getJSON(`${backend.url}/api/runs`)).runs.map((r) => r.id));
  await p.locator("[data-testid=run-start]").click();
  // The live panel switches to the new run (one the server did not have before the click).
  const handle = await page.waitForFunction((ids) => {
    const id = document.querySelector("[data-testid=live-panel]")?.getAttribute("data-run");
    return id && !ids.includes(id) ? id : null;
  }, [...known]);
  return handle.jsonValue();
}

async function runInfo(id) {
  const runs = await getJSON(`${backend.url}/api/runs`);
  const r = runs.runs.find((x) => x.id === id);
  assert.ok(r, `run ${id} is in GET /api/runs`);
  return r;
}

/** Samples of (steps shown on the page, the run's state and step in GET /api/runs) while it runs. */
async function sampleWhileRunning(id, until) {
  const samples = [];
  for (let i = 0; i < 600 && !(await until(samples)); i++) {
    const shown = Number(await page.locator("[data-testid=live-steps]").getAttribute("data-count"));
    const r = await runInfo(id);
    samples.push({ shown, state: r.state, step: r.step });
    if (r.state !== "running" && r.state !== "loading" && r.state !== "queued") break;
    await sleep(150);
  }
  return samples;
}

describe("live runs", () => {
  test("a run from the Run panel fills in live, then the viewer opens its saved capture", async () => {
    await page.locator("[data-testid=empty-state]").waitFor(); // no capture yet
    const models = await getJSON(`${backend.url}/api/models/files`);
    assert.ok(models.files.some((f) => f.name === MODEL && f.architecture === "llama"), JSON.stringify(models));
    // Seed 1 at temperature 1: this prompt's sampling reaches max_tokens (no end token on the way).
    const id = await startRun(MODEL, "The capital of France is", 300, 1, 1);

    // The step count shown grows while the server still says "running".
    const samples = await sampleWhileRunning(id, async (s) => s.filter((x) => x.state === "running" && x.shown > 0).length >= 4);
    const running = samples.filter((x) => x.state === "running" && x.shown > 0);
    assert.ok(running.length >= 4, `samples while running: ${JSON.stringify(samples)}`);
    assert.ok(running.at(-1).shown > running[0].shown, `the step count grew while running: ${JSON.stringify(running)}`);
    assert.ok(running.at(-1).step > running[0].step, `the API's step grew too: ${JSON.stringify(running)}`);
    const badge = page.locator("[data-testid=live-badge]");
    assert.match(await badge.textContent(), /live · running/);
    assert.equal(await livePanel().getAttribute("data-following"), "true");
    await saveScreenshot("live", (path) => livePanel().screenshot({ path }));

    // It ends: the viewer opens the saved file without a reload, at the newest step.
    await page.locator("[data-testid=live-opened]").waitFor({ timeout: 120_000 });
    const done = await runInfo(id);
    assert.equal(done.state, "done");
    assert.ok(done.file, "the run saved a file");
    assert.equal(await page.locator("[data-testid=live-opened]").getAttribute("data-path"), done.file);
    await page.locator(`.files li.current[data-path="${done.file}"]`).waitFor();
    const caps = await getJSON(`${backend.url}/api/captures`);
    const cur = caps.captures.find((c) => c.capture_id === caps.current);
    assert.equal(cur?.path, done.file);
    const trial = await getJSON(`${backend.url}/api/trials/0?capture_id=${cur.capture_id}`);
    const last = trial.steps.length - 1;
    assert.ok(trial.steps.length >= running.at(-1).shown, `${trial.steps.length} steps saved, ${running.at(-1).shown} shown while running`);
    await page.locator("[data-testid=view-grid]").waitFor();
    assert.match(await page.locator("[data-testid=step-label]").textContent(), new RegExp(`^step ${last} / ${last} `));
    assert.equal(await badge.count(), 0, "no live badge once the run is over");

    // The live panel had every step (or says how many were dropped), with the saved tokens and L2.
    const received = Number(await livePanel().getAttribute("data-steps"));
    const dropped = (await page.locator("[data-testid=live-dropped]").count()) ? Number((await page.locator("[data-testid=live-dropped]").textContent()).split(" ")[0]) : 0;
    assert.equal(received + dropped, trial.steps.length);
    const nPrompt = trial.tokens.filter((t) => t.step === 0).length;
    const saved = trial.tokens.slice(nPrompt).map((t) => label(t.text));
    const live = await page.locator("[data-testid=live-tokens] .generated").allTextContents();
    assert.equal(live.length, trial.steps.length);
    live.forEach((t, s) => { if (t !== "…") assert.equal(t, saved[s], `token of step ${s}`); });
    await checkStripAgainstCapture(cur.capture_id, trial);
    await checkLensAgainstCapture(cur.capture_id);
    await livePanel().locator("[data-testid=live-follow]").click(); // back to the newest step
    await page.locator(`[data-testid=live-panel][data-following=true][data-step="${last}"]`).waitFor();
  });

  test("Stop: the run ends cancelled and its partial capture is in the captures list", async () => {
    // Four prompts of 1000 greedy tokens each, every node read (full): long enough to be stopped.
    const id = await startRun(LONG, "Say hi\nHello\nOne two\nThree", 1000, 0, 2, "full");
    const samples = await sampleWhileRunning(id, async (s) => (s.at(-1)?.shown ?? 0) >= 20 && s.at(-1).state === "running");
    assert.equal(samples.at(-1).state, "running", JSON.stringify(samples.at(-1)));
    await page.locator("[data-testid=live-badge][data-state=running]").waitFor();
    await saveScreenshot("run", (path) => runPanel().screenshot({ path }));
    // The saved views follow the run: the main step counter shows its capture so far, at the newest
    // step, and its step count grows while the server still says "running".
    const counts = [];
    for (let i = 0; i < 240 && !counts.some((c) => c.last > counts[0].last); i++) {
      const m = ((await page.locator("[data-testid=step-label]").textContent()) ?? "").match(/^step (\d+) \/ (\d+)/);
      const r = await runInfo(id);
      assert.equal(r.state, "running", `the run ended before the views grew: ${JSON.stringify(counts)}`);
      if (m && r.trial === 0) counts.push({ step: Number(m[1]), last: Number(m[2]), apiStep: r.step });
      await sleep(250);
    }
    assert.ok(counts.some((c) => c.last > counts[0].last), `the main step count grew while running: ${JSON.stringify(counts)}`);
    assert.ok(counts.filter((c) => c.step === c.last).length >= counts.length - 1, `at the newest step: ${JSON.stringify(counts)}`);
    // Move the live scrubber: the live views stop following; the saved capture will open there.
    await livePanel().locator("[data-testid=live-slider]").fill("5");
    await page.locator("[data-testid=live-panel][data-following=false][data-step='5']").waitFor();
    const chosenTrial = Number(await livePanel().getAttribute("data-trial"));
    await sleep(300);
    assert.equal(await livePanel().getAttribute("data-step"), "5", "the live views stay at the chosen step while the run goes on");
    const shownAtStop = Number(await livePanel().getAttribute("data-steps"));
    await runPanel().locator("[data-testid=run-stop]").click();

    await page.locator(`[data-testid=live-panel][data-state=cancelled]`).waitFor({ timeout: 60_000 });
    const r = await runInfo(id);
    assert.equal(r.state, "cancelled");
    assert.ok(r.file, "the cancelled run saved what it captured");
    await page.locator(`.files li[data-path="${r.file}"]`).waitFor(); // in the captures list
    await page.locator(`.files li.current[data-path="${r.file}"]`).waitFor(); // and opened
    const caps = await getJSON(`${backend.url}/api/captures`);
    const cur = caps.captures.find((c) => c.capture_id === caps.current);
    assert.equal(cur.path, r.file);
    let saved = 0;
    for (let t = 0; t < cur.trials; t++) saved += (await getJSON(`${backend.url}/api/trials/${t}?capture_id=${cur.capture_id}`)).steps.length;
    assert.ok(saved >= shownAtStop, `${saved} steps saved, ${shownAtStop} shown at Stop`);
    assert.ok(saved < 4000, `stopped early: ${cur.trials} trials, ${saved} steps`);
    // The viewer opened it at the trial and step chosen on the live scrubber.
    await page.locator("[data-testid=view-grid]").waitFor();
    assert.equal(await page.locator("[data-testid=trial-picker] select").inputValue(), String(chosenTrial));
    const trial = await getJSON(`${backend.url}/api/trials/${chosenTrial}?capture_id=${cur.capture_id}`);
    assert.match(await page.locator("[data-testid=step-label]").textContent(), new RegExp(`^step 5 / ${trial.steps.length - 1} `));
    const files = await getJSON(`${backend.url}/api/files`);
    assert.ok(files.files.some((f) => f.path === r.file && f.valid), `${r.file} in GET /api/files`);
    assert.deepEqual(errors, []);
    assert.deepEqual(badResponses, []);
  });

  test("a model llama.cpp cannot load: the run fails with its reason, on one line, and nothing opens", async () => {
    const current = page.locator(".files li.current");
    const openPath = async () => ((await current.count()) ? current.getAttribute("data-path") : null);
    const opened = await openPath();
    const id = await startRun(BROKEN, "Hello", 8, 0, 1);
    await page.locator("[data-testid=live-panel][data-state=failed]").waitFor({ timeout: 60_000 });
    const r = await runInfo(id);
    assert.equal(r.state, "failed");
    assert.equal(r.file, null);
    assert.ok(r.error && !r.error.includes("\n"), `one line: ${r.error}`);
    const shown = await livePanel().locator("[role=alert]").allTextContents();
    assert.deepEqual(shown, [`The run failed: ${r.error}`]);
    assert.equal(await runPanel().locator(`.run-list li[data-run="${id}"] .error`).textContent(), r.error);
    assert.equal(await openPath(), opened, "the open capture stays");
    assert.equal(await page.locator("[data-testid=live-badge]").count(), 0);
    assert.deepEqual(errors, []);
  });

  test("a run steered by a control vector from the Steer picker: its saved trial records the vector", async () => {
    const p = runPanel();
    const listed = await getJSON(`${backend.url}/api/models/files`);
    assert.equal(listed.files.find((f) => f.name === VECTOR)?.architecture, "controlvector", JSON.stringify(listed));
    await p.locator(`[data-testid=run-control] option[value="${VECTOR}"]`).waitFor({ state: "attached" });
    const options = async (id) => p.locator(`[data-testid=${id}] option`).evaluateAll((os) => os.map((o) => o.value));
    assert.ok(!(await options("run-model")).includes(VECTOR), "a control vector is not offered as a model");
    assert.deepEqual(await options("run-control"), ["", VECTOR]);
    const control = { file: VECTOR, strength: 2, layers: `1-${nLayer - 1}` };
    const id = await startRun(MODEL, "Once upon", 6, 0, 1, "standard", control);
    await page.locator(`[data-testid=live-panel][data-run="${id}"][data-state=done]`).waitFor({ timeout: 120_000 });
    const r = await runInfo(id);
    assert.equal(r.state, "done");
    assert.deepEqual(r.control, control);
    assert.equal(await p.locator(`.run-list li[data-run="${id}"] [data-testid=run-control-text]`).textContent(), `steered: ${VECTOR} × 2 · layers 1-${nLayer - 1}`);
    // The saved capture, loaded through the API: its trial carries the vector (the file's own sha256).
    const res = await fetch(`${backend.url}/api/load`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ filepath: r.file }) });
    assert.equal(res.status, 200);
    const loaded = await res.json();
    const c = loaded.trial_list[0].control;
    assert.ok(c, JSON.stringify(loaded.trial_list[0]));
    assert.equal(c.file, VECTOR);
    assert.equal(c.strength, 2);
    assert.deepEqual(c.layers, [1, nLayer - 1]);
    assert.equal(c.sha256, createHash("sha256").update(readFileSync(join(models, VECTOR))).digest("hex"));
    const proj = await getJSON(`${backend.url}/api/trials/0/projection?capture_id=${loaded.capture_id}`);
    assert.ok(proj.layers.length > 0, "the steered trial reports its projection");
    await p.locator("[data-testid=run-control]").selectOption(""); // the next runs are unsteered
    assert.equal(await p.locator("[data-testid=run-strength]").isDisabled(), true);
    assert.deepEqual(errors, []);
  });

  test("a dropped events connection is opened again with ?after=<last id>: every step once", async () => {
    const proxy = await cuttingProxy(backend.url, 40_000);
    const other = await viewer.browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const pageErrors = [];
    other.on("pageerror", (e) => pageErrors.push(e.message));
    try {
      await other.goto(proxy.url);
      const p = other.locator("[data-testid=run-panel]");
      await p.locator("[data-testid=run-model]").selectOption(LONG);
      await p.locator("[data-testid=run-prompts]").fill("Reconnect");
      await p.locator("[data-testid=run-max-tokens]").fill("600");
      await p.locator("[data-testid=run-temperature]").fill("0");
      await p.locator("[data-testid=run-start]").click();
      await other.locator("[data-testid=live-opened]").waitFor({ timeout: 120_000 });
      const panel = other.locator("[data-testid=live-panel]");
      const r = await runInfo(await panel.getAttribute("data-run"));
      assert.equal(r.state, "done");
      // The second request asks for what came after the last event the page read: at most the last
      // whole event sent before the cut (a failed stream drops what the page had not read yet).
      const whole = proxy.seen.beforeCut.slice(0, proxy.seen.beforeCut.lastIndexOf("\n\n"));
      const lastSent = Math.max(...[...whole.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])));
      assert.ok(lastSent > 3 && lastSent < r.events, `cut after event ${lastSent} of ${r.events}`);
      assert.equal(proxy.seen.urls.length, 2, JSON.stringify(proxy.seen.urls));
      const m = proxy.seen.urls[1].match(new RegExp(`^/api/runs/${r.id}/events\\?after=(\\d+)$`));
      assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= lastSent, `${proxy.seen.urls[1]}: after the last event read (<= ${lastSent})`);
      // Every step arrived once: as many as the saved capture has (no server-side drop counted).
      const caps = await getJSON(`${backend.url}/api/captures`);
      const cur = caps.captures.find((c) => c.path === r.file);
      const trial = await getJSON(`${backend.url}/api/trials/0?capture_id=${cur.capture_id}`);
      const dropped = (await other.locator("[data-testid=live-dropped]").count()) ? Number((await other.locator("[data-testid=live-dropped]").textContent()).split(" ")[0]) : 0;
      assert.equal(Number(await panel.getAttribute("data-steps")) + dropped, trial.steps.length);
      assert.equal(await other.locator("[data-testid=live-tokens] .generated").count(), trial.steps.length);
      assert.deepEqual(pageErrors, []);
    } finally {
      await other.close();
      await proxy.close();
    }
  });
});

/** A proxy in front of the backend that cuts the first events stream after `cutAfter` bytes (a
 * dropped connection, as a real network drops it); it records the events requests and what it
 * passed on before the cut. */
async function cuttingProxy(target, cutAfter) {
  const seen = { urls: [], beforeCut: "" };
  const up = new URL(target);
  const server = createServer((req, res) => {
    const events = req.url.includes("/events");
    if (events) seen.urls.push(req.url);
    const cut = events && seen.urls.length === 1; // the first events stream only
    const fwd = request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      if (!cut) return void ur.pipe(res);
      let n = 0;
      ur.on("data", (chunk) => {
        if (n >= cutAfter) return;
        res.write(chunk);
        seen.beforeCut += chunk.toString("utf8");
        n += chunk.length;
        if (n >= cutAfter) {
          // Close the connection gracefully (what was written goes out first, then FIN) in the middle
          // of the chunked body: the browser reads every byte sent, then the stream fails.
          ur.destroy();
          res.socket?.end();
        }
      });
    });
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** The live lens top-1 of a step that carries it (the newest such step of the last 40) is the saved
 * capture's logit lens at that step's position, layer by layer (GET /api/trials/0/lens). */
async function checkLensAgainstCapture(cid) {
  const lens = await getJSON(`${backend.url}/api/trials/0/lens?capture_id=${cid}`);
  const steps = page.locator("[data-testid=live-tokens] .generated");
  const n = await steps.count();
  for (let s = n - 1; s >= Math.max(0, n - 40); s--) {
    await steps.nth(s).click();
    const detail = page.locator(`[data-testid=live-step][data-step="${s}"]`);
    await detail.waitFor();
    if ((await detail.locator("[data-testid=live-lens]").count()) === 0) continue;
    const pos = Number(await detail.getAttribute("data-pos"));
    const rows = await detail.locator("[data-testid=live-lens] tbody tr").evaluateAll((trs) =>
      trs.map((tr) => [Number(tr.getAttribute("data-layer")), tr.children[1].textContent, tr.children[2].textContent]));
    assert.ok(rows.length > 0);
    for (const [layer, text, p] of rows) {
      const i = lens.layers.indexOf(layer);
      assert.ok(i >= 0, `layer ${layer} in the saved lens`);
      assert.equal(text, label(lens.top_texts[i][pos]), `layer ${layer} at pos ${pos}`);
      assert.equal(p, fmt4(lens.top_p[i][pos]), `layer ${layer} at pos ${pos}`);
    }
    assert.equal(await livePanel().getAttribute("data-following"), "false"); // a click on a step stops following
    return;
  }
  assert.fail("no step of the last 40 carried the lens");
}

/** Hover the live heat strip's last column, row by row: the readout is the saved capture's l_out L2
 * of that step's token (GET /api/heatmap, layers × tokens), as data/format prints it. */
async function checkStripAgainstCapture(cid, trial) {
  const strip = page.locator("[data-testid=live-strip]");
  const rows = Number(await strip.getAttribute("data-rows"));
  const cols = Number(await strip.getAttribute("data-cols"));
  const cw = Number(await strip.getAttribute("data-cell-w"));
  const rh = Number(await strip.getAttribute("data-row-h"));
  const lw = Number(await strip.getAttribute("data-label-w"));
  assert.equal(cols, trial.steps.length);
  const heat = await getJSON(`${backend.url}/api/heatmap?capture_id=${cid}&trial_id=0&metric=l2&axis=tokens&type=l_out`);
  const s = cols - 1; // the last step: one decode token
  const col = heat.cols.findIndex((c) => c.step === s);
  assert.ok(col >= 0, `a column of step ${s} in the token heat map`);
  const canvas = strip.locator("canvas");
  await canvas.scrollIntoViewIfNeeded();
  await strip.locator(".live-strip-scroll").evaluate((el) => { el.scrollLeft = el.scrollWidth; });
  for (let r = 0; r < rows; r++) {
    await canvas.hover({ position: { x: lw + s * cw + cw / 2, y: r * rh + rh / 2 } });
    const text = await strip.locator("[data-testid=live-strip-readout]").textContent();
    const m = text.match(/^L(\d+) · step (\d+) · L2 = (.+)$/);
    assert.ok(m, text);
    assert.equal(Number(m[2]), s);
    const row = heat.rows.indexOf(Number(m[1]));
    assert.ok(row >= 0, `layer ${m[1]} in the heat map`);
    assert.equal(m[3], fmt4(heat.values[row][col]), `layer ${m[1]}`);
  }
}
