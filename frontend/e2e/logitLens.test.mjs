// Browser test of the logit-lens panel (issue 12): real backend, real captures of a tiny GGUF (the
// standard captures carry a lens; an observe capture has none), real chromium. The panel's cells and
// tooltip are compared with the API's answers fetched here from the same server.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  PYTHON, REPO, STANDARD, getJSON, makeCaptures, openCapture, openViewer, saveScreenshot, tempDir,
} from "./harness.mjs";

const OBSERVE = "capture_tiny_observe.json";
// The viewer's tokenLabel (src/data/format.ts): whitespace made visible.
const label = (t) => t.replace(/\n/g, "⏎").replace(/ /g, "·") || "∅";

let dataDir, viewer, backend, page, errors;

function makeObserveCapture(dir) {
  const code = `
import sys
from spectra_vis import capture
from spectra_vis.testing.tiny_gguf import write_tiny_model
model = str(write_tiny_model(sys.argv[1] + "/tiny-observe.gguf"))
capture(model, ["Say hi"], preset="observe", max_tokens=3, out=sys.argv[1] + "/${OBSERVE}")
`;
  execFileSync(PYTHON, ["-c", code, dir], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
}

/** Screenshot of the panel with its tooltip (fixed to the viewport, it may reach below the panel). */
async function shootWithTooltip(panel, tip, name) {
  const [a, b] = [await panel.boundingBox(), await tip.boundingBox()];
  const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
  const clip = { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
  await saveScreenshot(name, (path) => page.screenshot({ path, clip }));
}

async function open(name) {
  return openCapture(page, backend.url, name);
}

before(async () => {
  dataDir = tempDir("spectra-e2e-lens-");
  makeCaptures(dataDir);
  makeObserveCapture(dataDir);
  viewer = await openViewer(dataDir);
  ({ backend, page, errors } = viewer);
});

after(async () => {
  await viewer?.close();
});

describe("logit lens", () => {
  let cid, grid;

  test("the grid shows the API's top-1 texts and first-final layers", async () => {
    cid = await open(STANDARD);
    grid = await getJSON(`${backend.url}/api/trials/0/lens?capture_id=${cid}`);
    const panel = page.locator(`[data-testid=logit-lens][data-capture-id="${cid}"][data-trial-id="0"]`);
    await panel.waitFor();
    assert.equal(await panel.locator(".logit-lens-cell").count(), grid.layers.length * grid.tokens.length);
    // A few cells: the first layer's first and last prompt positions, the last layer's last prompt
    // position (llama.cpp's own prediction), a generated token, and a cell without a row.
    const last = grid.layers.length - 1;
    const picks = [[0, 0], [0, grid.n_prompt - 1], [last, grid.n_prompt - 1], [0, grid.n_prompt + 1], [last, 0]];
    for (const [i, pos] of picks) {
      const want = grid.top_texts[i][pos];
      const cell = panel.locator(`.logit-lens-cell[data-layer="${grid.layers[i]}"][data-pos="${pos}"]`);
      assert.equal(await cell.getAttribute("data-text"), want ?? "", `layer ${grid.layers[i]} pos ${pos}`);
      assert.equal(await cell.textContent(), want === null ? "" : label(want), `layer ${grid.layers[i]} pos ${pos}`);
    }
    assert.equal(grid.top_texts[last][0], null); // the last layer has no row before the last prompt position
    const marks = await panel.locator(".logit-lens-final-mark").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-pos")), Number(e.getAttribute("data-layer"))]));
    const want = grid.first_final_layer.flatMap((layer, pos) => (layer === null ? [] : [[pos, layer]]));
    assert.ok(want.length > 0);
    assert.deepEqual(marks, want);
  });

  test("hovering a cell shows the API cell's top-5 and the token that came next", async () => {
    const pos = grid.n_prompt - 1;
    const layer = grid.layers[0];
    const api = await getJSON(`${backend.url}/api/trials/0/lens?capture_id=${cid}&layer=${layer}&token=${pos}&k=5`);
    await page.locator(`[data-testid=logit-lens] .logit-lens-cell[data-layer="${layer}"][data-pos="${pos}"]`).hover();
    const tip = page.locator(`[data-testid=logit-lens-tooltip][data-layer="${layer}"][data-pos="${pos}"][data-ready=true]`);
    await tip.waitFor();
    const texts = await tip.locator("[data-testid=logit-lens-top] li").evaluateAll((els) => els.map((e) => e.getAttribute("data-text")));
    assert.equal(texts.length, 5);
    assert.deepEqual(texts, api.top.map((t) => t.text));
    assert.equal(api.top[0].text, grid.top_texts[0][pos]);
    const next = await tip.locator("[data-testid=logit-lens-next]").textContent();
    assert.ok(next.includes(`“${label(api.next_text)}”`) && next.includes(`rank ${api.next_rank + 1}`), next);
    await shootWithTooltip(page.locator("[data-testid=view-logit-lens]"), tip, "logit-lens");
  });

  test("clicking a cell selects that layer's residual stream and that token in the other views", async () => {
    const cap = JSON.parse(readFileSync(join(dataDir, STANDARD), "utf8"));
    const layer = grid.layers[grid.layers.length - 1];
    const pos = grid.n_prompt - 2;
    const id = cap.tensors.find((t) => t.name === `l_out-${layer}`).id;
    await page.locator(`[data-testid=logit-lens] .logit-lens-cell[data-layer="${layer}"][data-pos="${pos}"]`).click();
    await page.locator(`[data-testid=tensor-detail][data-tensor-id="${id}"]`).waitFor();
    assert.equal(await page.locator("[data-testid=detail-name]").textContent(), `l_out-${layer}`);
    await page.locator(`.token.chosen[data-pos="${pos}"]`).waitFor();
    await page.locator(`[data-testid=logit-lens-selected-layer][data-layer="${layer}"]`).waitFor();
    await page.locator(`[data-testid=logit-lens-selected-token][data-pos="${pos}"]`).waitFor();
  });

  test("a capture without a lens shows the API's reason instead of the grid", async () => {
    const obs = await open(OBSERVE);
    const r = await fetch(`${backend.url}/api/trials/0/lens?capture_id=${obs}`);
    assert.equal(r.status, 404);
    const { error } = await r.json();
    const msg = page.locator("[data-testid=logit-lens-unavailable]");
    await msg.waitFor();
    assert.equal(await msg.textContent(), `No logit lens for this trial: ${error}`);
    assert.equal(await page.locator("[data-testid=logit-lens]").count(), 0);
    assert.deepEqual(errors, []);
  });
});
