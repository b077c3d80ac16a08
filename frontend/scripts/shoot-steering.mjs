// The picture of docs/STEERING.md: a steering sweep in the viewer's Compare view, with the projection
// chart per token against layer. Not a test (it needs a sweep of the real Gemma 3 270M, which takes
// minutes to make); run it after the commands of docs/STEERING.md:
//   node scripts/shoot-steering.mjs DATA_DIR SWEEP.json STRENGTH [NAME]
// DATA_DIR holds SWEEP.json (and its vectors file) and, in DATA_DIR/models, the model (for the KL).
// Writes docs/screenshots/NAME.png (default steering-gemma).
import { openCapture, openViewer, postJSON, saveScreenshot } from "../e2e/harness.mjs";

const [dataDir, sweep, strength, name = "steering-gemma"] = process.argv.slice(2);
if (!dataDir || !sweep || strength === undefined) {
  console.error("usage: node scripts/shoot-steering.mjs DATA_DIR SWEEP.json STRENGTH [NAME]");
  process.exit(2);
}
const viewer = await openViewer(dataDir);
try {
  const { page, backend } = viewer;
  const cid = await openCapture(page, backend.url, sweep);
  const trials = (await postJSON(`${backend.url}/api/load`, { filepath: sweep })).trial_list;
  const steered = trials.find((t) => t.sweep?.strength === Number(strength));
  if (!steered) throw new Error(`no trial of strength ${strength} in ${sweep}`);
  const panel = page.locator("[data-testid=compare-panel]");
  await panel.locator(`[data-testid=compare-strength][data-trial="${steered.id}"]`).click();
  await panel.locator(`[data-testid=compare-view][data-b="${cid}:${steered.id}"]`).waitFor({ timeout: 120000 });
  const chart = panel.locator("[data-testid=projection]");
  await chart.waitFor({ timeout: 120000 });
  await chart.locator("[data-testid=projection-mode]").selectOption("token");
  const pos = trials.find((t) => t.id === steered.sweep.baseline).n_prompt - 1;
  await panel.locator("[data-testid=compare-scrub]").fill(String(pos));
  await panel.locator(`[data-testid=projection][data-mode=token][data-pos="${pos}"]`).waitFor();
  await saveScreenshot(name, (path) => panel.screenshot({ path }));
  console.log(`wrote docs/screenshots/${name}.png`);
} finally {
  await viewer.close();
}
