// Browser tests of the viewer (issue 5): real backend, real captures of a tiny GGUF, real chromium.
// Saves one screenshot per view under docs/screenshots/.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CHAT, FULL, STANDARD, getJSON, makeCaptures, openCapture, openViewer, postJSON, shoot, startBackend, tempDir,
} from "./harness.mjs";

const fmt = (v) => (v === null ? "—" : Math.abs(v) !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(4))));
const close = (a, b, what) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

let dataDir, viewer, backend, browser, page;
let errors, badResponses; // the page's errors, and every HTTP response >= 400 it got (a missing favicon would be one)

/** The capture file itself: tensor id by name and a statistic at a step (or a token row). */
function captureJSON(name) {
  const cap = JSON.parse(readFileSync(join(dataDir, name), "utf8"));
  const id = (tensor) => cap.tensors.find((t) => t.name === tensor).id;
  const l2 = cap.stat_names.indexOf("l2");
  return {
    cap,
    id,
    stat: (trial, step, tensor) => cap.trials[trial].steps[step].stats[String(id(tensor))][l2],
    row: (trial, step, tensor, k) => cap.trials[trial].steps[step].rows[String(id(tensor))][k][l2],
  };
}

async function loadCapture(name) {
  const cid = await openCapture(page, backend.url, name);
  await page.locator("[data-testid=model-card]").waitFor();
  for (const view of ["tensor-grid", "heatmap-types", "heatmap-tokens", "flow-diagram"]) {
    await page.locator(`[data-testid=${view}][data-capture-id="${cid}"]`).waitFor();
  }
  return cid;
}

async function waitAttr(selector, attr, expected) {
  await page.waitForFunction(
    ([s, a, e]) => document.querySelector(s)?.getAttribute(a) === e,
    [selector, attr, String(expected)],
    { timeout: 15000 },
  );
}

before(async () => {
  dataDir = tempDir("spectra-e2e-");
  makeCaptures(dataDir);
  viewer = await openViewer(dataDir);
  ({ backend, browser, page, errors, badResponses } = viewer);
});

after(async () => {
  await viewer?.close();
});

describe("viewer", () => {
  test("the 3D grid has one instance per tensor the API returns, at every depth", async () => {
    const cid = await loadCapture(FULL);
    await page.getByLabel("depth").selectOption("4");
    const grid = await postJSON(`${backend.url}/api/tensor-grid`, { capture_id: cid, trial_id: 0, step: 0, metric: "l2", depth: 4 });
    const { cap } = captureJSON(FULL);
    assert.equal(grid.cells.length, cap.tensors.length);
    await waitAttr("[data-testid=tensor-grid]", "data-cell-count", grid.cells.length);
    assert.equal(await page.evaluate(() => window.__spectra.gridCells()), grid.cells.length);
    await page.getByLabel("depth").selectOption("0");
    const outputs = await postJSON(`${backend.url}/api/tensor-grid`, { capture_id: cid, trial_id: 0, step: 0, metric: "l2", depth: 0 });
    assert.ok(outputs.cells.length < grid.cells.length);
    await waitAttr("[data-testid=tensor-grid]", "data-cell-count", outputs.cells.length);
    await page.getByLabel("depth").selectOption("4");
    await waitAttr("[data-testid=tensor-grid]", "data-cell-count", grid.cells.length);
    // Axis labels: every layer row (-1, blocks, 998, 999) and every type column (drei renders them async).
    await page.waitForFunction((n) => document.querySelectorAll(".type-label").length === n && document.querySelectorAll(".layer-label").length === 5, grid.types.length);
    assert.deepEqual((await page.locator(".layer-label").allTextContents()).sort(), ["L0", "L1", "emb", "logits", "norm"]);
    assert.equal(await page.locator(".type-label").count(), grid.types.length);
  });

  test("hovering a cell shows that tensor's name, layer, op and shape", async () => {
    const caps = await getJSON(`${backend.url}/api/captures`);
    const grid = await postJSON(`${backend.url}/api/tensor-grid`, { capture_id: caps.current, trial_id: 0, step: 0, metric: "l2", depth: 4 });
    // The cell nearest the camera (front row, right end) cannot be hidden by another cell.
    const i = grid.cells.reduce((best, c, k) => (c.layer_index * 1000 + c.type_index > grid.cells[best].layer_index * 1000 + grid.cells[best].type_index ? k : best), 0);
    const cell = grid.cells[i];
    await page.waitForTimeout(300); // one rendered frame after the last depth change
    const p = await page.evaluate((k) => window.__spectra.cellScreenPosition(k), i);
    await page.mouse.move(p.x, p.y);
    const tip = page.locator("[data-testid=grid-tooltip]");
    await tip.waitFor({ timeout: 10000 });
    assert.equal(await page.locator("[data-testid=grid-tooltip-name]").textContent(), cell.name);
    const text = await tip.textContent();
    assert.ok(text.includes(`layer ${cell.layer}`) && text.includes(cell.op) && text.includes(cell.shape.join(", ")), text);
    assert.ok(text.includes(fmt(cell.value)), `${text} lacks ${fmt(cell.value)}`);
    // Click selects: the detail panel opens on that tensor.
    await page.mouse.click(p.x, p.y);
    await page.locator(`[data-testid=tensor-detail][data-tensor-id="${cell.id}"]`).waitFor();
    assert.equal(await page.locator("[data-testid=detail-name]").textContent(), cell.name);
    await shoot(page.locator("[data-testid=view-grid]"), "grid");
  });

  test("the heat maps show the capture's values", async () => {
    await loadCapture(STANDARD);
    const cj = captureJSON(STANDARD);
    const expected = cj.stat(0, 0, "l_out-0");
    const cellSel = '[data-testid=heatmap-types] rect[data-row="0"][data-col="l_out"]';
    await page.locator(cellSel).waitFor();
    close(Number(await page.getAttribute(cellSel, "data-value")), expected, "l_out-0 at step 0");
    await page.locator(cellSel).hover();
    assert.ok((await page.locator("[data-testid=heatmap-types-readout]").textContent()).includes(fmt(expected)));
    // Layers × tokens for l_out: token 3's row in the prefill.
    const tokSel = '[data-testid=heatmap-tokens] rect[data-row="0"][data-col="3"]';
    await page.locator(tokSel).waitFor();
    close(Number(await page.getAttribute(tokSel, "data-value")), cj.row(0, 0, "l_out-0", 3), "l_out-0 row of token 3");
    // Clicking a token cell jumps to that tensor and token.
    await page.locator(tokSel).click();
    await page.locator(`[data-testid=tensor-detail][data-tensor-id="${cj.id("l_out-0")}"]`).waitFor();
    await page.locator('.token.chosen[data-pos="3"]').waitFor();
    const rowText = await page.locator("[data-testid=stat-token-l2]").textContent();
    assert.equal(rowText, fmt(cj.row(0, 0, "l_out-0", 3)));
    await shoot(page.locator("[data-testid=view-heatmap]"), "heatmap");
  });

  test("log scale recolours the heat map but keeps the real values", async () => {
    const cj = captureJSON(STANDARD);
    const caps = await getJSON(`${backend.url}/api/captures`);
    const api = await getJSON(`${backend.url}/api/heatmap?capture_id=${caps.current}&trial_id=0&metric=l2&axis=types&step=0`);
    const cells = async () => page.locator("[data-testid=heatmap-types] rect.heat-cell").evaluateAll((els) =>
      els.map((e) => ({ key: `${e.getAttribute("data-row")}/${e.getAttribute("data-col")}`, value: e.getAttribute("data-value"), fill: e.getAttribute("fill") })));
    await page.locator("[data-testid=heatmap-types][data-scale=linear]").waitFor();
    const linear = await cells();
    // Every cell's data-value is the API's number (and so the capture's, checked for l_out-0 above).
    const expected = api.rows.flatMap((r, i) => api.cols.map((c, j) => ({ key: `${r}/${c.label}`, value: api.values[i][j] === null ? "null" : String(api.values[i][j]) })));
    assert.deepEqual(linear.map(({ key, value }) => ({ key, value })), expected);
    assert.ok(linear.filter((c) => c.value !== "null").length > 4, "enough cells to compare");

    await page.getByLabel("scale").selectOption("log");
    await page.locator("[data-testid=heatmap-types][data-scale=log]").waitFor();
    await page.locator("[data-testid=tensor-grid][data-scale=log]").waitFor();
    const log = await cells();
    assert.deepEqual(log.map((c) => c.value), linear.map((c) => c.value), "data-value stays the real value");
    const changed = log.filter((c, k) => c.fill !== linear[k].fill);
    assert.ok(changed.length > 0, "log scale changes some cell colours");
    // The ends keep their colours: min and max are at 0 and 1 on every scale.
    const real = linear.filter((c) => c.value !== "null").map((c) => Number(c.value));
    const lo = Math.min(...real);
    const hi = Math.max(...real);
    for (const [k, c] of linear.entries()) {
      if (c.value !== "null" && (Number(c.value) === lo || Number(c.value) === hi)) assert.equal(log[k].fill, c.fill, `end ${c.key}`);
    }
    // Legend: real values at its ends, the scale named; hover shows the real value.
    const legend = page.locator("[data-testid=heatmap-types] [data-testid=scale-legend]");
    assert.equal(await legend.locator("[data-tick=min]").textContent(), fmt(lo));
    assert.equal(await legend.locator("[data-tick=max]").textContent(), fmt(hi));
    assert.equal(await legend.locator(".scale-bar-wrap").getAttribute("data-scale"), "log");
    const ticks = (await legend.locator(".scale-tick").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-value")))));
    assert.equal(ticks.length, 3);
    for (const t of ticks) assert.ok(t > lo && t < hi, `tick ${t} is a real value inside [${lo}, ${hi}]`);
    const cellSel = '[data-testid=heatmap-types] rect[data-row="0"][data-col="l_out"]';
    await page.locator(cellSel).hover();
    assert.ok((await page.locator("[data-testid=heatmap-types-readout]").textContent()).includes(fmt(cj.stat(0, 0, "l_out-0"))));
    await shoot(page.locator("[data-testid=view-heatmap]"), "heatmap-log");
    // Back to linear: the same colours as before.
    await page.getByLabel("scale").selectOption("linear");
    await page.locator("[data-testid=heatmap-types][data-scale=linear]").waitFor();
    assert.deepEqual(await cells(), linear);
  });

  test("the flow diagram shows the capture's values", async () => {
    const cj = captureJSON(STANDARD);
    await page.getByLabel("flow layer").selectOption("1");
    const node = page.locator('[data-testid=flow-block] .flow-node[data-type="attn_out"][data-layer="1"]');
    await node.waitFor();
    const expected = cj.stat(0, 0, "attn_out-1");
    close(Number(await node.getAttribute("data-value")), expected, "attn_out-1");
    assert.equal(await node.locator(".flow-value").textContent(), fmt(expected));
    const over = page.locator('.flow-overview .flow-node[data-type="overview:l_out"][data-layer="0"]');
    close(Number(await over.getAttribute("data-value")), cj.stat(0, 0, "l_out-0"), "l_out-0 in the overview");
    await node.click();
    await page.locator(`[data-testid=tensor-detail][data-tensor-id="${cj.id("attn_out-1")}"]`).waitFor();
    const steps = cj.cap.trials[0].steps.length;
    assert.equal(await page.locator("[data-testid=detail-chart] .chart-point").count(), steps);
    assert.equal(await page.locator("[data-testid=stat-step-l2]").textContent(), fmt(expected));
    await shoot(page.locator("[data-testid=view-flow]"), "flow");
    await shoot(page.locator("[data-testid=view-detail]"), "detail");
  });

  test("choosing another token moves every view to its step", async () => {
    const cj = captureJSON(STANDARD);
    const heatSel = '[data-testid=heatmap-types] rect[data-row="0"][data-col="l_out"]';
    const flowSel = '[data-testid=flow-block] .flow-node[data-type="attn_out"][data-layer="1"]';
    const before0 = Number(await page.getAttribute(heatSel, "data-value"));
    const tok = page.locator('[data-testid=token-strip] .token[data-step="2"]').first();
    await tok.click();
    await page.locator("[data-testid=step-label]").filter({ hasText: /^step 2 \// }).waitFor();
    const at2 = cj.stat(0, 2, "l_out-0");
    await waitAttr(heatSel, "data-value", String(await heatValue(0, "l_out", 2)));
    const v = Number(await page.getAttribute(heatSel, "data-value"));
    close(v, at2, "l_out-0 at step 2");
    assert.notEqual(v, before0);
    close(Number(await page.getAttribute(flowSel, "data-value")), cj.stat(0, 2, "attn_out-1"), "attn_out-1 at step 2");
    assert.equal(await page.locator("[data-testid=stat-step-l2]").textContent(), fmt(cj.stat(0, 2, "attn_out-1")));
    // The scrubber does the same.
    await page.locator("[data-testid=step-slider]").fill("4");
    await page.locator("[data-testid=step-label]").filter({ hasText: /^step 4 \// }).waitFor();
    await waitAttr(heatSel, "data-value", String(await heatValue(0, "l_out", 4)));
    close(Number(await page.getAttribute(heatSel, "data-value")), cj.stat(0, 4, "l_out-0"), "l_out-0 at step 4");
    await shoot(page.locator("[data-testid=view-timeline]"), "timeline");
    await page.screenshot({ path: join(dataDir, "page.png") });
    await page.evaluate(() => window.scrollTo(0, 0)); // the sticky top bar sits at the top of the shot
    await shoot(page.locator("body"), "viewer");
  });

  test("Token Lens: hovering a token shows its attention links, zones and state", async () => {
    const caps = await getJSON(`${backend.url}/api/captures`);
    const q = `capture_id=${caps.current}&trial_id=0`;
    const att = await getJSON(`${backend.url}/api/attention?${q}&layer=0`);
    const nHead = att.n_head;
    const focus = 5;
    // Expected: mean over heads of each attended position's probability (what it attends to),
    // and every other token whose top-k includes position 5 (what attends to it).
    const mean = (edges) => {
      const m = new Map();
      for (const e of edges) m.set(e.pos, (m.get(e.pos) ?? 0) + e.p / nHead);
      return m;
    };
    const outExp = mean(att.tokens.find((t) => t.pos === focus).layers[0].edges);
    const inExp = new Map();
    for (const t of att.tokens) {
      if (t.pos === focus) continue;
      const m = mean(t.layers[0].edges);
      if (m.has(focus)) inExp.set(t.pos, m.get(focus));
    }
    assert.ok(outExp.size > 1 && inExp.size > 0);
    await page.locator(`[data-testid=lens-strip] .lens-token[data-pos="${focus}"]`).hover();
    await page.locator(".arc-out").first().waitFor();
    const arcs = async (cls, key) => Object.fromEntries(await page.locator(cls).evaluateAll((els, k) =>
      els.map((e) => [Number(e.getAttribute(k)), Number(e.getAttribute("data-p"))]), key));
    const out = await arcs(".arc-out", "data-to");
    assert.deepEqual(Object.keys(out).map(Number).sort((a, b) => a - b), [...outExp.keys()].sort((a, b) => a - b));
    for (const [pos, p] of outExp) close(out[pos], p, `p ${focus} -> ${pos}`);
    assert.ok(out[0] > 0, "the attention sink (position 0) is drawn, not hidden");
    const inn = await arcs(".arc-in", "data-from");
    assert.deepEqual(Object.keys(inn).map(Number).sort((a, b) => a - b), [...inExp.keys()].sort((a, b) => a - b));
    // One head: exactly that head's top-k edges.
    await page.getByLabel("lens head").selectOption("1");
    await page.locator(`[data-testid=lens-strip] .lens-token[data-pos="${focus}"]`).hover();
    const head1 = att.tokens.find((t) => t.pos === focus).layers[0].edges.filter((e) => e.head === 1);
    await page.waitForFunction((n) => document.querySelectorAll(".arc-out").length === n, head1.length);
    const out1 = await arcs(".arc-out", "data-to");
    for (const e of head1) close(out1[e.pos], e.p, `head 1 p ${focus} -> ${e.pos}`);
    // Entropy grid of the hovered token: layer × head, the API's entropies.
    const tok = await getJSON(`${backend.url}/api/attention?${q}&token=${focus}`);
    const cell = page.locator('[data-testid=entropy-grid] td[data-layer="1"][data-head="2"]');
    await cell.waitFor();
    close(Number(await cell.getAttribute("data-value")), tok.tokens[0].layers[1].entropy[2], "entropy L1 h2");
    // Zones, zone distribution, state label and delta bar of the current step.
    const interp = await getJSON(`${backend.url}/api/trials/0/interpretation?capture_id=${caps.current}`);
    for (const [z, f] of Object.entries(interp.zone_distribution)) {
      if (f > 0) close(Number(await page.getAttribute(`[data-testid=zone-bar] [data-zone="${z}"]`, "data-fraction")), f, z);
    }
    const step = Number((await page.locator("[data-testid=step-label]").textContent()).match(/^step (\d+)/)[1]);
    const st = interp.states.find((s) => s.step === step);
    assert.equal(await page.getAttribute("[data-testid=state-label]", "data-label"), st.label);
    assert.equal(await page.locator("[data-testid=delta-bar] .delta-cell").count(), st.delta.length);
    await shoot(page.locator("[data-testid=view-timeline]"), "lens");
    // The last token was sampled, never evaluated: hovering it asks for no attention of its own (no 404).
    const last = (await getJSON(`${backend.url}/api/trials/0?${q}`)).tokens.length - 1;
    const failed = [];
    const onResponse = (r) => { if (r.url().includes("/api/attention") && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); };
    page.on("response", onResponse);
    const asked = page.waitForResponse((r) => r.url().includes("/api/attention") && r.url().includes(`target=${last}`));
    await page.locator(`[data-testid=lens-strip] .lens-token[data-pos="${last}"]`).hover();
    await asked;
    await page.waitForTimeout(500);
    page.off("response", onResponse);
    assert.deepEqual(failed, []);
    await page.mouse.move(5, 5);
  });

  test("the timeline greys the chat template's tokens, as the API marks them", async () => {
    const cid = await loadCapture(CHAT);
    const trial = await getJSON(`${backend.url}/api/trials/0?capture_id=${cid}`);
    assert.equal(trial.chat, true);
    assert.equal(trial.prompt_text, captureJSON(CHAT).cap.trials[0].prompt_text);
    const marked = trial.tokens.filter((t) => t.template).map((t) => t.pos);
    const users = trial.tokens.filter((t) => t.prompt && !t.template);
    assert.ok(marked.length > 0 && users.length > 0);
    assert.equal(users.map((t) => t.text).join(""), trial.prompt);
    const strip = page.locator("[data-testid=token-strip]");
    await strip.locator(".token").nth(trial.tokens.length - 1).waitFor();
    const greyed = await strip.locator(".token.template").evaluateAll((els) => els.map((e) => Number(e.dataset.pos)));
    assert.deepEqual(greyed, marked);
    const colour = (pos) => strip.locator(`.token[data-pos="${pos}"]`).evaluate((e) => getComputedStyle(e).color);
    const grey = await colour(marked[0]);
    assert.notEqual(grey, await colour(users[0].pos)); // the user's own tokens are not greyed
    const generated = trial.tokens.find((t) => !t.prompt);
    assert.ok(generated);
    assert.notEqual(grey, await colour(generated.pos)); // nor generated ones
  });

  test("uploading a bad file shows the server's error", async () => {
    const bad = Buffer.from('{"format": "spectra-vis-capture", "version": "2.0", "trials": [');
    const form = new FormData();
    form.append("file", new Blob([bad], { type: "application/json" }), "broken.json");
    const direct = await fetch(`${backend.url}/api/upload`, { method: "POST", body: form });
    assert.equal(direct.status, 422);
    const message = (await direct.json()).error;
    await page.locator("[data-testid=upload-input]").setInputFiles({ name: "broken.json", mimeType: "application/json", buffer: bad });
    const alert = page.locator("[data-testid=captures-error]");
    await alert.waitFor();
    assert.equal(await alert.textContent(), `Upload of broken.json failed: ${message}`);
    // Drag and drop goes the same way.
    await page.locator("[data-testid=dropzone]").evaluate((el) => {
      const dt = new DataTransfer();
      dt.items.add(new File(["not json at all"], "notes.json", { type: "application/json" }));
      el.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await alert.filter({ hasText: "Upload of notes.json failed:" }).waitFor();
    const files = await getJSON(`${backend.url}/api/files`);
    assert.deepEqual(files.files.map((f) => f.name).sort(), [CHAT, FULL, STANDARD].sort());
    await shoot(page.locator("[data-testid=captures-panel]"), "captures");
  });

  test("no page errors and no failed requests (the favicon is served)", async () => {
    assert.deepEqual(errors, []);
    // The upload test's 422s are the only failures the page may have seen.
    assert.deepEqual(badResponses.filter((r) => !r.endsWith("/api/upload")), []);
    const href = await page.getAttribute('link[rel="icon"]', "href");
    const icon = await fetch(new URL(href, backend.url));
    assert.equal(icon.status, 200);
    assert.match(icon.headers.get("content-type"), /^image\/svg\+xml/);
  });
});

describe("empty data directory", () => {
  test("explains the capture step and shows the command", async () => {
    const empty = await startBackend(tempDir("spectra-e2e-empty-"));
    try {
      const p = await browser.newPage({ viewport: { width: 1300, height: 700 } });
      await p.goto(empty.url);
      const state = p.locator("[data-testid=empty-state]");
      await state.waitFor();
      assert.equal(await state.locator("pre").textContent(), "python capture_tensors.py");
      await p.close();
    } finally {
      empty.stop();
    }
  });
});

async function heatValue(layer, type, step) {
  const caps = await getJSON(`${backend.url}/api/captures`);
  const h = await getJSON(`${backend.url}/api/heatmap?capture_id=${caps.current}&trial_id=0&metric=l2&axis=types&step=${step}`);
  return h.values[h.rows.indexOf(layer)][h.cols.findIndex((c) => c.type === type)];
}
