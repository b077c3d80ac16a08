// Browser test of the steering views: real backend, a real sweep capture (`spectra-vis steer make`
// on the sea vs mountains prompts of examples/steering, then `spectra-vis steer try` at -4, 0 and
// +4 of a tiny llama GGUF kept in the server's models directory, so that /api/compare has both
// output heads for the next-token KL), real chromium. The Compare view and the projection chart are
// checked against /api/compare and /api/trials/{id}/projection fetched here from the same server.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PYTHON, REPO, getJSON, openCapture, openViewer, postJSON, saveScreenshot, tempDir } from "./harness.mjs";

const SWEEP = "sweep.json";
const STEERED = "steered.json";
let viewer, backend, page, errors;

function makeSweep(work, dataDir) {
  const run = (args) => execFileSync(PYTHON, args, { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  const models = join(dataDir, "models");
  mkdirSync(models);
  const model = join(models, "tiny-steer.gguf");
  run(["-c", `from spectra_vis.testing.tiny_gguf import write_tiny_model; write_tiny_model(${JSON.stringify(model)}, arch='llama', n_layer=4, n_embd=128, n_ff=256, seed=3)`]);
  const vec = join(work, "sea.gguf");
  run(["-m", "spectra_vis.cli", "steer", "make", "--model", model, "--positive", join(REPO, "examples/steering/sea.txt"),
    "--negative", join(REPO, "examples/steering/mountains.txt"), "--n-ctx", "128", "--out", vec]);
  run(["-m", "spectra_vis.cli", "steer", "try", "--model", model, "--control", vec, "--strengths", "-4,0,4",
    "--prompt", "The capital of France is", "--max-tokens", "6", "--n-ctx", "128", "--out", join(dataDir, SWEEP)]);
  // One steered trial alone (capture(..., control=...)): the chart shows its line by itself.
  run(["-c", `from spectra_vis import capture; capture(${JSON.stringify(model)}, ["The sea is"], preset="standard", max_tokens=4, `
    + `n_ctx=128, control=(${JSON.stringify(vec)}, 2.0), out=${JSON.stringify(join(dataDir, STEERED))})`]);
}

before(async () => {
  const work = tempDir("spectra-e2e-steer-");
  const dataDir = join(work, "data");
  mkdirSync(dataDir);
  makeSweep(work, dataDir);
  viewer = await openViewer(dataDir);
  ({ backend, page, errors } = viewer);
});

after(async () => {
  await viewer?.close();
});

describe("steering", () => {
  let cid, trials, baseline, plus, minus;
  const panel = () => page.locator("[data-testid=compare-panel]");
  /** /api/compare of baseline vs `b` once its next-token block is there (computed in the background). */
  const compareOf = async (b) => {
    for (let i = 0; ; i++) {
      const cmp = await getJSON(`${backend.url}/api/compare?a=${cid}:${baseline.id}&b=${cid}:${b}`);
      if (cmp.next_token_progress === null) return cmp;
      assert.ok(i < 600, "the next-token pass never finished");
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const projectionOf = (t) => getJSON(`${backend.url}/api/trials/${t}/projection?capture_id=${cid}`);

  test("a sweep opens compared against its strength-0 baseline: strengths, responses, drift, top-1 changes", async () => {
    cid = await openCapture(page, backend.url, SWEEP);
    trials = (await postJSON(`${backend.url}/api/load`, { filepath: SWEEP })).trial_list;
    assert.equal(trials.length, 3);
    baseline = trials.find((t) => t.sweep?.strength === 0);
    plus = trials.find((t) => t.sweep?.strength === 4);
    minus = trials.find((t) => t.sweep?.strength === -4);
    assert.ok(baseline && plus && minus);
    assert.ok(trials.every((t) => t.sweep.baseline === baseline.id && t.control?.strength === t.sweep.strength));

    await panel().locator(`[data-testid=compare-view][data-a="${cid}:${baseline.id}"][data-b="${cid}:${plus.id}"]`).waitFor();
    assert.equal(await panel().getAttribute("data-kind"), "sweep");
    const buttons = await panel().locator("[data-testid=compare-strength]").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-trial")), Number(e.getAttribute("data-strength")), e.getAttribute("aria-pressed")]));
    assert.deepEqual(buttons, [[minus.id, -4, "false"], [plus.id, 4, "true"]]);
    await checkAgainstApi(plus);
  });

  test("the strength picker compares another strength with the baseline", async () => {
    await panel().locator(`[data-testid=compare-strength][data-trial="${minus.id}"]`).click();
    await panel().locator(`[data-testid=compare-view][data-a="${cid}:${baseline.id}"][data-b="${cid}:${minus.id}"]`).waitFor();
    assert.equal(await panel().locator(`[data-testid=compare-strength][data-trial="${minus.id}"]`).getAttribute("aria-pressed"), "true");
    await checkAgainstApi(minus);
  });

  test("the projection chart overlays baseline and steered, per layer and per token, with the API's values", async () => {
    const chart = panel().locator("[data-testid=projection]");
    await chart.waitFor();
    const pa = await projectionOf(baseline.id), pb = await projectionOf(minus.id);
    assert.deepEqual(pa.layers, pb.layers);
    assert.equal(pb.strength, -4);
    // Per layer (the default: the last layer with a direction), then another layer.
    for (const layer of [pa.layers[pa.layers.length - 1], pa.layers[0]]) {
      await chart.locator("[data-testid=projection-layer]").selectOption(String(layer));
      await panel().locator(`[data-testid=projection][data-mode=layer][data-layer="${layer}"]`).waitFor();
      const i = pa.layers.indexOf(layer);
      for (const [side, p] of [["a", pa], ["b", pb]]) {
        const dots = await chart.locator(`[data-testid=projection-line-${side}] circle`).evaluateAll((els) =>
          els.map((e) => [Number(e.getAttribute("data-at")), Number(e.getAttribute("data-value"))]));
        const want = p.values[i].flatMap((v, x) => (v === null ? [] : [[x, v]]));
        assert.ok(want.length > 0, `layer ${layer} has values`);
        assert.deepEqual(dots, want);
      }
      // The steered line lies below the baseline at every token both have a row for (strength -4).
      const shared = pa.values[i].flatMap((v, x) => (v !== null && pb.values[i][x] !== null && x < pa.n_prompt ? [x] : []));
      assert.ok(shared.length > 0);
      for (const x of shared) assert.ok(pb.values[i][x] < pa.values[i][x], `layer ${layer} token ${x}`);
    }
    // Per token: the scrubber's token, against layer.
    await chart.locator("[data-testid=projection-mode]").selectOption("token");
    const pos = pa.n_prompt - 1;
    await panel().locator("[data-testid=compare-scrub]").fill(String(pos));
    await panel().locator(`[data-testid=projection][data-mode=token][data-pos="${pos}"]`).waitFor();
    for (const [side, p] of [["a", pa], ["b", pb]]) {
      const dots = await chart.locator(`[data-testid=projection-line-${side}] circle`).evaluateAll((els) =>
        els.map((e) => [Number(e.getAttribute("data-at")), Number(e.getAttribute("data-value"))]));
      assert.deepEqual(dots, p.layers.flatMap((l, i) => (p.values[i][pos] === null ? [] : [[l, p.values[i][pos]]])));
    }
    await chart.locator("[data-testid=projection-mode]").selectOption("layer");
    await saveScreenshot("steer-compare", (path) => panel().screenshot({ path }));
    assert.deepEqual(errors, []);
  });

  test("a capture of one steered trial shows its projection line alone", async () => {
    const one = await openCapture(page, backend.url, STEERED);
    const p = panel();
    await p.locator("[data-testid=compare-hint]").waitFor();
    const chart = p.locator("[data-testid=projection]");
    await chart.waitFor();
    const proj = await getJSON(`${backend.url}/api/trials/0/projection?capture_id=${one}`);
    assert.equal(proj.strength, 2);
    const layer = proj.layers[proj.layers.length - 1];
    assert.equal(await chart.getAttribute("data-layer"), String(layer));
    assert.equal(await chart.locator("[data-testid=projection-line-b]").count(), 0);
    const dots = await chart.locator("[data-testid=projection-line-a] circle").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-at")), Number(e.getAttribute("data-value"))]));
    assert.deepEqual(dots, proj.values[proj.layers.indexOf(layer)].flatMap((v, x) => (v === null ? [] : [[x, v]])));
    assert.deepEqual(errors, []);
  });

  /** The view against /api/compare for baseline vs `steered`, and the trial list's responses. */
  async function checkAgainstApi(steered) {
    const cmp = await compareOf(steered.id);
    const p = panel();
    await p.locator("[data-testid=compare-pending]").waitFor({ state: "detached" }); // the panel has the block too
    assert.equal(await p.locator("[data-testid=compare-response-a]").textContent(), baseline.response);
    assert.equal(await p.locator("[data-testid=compare-response-b]").textContent(), steered.response);
    const summary = await p.locator("[data-testid=compare-summary]").textContent();
    assert.ok(summary.includes(`${cmp.n_shared} shared tokens`), summary);
    if (cmp.diverge_at !== null) {
      assert.ok(summary.includes(`diverges at token ${cmp.diverge_at}`), summary);
      assert.equal(await p.locator("[data-testid=compare-diverge]").getAttribute("data-pos"), String(cmp.diverge_at));
    }
    const circles = await p.locator("[data-testid=compare-drift] circle").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-layer")), e.getAttribute("data-value")]));
    assert.deepEqual(circles, (cmp.drift ? cmp.layers : []).flatMap((l, i) => (cmp.drift[i] === null ? [] : [[l, cmp.drift[i].toFixed(6)]])));
    // The heads are in the models directory: the next-token comparison is there, and the view lists
    // exactly the positions where the two top-1 tokens differ.
    const nt = cmp.next_token;
    assert.ok(nt, `next-token comparison: ${cmp.notices.join("; ")}`);
    const want = nt.top1_a.flatMap((a, i) => (a !== null && nt.top1_b[i] !== null && a !== nt.top1_b[i] ? [i] : []));
    const got = await p.locator("[data-testid=compare-change]").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-pos"))));
    assert.deepEqual(got, want);
  }
});
