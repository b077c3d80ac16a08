// Browser benchmark of long captures (issue 14), run by `python benchmarks/bench_backend.py --viewer`:
// for each capture file given, the time from choosing it in the captures panel to the tensor grid
// and the layers × tokens heat map being drawn, then frame times while the heat map and the token
// strip scroll (one scroll step per animation frame). Prints one markdown table row per capture.
// Usage: node e2e/bench_long.mjs DATA_DIR NAME.json [NAME.json ...]
import { getJSON, openViewer } from "./harness.mjs";

const [dataDir, ...names] = process.argv.slice(2);
const viewer = await openViewer(dataDir);
const { page, backend } = viewer;

async function frames(selector, axis, steps) {
  return page.evaluate(([sel, ax, n]) => new Promise((resolve) => {
    const el = document.querySelector(sel);
    if (!el) return resolve(null);
    const times = [];
    let last = performance.now();
    let i = 0;
    const tick = (t) => {
      times.push(t - last);
      last = t;
      if (ax === "x") el.scrollLeft += 120; else el.scrollTop += 60;
      if (++i < n) requestAnimationFrame(tick); else resolve(times.slice(1));
    };
    requestAnimationFrame(tick);
  }), [selector, axis, steps]);
}

const stat = (xs) => {
  if (!xs || !xs.length) return "-";
  const s = [...xs].sort((a, b) => a - b);
  return `${s[Math.floor(s.length / 2)].toFixed(1)} / ${s[Math.floor(s.length * 0.95)].toFixed(1)} / ${s[s.length - 1].toFixed(1)}`;
};

for (const name of names) {
  const t0 = performance.now();
  await page.locator(`.files li[data-path="${name}"] button`).click();
  await page.locator(`.files li.current[data-path="${name}"]`).waitFor({ timeout: 600000 });
  const caps = await getJSON(`${backend.url}/api/captures`);
  const cid = caps.current;
  await page.locator(`[data-testid=tensor-grid][data-capture-id="${cid}"]`).waitFor({ timeout: 600000 });
  const grid = performance.now() - t0;
  await page.locator(`[data-testid=heatmap-tokens][data-capture-id="${cid}"]`).waitFor({ timeout: 600000 });
  const heat = performance.now() - t0;
  await page.locator("[data-testid=heatmap-tokens]").scrollIntoViewIfNeeded();
  const heatFrames = await frames("[data-testid=heatmap-tokens] .heatmap-scroll", "x", 120);
  await page.locator("[data-testid=view-timeline] [data-testid=token-strip]").scrollIntoViewIfNeeded();
  const stripFrames = await frames("[data-testid=view-timeline] [data-testid=token-strip]", "y", 120);
  const render = await page.getAttribute("[data-testid=heatmap-tokens]", "data-render") ?? "svg";
  const virtual = await page.getAttribute("[data-testid=view-timeline] [data-testid=token-strip]", "data-virtual") ?? "no";
  const elements = await page.evaluate(() => ["view-heatmap", "view-timeline", "view-logit-lens"]
    .map((id) => document.getElementById(id)?.querySelectorAll("*").length ?? 0).join(" / "));
  console.log(`| ${name} | ${grid.toFixed(0)} | ${heat.toFixed(0)} | ${render} | ${stat(heatFrames)} | ${virtual === "true" ? "virtual" : "all"} | ${stat(stripFrames)} | ${elements} |`);
}
await viewer.close();
