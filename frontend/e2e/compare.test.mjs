// Browser test of the compare panel: real backend, a real pair capture (`spectra-vis compare` of a
// tiny f32 llama GGUF and its Q4_0 quantization), real chromium. The panel is checked against the
// API's answer fetched here from the same server.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PYTHON, REPO, getJSON, openCapture, openViewer, saveScreenshot, tempDir } from "./harness.mjs";

const PAIR = "pair.json";
let dataDir, viewer, backend, page, errors;

function makePair(dir, out) {
  const run = (args) => execFileSync(PYTHON, args, { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  const f32 = join(dir, "f32.gguf");
  run(["-c", `from spectra_vis.testing.tiny_gguf import write_tiny_model; write_tiny_model(${JSON.stringify(f32)}, arch='llama', n_layer=4, n_embd=128, n_ff=256, seed=3)`]);
  run(["-m", "spectra_vis.cli", "quantize", f32, "--type", "Q4_0", "--out-dir", dir]);
  run(["-m", "spectra_vis.cli", "compare", "--models", f32, join(dir, "f32-Q4_0.gguf"), "--prompt", "The capital of France is",
    "--max-tokens", "6", "--n-ctx", "128", "--out", join(out, PAIR)]);
}

before(async () => {
  const work = tempDir("spectra-e2e-compare-");
  dataDir = join(work, "data");
  mkdirSync(dataDir);
  makePair(work, dataDir);
  viewer = await openViewer(dataDir);
  ({ backend, page, errors } = viewer);
});

after(async () => {
  await viewer?.close();
});

describe("compare", () => {
  let cid, cmp;

  test("a pair capture opens compared: summary, drift, heat map and token strip match the API", async () => {
    cid = await open();
    cmp = await getJSON(`${backend.url}/api/compare?a=${cid}:0&b=${cid}:1`);
    const panel = page.locator("[data-testid=compare-panel]");
    await panel.locator(`[data-testid=compare-view][data-a="${cid}:0"][data-b="${cid}:1"]`).waitFor();
    assert.equal(await panel.locator("[data-testid=compare-a]").inputValue(), "0");
    assert.equal(await panel.locator("[data-testid=compare-b]").inputValue(), "1");

    const summary = await panel.locator("[data-testid=compare-summary]").textContent();
    assert.ok(summary.includes(`${(cmp.summary.top1_agreement * 100).toFixed(1)}%`), summary);
    assert.ok(summary.includes(`${cmp.n_shared} shared tokens`), summary);
    assert.ok(summary.includes(`mean cosine ${cmp.summary.mean_cosine.toFixed(4)}`), summary);

    const nt = cmp.next_token;
    assert.ok(nt, "the pair has next-token data");
    const want = nt.top1_a.flatMap((a, i) => (a !== null && nt.top1_b[i] !== null && a !== nt.top1_b[i] ? [i] : []));
    const strip = panel.locator("[data-testid=compare-strip]");
    assert.equal(await strip.locator("span").count(), cmp.n_shared);
    const got = await strip.locator("span.disagree").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-pos"))));
    assert.equal(got.length, want.length);
    assert.deepEqual(got, want);

    assert.ok(cmp.drift && cmp.drift.length === cmp.layers.length);
    const circles = await panel.locator("[data-testid=compare-drift] circle").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-layer")), e.getAttribute("data-value")]));
    assert.deepEqual(circles, cmp.layers.map((l, i) => [l, cmp.drift[i].toFixed(6)]));

    const heat = panel.locator("[data-testid=compare-heat]");
    assert.equal(await heat.getAttribute("data-rows"), String(cmp.layers.length));
    assert.equal(await heat.getAttribute("data-cols"), String(cmp.n_shared));
  });

  test("hovering the heat map shows the cell's value; the scrubber moves the position", async () => {
    const panel = page.locator("[data-testid=compare-panel]");
    const heat = panel.locator("[data-testid=compare-heat]");
    const box = await heat.boundingBox();
    const cols = cmp.n_shared, rows = cmp.layers.length;
    // The last layer's last cell with a value.
    const r = rows - 1;
    const c = cmp.resid_l2_change[r].findLastIndex((v) => v !== null);
    assert.ok(c >= 0);
    await heat.hover({ position: { x: (c + 0.5) * (box.width / cols), y: (r + 0.5) * (box.height / rows) } });
    const tip = panel.locator(`[data-testid=compare-tip][data-layer="${cmp.layers[r]}"][data-pos="${c}"]`);
    await tip.waitFor();
    assert.ok((await tip.textContent()).endsWith(cmp.resid_l2_change[r][c].toFixed(6)));

    const pos = panel.locator("[data-testid=compare-pos]");
    const before = await pos.textContent();
    const p0 = Number(await pos.getAttribute("data-pos"));
    const nt = cmp.next_token;
    // A scored position other than the current one (the last scored one).
    const target = nt.kl.findLastIndex((v, i) => v !== null && i !== p0);
    await panel.locator("[data-testid=compare-scrub]").fill(String(target));
    await panel.locator(`[data-testid=compare-pos][data-pos="${target}"]`).waitFor();
    const after = await pos.textContent();
    assert.notEqual(after, before);
    assert.equal(after, `a: ${nt.top1_a[target]} b: ${nt.top1_b[target]} KL ${nt.kl[target].toFixed(5)}`);
    assert.equal(await panel.locator("[data-testid=compare-strip] span.current").getAttribute("data-pos"), String(target));
    await saveScreenshot("compare", (path) => panel.screenshot({ path }));
    assert.deepEqual(errors, []);
  });
});

async function open() {
  return openCapture(page, backend.url, PAIR);
}
