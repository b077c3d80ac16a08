// A long trial in the viewer (issue 14): the layers × tokens heat map is one canvas (no element per
// cell) whose hover values are the API's, the token strip draws only the rows in view and still
// reaches every token; the logit-lens grid is one canvas whose hover values and top-5 are the API's;
// the Token Lens strip draws only the tokens in view; loading the capture shows a progress bar. A
// real capture of 800 tokens of a tiny llama (forced after a raw prompt).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { REPO, PYTHON, getJSON, openCapture, openViewer, shoot, tempDir } from "./harness.mjs";

const LONG = "capture_long.json";
const N = 800;
let viewer, page, backend, dir;

function makeLong(dataDir) {
  const code = `
import sys
import numpy as np
from spectra_vis.capturing.session import Session
from spectra_vis.testing.tiny_gguf import write_tiny_model
d, n = sys.argv[1], int(sys.argv[2])
model = write_tiny_model(d + "/long.gguf", n_layer=3, n_ctx_train=n + 64, seed=4)
with Session(model, preset="standard", n_ctx=n + 64) as s:
    ids = s.model.tokenize(b"Once upon a time there was a list", add_bos=True)
    n_prompt = len(ids)
    ids += [int(i) for i in np.random.default_rng(1).integers(259, int(s.model.n_vocab()), n - n_prompt)]
    s.force("Once upon a time there was a list", ids, n_prompt)
    s.capture(out=d + "/${LONG}")
`;
  execFileSync(PYTHON, ["-c", code, dataDir, String(N)], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
}

before(async () => {
  dir = tempDir("spectra-e2e-long-");
  makeLong(dir);
  viewer = await openViewer(dir);
  ({ page, backend } = viewer);
  await page.evaluate(() => { // every phase the load progress bar shows, in order
    window.progressSeen = [];
    const note = () => {
      const ph = document.querySelector("[data-testid=load-progress]")?.getAttribute("data-phase") ?? "none";
      if (window.progressSeen.at(-1) !== ph) window.progressSeen.push(ph);
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-phase"] });
  });
  await openCapture(page, backend.url, LONG);
  await page.locator("[data-testid=load-progress]").waitFor({ state: "detached", timeout: 120000 }); // the first views are drawn
}, { timeout: 300000 });

after(async () => {
  await viewer?.close();
});

describe("a long trial", () => {
  test("the token heat map is one canvas and its hover values are the API's", async () => {
    const caps = await getJSON(`${backend.url}/api/captures`);
    const api = await getJSON(`${backend.url}/api/heatmap?capture_id=${caps.current}&trial_id=0&metric=l2&axis=tokens&type=l_out`);
    assert.equal(api.cols.length, N);
    const map = page.locator(`[data-testid=heatmap-tokens][data-render=canvas][data-capture-id="${caps.current}"]`);
    await map.waitFor();
    assert.equal(await page.locator("[data-testid=heatmap-tokens] rect").count(), 0, "no SVG element per cell");
    const canvas = map.locator("canvas.heat-canvas");
    const cellW = Number(await canvas.getAttribute("data-cell-w"));
    const cellH = Number(await canvas.getAttribute("data-cell-h"));
    const scroller = map.locator(".heatmap-scroll");
    await canvas.scrollIntoViewIfNeeded();
    for (const [r, c] of [[0, 3], [1, 40], [api.rows.length - 1, N - 2], [2, Math.floor(N / 2)]]) {
      await scroller.evaluate((el, x) => { el.scrollLeft = x; }, Math.max(0, c * cellW - 300));
      await page.waitForTimeout(50);
      const box = await canvas.boundingBox(); // the cells' picture: it moves with the scroll
      await page.mouse.move(box.x + c * cellW + cellW / 2, box.y + r * cellH + cellH / 2);
      await page.waitForFunction(([rr, cc]) => {
        const el = document.querySelector("[data-testid=heatmap-tokens]");
        return el?.getAttribute("data-hover-col") === String(cc) && el?.getAttribute("data-hover-row") === String(rr);
      }, [api.rows[r], c], { timeout: 5000 }).catch(async (e) => {
        throw new Error(`hover at layer ${api.rows[r]} token ${c}: the map says row ${await map.getAttribute("data-hover-row")} col ${await map.getAttribute("data-hover-col")} (${e.message})`);
      });
      const got = await map.getAttribute("data-hover-value");
      const want = api.values[r][c];
      assert.equal(got === "null" ? null : Number(got), want, `layer ${api.rows[r]}, token ${c}`);
    }
    await shoot(page.locator("[data-testid=view-heatmap]"), "heatmap-long");
  });

  test("the token strip draws only the rows in view and reaches the last token", async () => {
    const caps = await getJSON(`${backend.url}/api/captures`);
    const trial = await getJSON(`${backend.url}/api/trials/0?capture_id=${caps.current}`);
    const strip = page.locator("[data-testid=view-timeline] [data-testid=token-strip][data-virtual=true]");
    await strip.waitFor();
    assert.equal(Number(await strip.getAttribute("data-count")), trial.tokens.length);
    const drawn = await strip.locator(".token").count();
    assert.ok(drawn > 0 && drawn < trial.tokens.length / 2, `${drawn} of ${trial.tokens.length} tokens in the page`);
    await strip.evaluate((el) => { el.scrollTop = el.scrollHeight; });
    const target = trial.tokens[trial.tokens.length - 2];
    const button = strip.locator(`.token[data-pos="${target.pos}"]`);
    await button.waitFor();
    await button.click();
    await page.locator(`[data-testid=token-strip] .token.chosen[data-pos="${target.pos}"]`).waitFor();
    const label = await page.locator("[data-testid=step-label]").textContent();
    assert.match(label, new RegExp(`^step ${target.step} /`));
    // The chosen token's column is the heat map's highlighted one, scrolled into view.
    await page.waitForFunction(() => document.querySelector("[data-testid=heatmap-tokens] .heatmap-scroll")?.scrollLeft > 0);
  });

  test("loading it showed a progress bar until the first views had their data", async () => {
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.includes("load"), `phases seen: ${seen.join(", ")}`);
    assert.equal(seen.at(-1), "none", `phases seen: ${seen.join(", ")}`);
  });

  test("the logit lens is one canvas (no element per cell) whose hover values and top-5 are the API's", async () => {
    const caps = await getJSON(`${backend.url}/api/captures`);
    const cid = caps.current;
    const grid = await getJSON(`${backend.url}/api/trials/0/lens?capture_id=${cid}`);
    assert.equal(grid.tokens.length, N);
    const panel = page.locator(`[data-testid=logit-lens][data-render=canvas][data-capture-id="${cid}"]`);
    await panel.waitFor();
    assert.equal(await panel.locator(".logit-lens-cell").count(), 0, "no element per cell");
    const elements = await page.locator("#view-logit-lens *").count();
    const cells = grid.layers.length * grid.tokens.length;
    assert.ok(elements < 60, `${elements} elements in the logit-lens panel for ${cells} cells`);
    const [cellW, cellH, labelW, headH] = await Promise.all(["cell-w", "cell-h", "label-w", "head-h"].map(async (a) => Number(await panel.getAttribute(`data-${a}`))));
    const canvas = panel.locator("canvas.logit-lens-canvas");
    const scroller = panel.locator(".logit-lens-scroll");
    await panel.evaluate((el) => el.scrollIntoView({ block: "center" })); // clear of the sticky top bar
    // Cells with a row: at the start, in the middle, near the end (the last layer's only rows are from
    // the last prompt position on).
    const last = grid.layers.length - 1;
    const picks = [[0, 2], [last, Math.floor(N / 2)], [Math.min(1, last), N - 3], [last, N - 2]]
      .filter(([r, c]) => grid.top_texts[r][c] !== null);
    assert.ok(picks.length >= 3, "cells with a row to hover");
    for (const [r, c] of picks) {
      const scrollLeft = await scroller.evaluate((el, x) => { el.scrollLeft = x; return el.scrollLeft; }, Math.max(0, c * cellW - 300));
      const layer = grid.layers[r];
      const hovered = () => page.evaluate(([l, p]) => {
        const el = document.querySelector("[data-testid=logit-lens]");
        return el?.getAttribute("data-hover-layer") === String(l) && el?.getAttribute("data-hover-pos") === String(p);
      }, [layer, c]);
      // The panel takes the scroll in on its next frame; on a loaded machine that can be late, so the
      // pointer is moved onto the cell again (1 px apart, a new mousemove) until the panel reads it.
      for (let i = 0; i < 50 && !(await hovered()); i++) {
        await page.waitForTimeout(100);
        const box = await canvas.boundingBox(); // as wide as the viewport: it stays while the grid scrolls
        await page.mouse.move(box.x + labelW + c * cellW - scrollLeft + cellW / 2 + (i % 2), box.y + headH + r * cellH + cellH / 2);
      }
      if (!(await hovered())) {
        throw new Error(`hover at layer ${layer} token ${c}: the panel says ${await panel.getAttribute("data-hover-layer")} / ${await panel.getAttribute("data-hover-pos")}`);
      }
      assert.equal(await panel.getAttribute("data-hover-text"), grid.top_texts[r][c], `layer ${layer} token ${c}`);
      assert.equal(Number(await panel.getAttribute("data-hover-p")), grid.top_p[r][c], `layer ${layer} token ${c}`);
      const api = await getJSON(`${backend.url}/api/trials/0/lens?capture_id=${cid}&layer=${layer}&token=${c}&k=5`);
      const tip = page.locator(`[data-testid=logit-lens-tooltip][data-layer="${layer}"][data-pos="${c}"][data-ready=true]`);
      await tip.waitFor();
      const top = await tip.locator("[data-testid=logit-lens-top] li").evaluateAll((els) => els.map((e) => [e.getAttribute("data-text"), Number(e.getAttribute("data-p"))]));
      assert.deepEqual(top, api.top.map((t) => [t.text, t.p]));
      assert.equal(api.top[0].text, grid.top_texts[r][c]);
    }
    // A click selects that layer and token.
    const [r, c] = picks[1];
    const scrollLeft = await scroller.evaluate((el, x) => { el.scrollLeft = x; return el.scrollLeft; }, Math.max(0, c * cellW - 300));
    await page.waitForTimeout(50);
    const box = await canvas.boundingBox();
    await page.mouse.click(box.x + labelW + c * cellW - scrollLeft + cellW / 2, box.y + headH + r * cellH + cellH / 2);
    await page.locator(`[data-testid=logit-lens-selected-layer][data-layer="${grid.layers[r]}"]`).waitFor();
    await page.locator(`[data-testid=logit-lens-selected-token][data-pos="${c}"]`).waitFor();
    await shoot(page.locator("[data-testid=view-logit-lens]"), "logit-lens-long");
  });

  test("the Token Lens strip draws fewer tokens than the trial has and reaches the last one", async () => {
    const strip = page.locator("[data-testid=token-lens] [data-testid=lens-strip]");
    await strip.waitFor();
    assert.equal(Number(await strip.getAttribute("data-count")), N);
    const drawn = await strip.locator(".lens-token").count();
    assert.ok(drawn > 0 && drawn < N / 4, `${drawn} of ${N} tokens drawn`);
    const elements = await strip.locator("*").count();
    assert.ok(elements < N, `${elements} elements in the strip for ${N} tokens`);
    await page.locator("[data-testid=token-lens] .lens-strip").evaluate((el) => { el.scrollLeft = el.scrollWidth; });
    await strip.locator(`.lens-token[data-pos="${N - 1}"]`).waitFor();
    // The one before the last (the last, sampled token was never evaluated: it has no attention).
    await strip.locator(`.lens-token[data-pos="${N - 2}"]`).hover();
    await page.locator(`[data-testid=lens-strip] .lens-token.focus[data-pos="${N - 2}"]`).waitFor();
    await page.locator(`[data-testid=lens-strip] path.arc-out[data-from="${N - 2}"]`).first().waitFor();
  });

  test("no page errors", () => {
    assert.deepEqual(viewer.errors, []);
    assert.deepEqual(viewer.badResponses, []);
  });
});
