// The Compare-view pictures of the docs, from captures of the real Gemma 3 270M (not tests: those
// captures take minutes to make; run it after the commands of the doc it illustrates):
//   node scripts/shoot-compare.mjs DATA_DIR CAPTURE.json NAME [STRENGTH]
// DATA_DIR holds CAPTURE.json (and its vectors file) and, in DATA_DIR/models, the models (for the KL).
// A pair made by `spectra-vis compare` opens compared as it is (docs/QUANT_LENS.md); for a sweep made
// by `spectra-vis steer try`, STRENGTH picks the steered trial and the projection chart is shown per
// token against layer at the last prompt token (docs/STEERING.md). Writes docs/screenshots/NAME.png.
import { openCapture, openViewer, postJSON, saveScreenshot } from "../e2e/harness.mjs";

const [dataDir, capture, name, strength] = process.argv.slice(2);
if (!dataDir || !capture || !name) {
  console.error("usage: node scripts/shoot-compare.mjs DATA_DIR CAPTURE.json NAME [STRENGTH]");
  process.exit(2);
}
const viewer = await openViewer(dataDir);
try {
  const { page, backend } = viewer;
  const cid = await openCapture(page, backend.url, capture);
  const panel = page.locator("[data-testid=compare-panel]");
  if (strength === undefined) {
    await panel.locator("[data-testid=compare-view]").waitFor({ timeout: 120000 });
  } else {
    const trials = (await postJSON(`${backend.url}/api/load`, { filepath: capture })).trial_list;
    const steered = trials.find((t) => t.sweep?.strength === Number(strength));
    if (!steered) throw new Error(`no trial of strength ${strength} in ${capture}`);
    await panel.locator(`[data-testid=compare-strength][data-trial="${steered.id}"]`).click();
    await panel.locator(`[data-testid=compare-view][data-b="${cid}:${steered.id}"]`).waitFor({ timeout: 120000 });
    const chart = panel.locator("[data-testid=projection]");
    await chart.waitFor({ timeout: 120000 });
    await chart.locator("[data-testid=projection-mode]").selectOption("token");
    const pos = trials.find((t) => t.id === steered.sweep.baseline).n_prompt - 1;
    await panel.locator("[data-testid=compare-scrub]").fill(String(pos));
    await panel.locator(`[data-testid=projection][data-mode=token][data-pos="${pos}"]`).waitFor();
  }
  await page.addStyleTag({ content: ".topbar { position: static !important; }" }); // a tall panel: no bar over it
  await saveScreenshot(name, (path) => panel.screenshot({ path }));
  console.log(`wrote docs/screenshots/${name}.png`);
} finally {
  await viewer.close();
}
