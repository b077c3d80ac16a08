// A long trial in the viewer (issue 14): the layers × tokens heat map is one canvas (no element per
// cell) whose hover values are the API's, the token strip draws only the rows in view and still
// reaches every token. A real capture of 800 tokens of a tiny llama (forced after a raw prompt).
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
  await openCapture(page, backend.url, LONG);
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

  test("no page errors", () => {
    assert.deepEqual(viewer.errors, []);
    assert.deepEqual(viewer.badResponses, []);
  });
});
