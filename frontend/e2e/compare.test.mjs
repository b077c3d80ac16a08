// Browser test of the compare panel: real backend, a real pair capture (`spectra-vis compare` of a
// tiny f32 llama GGUF and its Q4_0 quantization) and a second capture of the Q4_0 model alone, real
// chromium. The panel is checked against the API's answers fetched here from the same server: the
// pair, then a comparison across the two captures (its next-token block computed by the server in the
// background: the panel shows its progress, then the KL bars).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PYTHON, REPO, getJSON, openCapture, openViewer, postJSON, saveScreenshot, tempDir } from "./harness.mjs";

const PAIR = "pair.json";
const SOLO = "solo-q4.json";
let dataDir, viewer, backend, page, errors;

function makePair(dir, out) {
  const run = (args) => execFileSync(PYTHON, args, { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  const f32 = join(dir, "f32.gguf");
  run(["-c", `from spectra_vis.testing.tiny_gguf import write_tiny_model; write_tiny_model(${JSON.stringify(f32)}, arch='llama', n_layer=4, n_embd=128, n_ff=256, seed=3)`]);
  run(["-m", "spectra_vis.cli", "quantize", f32, "--type", "Q4_0", "--out-dir", dir]);
  run(["-m", "spectra_vis.cli", "compare", "--models", f32, join(dir, "f32-Q4_0.gguf"), "--prompt", "The capital of France is",
    "--max-tokens", "6", "--n-ctx", "128", "--out", join(out, PAIR)]);
  // The Q4_0 model generating on its own: another capture, compared across files.
  run(["-c", `from spectra_vis import capture; capture(${JSON.stringify(join(dir, "f32-Q4_0.gguf"))}, ["The capital of France is"], `
    + `preset="standard", max_tokens=6, n_ctx=128, out=${JSON.stringify(join(out, SOLO))})`]);
  // Both models where the server reads heads: the cross-file comparison's KL is computed in the background.
  mkdirSync(join(out, "models"));
  for (const name of ["f32.gguf", "f32-Q4_0.gguf"]) copyFileSync(join(dir, name), join(out, "models", name));
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
    // The overview marks the pair; the view opened a = its reference, b = its candidate.
    const loaded = await postJSON(`${backend.url}/api/load`, { filepath: PAIR });
    assert.equal(loaded.capture_id, cid);
    assert.deepEqual(loaded.trial_list.map((t) => t.pair), [
      { role: "reference", reference: null, candidate: 1, forced: false },
      { role: "candidate", reference: 0, candidate: null, forced: true },
    ]);
    // The pair opens in this view: marked, and brought into sight.
    assert.equal(await panel.getAttribute("data-kind"), "pair");
    await page.waitForFunction(() => {
      const r = document.querySelector("[data-testid=compare-panel]").getBoundingClientRect();
      return r.top < window.innerHeight / 2 && r.bottom > 0;
    }, null, { timeout: 5000 });
    assert.equal(await panel.locator("[data-testid=compare-a-capture]").inputValue(), PAIR);
    assert.equal(await panel.locator("[data-testid=compare-b-capture]").inputValue(), PAIR);
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
    const listed = await panel.locator("[data-testid=compare-change]").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-pos"))));
    assert.deepEqual(listed, want);

    assert.ok(cmp.drift && cmp.drift.length === cmp.layers.length);
    const circles = await panel.locator("[data-testid=compare-drift] circle").evaluateAll((els) =>
      els.map((e) => [Number(e.getAttribute("data-layer")), e.getAttribute("data-value")]));
    assert.deepEqual(circles, cmp.layers.map((l, i) => [l, cmp.drift[i].toFixed(6)]));

    const heat = panel.locator("[data-testid=compare-heat]");
    assert.equal(await heat.getAttribute("data-rows"), String(cmp.layers.length));
    assert.equal(await heat.getAttribute("data-cols"), String(cmp.n_shared));
  });

  test("hovering the tokens heat map shows the cell's value; the KL bars match the API", async () => {
    const panel = page.locator("[data-testid=compare-panel]");
    const heat = panel.locator("[data-testid=compare-heat]");
    const box = await heat.boundingBox();
    const cols = cmp.n_shared, rows = cmp.layers.length;
    // The last layer's last cell with a value.
    const r = rows - 1;
    const c = cmp.resid_l2_change[r].findLastIndex((v) => v !== null);
    assert.ok(c >= 0);
    await heat.hover({ position: { x: (c + 0.5) * (box.width / cols), y: (r + 0.5) * (box.height / rows) } });
    const tip = panel.locator(`[data-testid=compare-heat-tip][data-row="layer ${cmp.layers[r]}"][data-col="${c}"]`);
    await tip.waitFor();
    assert.ok((await tip.textContent()).endsWith(cmp.resid_l2_change[r][c].toFixed(6)));
    assert.equal(Number(await tip.getAttribute("data-value")), cmp.resid_l2_change[r][c]);

    const kl = await panel.locator("[data-testid=compare-strip] .compare-kl").evaluateAll((els) => els.map((e) => e.getAttribute("data-kl")));
    assert.deepEqual(kl, cmp.next_token.kl.slice(0, cmp.n_shared).map((v) => (v === null ? "" : String(v))));
    // The widest bar is at the largest KL.
    const widths = await panel.locator("[data-testid=compare-strip] .compare-kl").evaluateAll((els) => els.map((e) => e.style.width));
    const maxAt = cmp.next_token.kl.indexOf(Math.max(...cmp.next_token.kl.filter((v) => v !== null)));
    assert.equal(widths[maxAt], "100%");
    const title = await panel.locator(`[data-testid=compare-strip] span[data-pos="${maxAt}"]`).getAttribute("title");
    assert.ok(title.includes(`KL ${cmp.next_token.kl[maxAt].toFixed(5)}`), title);
  });

  test("the types heat map shows each statistic's relative change per layer and type, hovered values from the API", async () => {
    const panel = page.locator("[data-testid=compare-panel]");
    for (const stat of ["l2", "mean"]) {
      await panel.locator("[data-testid=compare-stat]").selectOption(stat);
      await panel.locator(`[data-testid=compare-types][data-stat="${stat}"]`).waitFor();
      // The columns: the types with a value in some layer, in the API's order.
      const rowsApi = cmp.stats[stat];
      const keep = cmp.types.flatMap((t, j) => (rowsApi.some((row) => row[j] !== null) ? [j] : []));
      assert.ok(keep.length > 0, `the pair has ${stat} changes`);
      const heat = panel.locator("[data-testid=compare-types-heat]");
      assert.equal(await heat.getAttribute("data-rows"), String(cmp.layers.length));
      assert.equal(await heat.getAttribute("data-cols"), String(keep.length));
      assert.deepEqual(await panel.locator("[data-testid=compare-types-heat-cols] > div").allTextContents(), keep.map((j) => cmp.types[j]));
      const box = await heat.boundingBox();
      const cw = box.width / keep.length, rh = box.height / cmp.layers.length;
      // Every cell with a value: its tooltip shows the API's number.
      let seen = 0;
      for (let r = 0; r < cmp.layers.length; r++)
        for (let k = 0; k < keep.length; k++) {
          const v = rowsApi[r][keep[k]];
          if (v === null || (seen >= 6 && k !== keep.length - 1)) continue;
          await heat.hover({ position: { x: (k + 0.5) * cw, y: (r + 0.5) * rh } });
          const tip = panel.locator(`[data-testid=compare-types-heat-tip][data-row="layer ${cmp.layers[r]}"][data-col="${k}"]`);
          await tip.waitFor();
          assert.equal(Number(await tip.getAttribute("data-value")), v);
          const text = await tip.textContent();
          assert.ok(text.includes(`type ${cmp.types[keep[k]]}`) && text.endsWith(v.toFixed(6)), text);
          seen++;
        }
      assert.ok(seen > 0);
    }
  });

  test("the scrubber shows both runs at a token and moves the viewer's cursor, which moves it back", async () => {
    const panel = page.locator("[data-testid=compare-panel]");
    const pos = panel.locator("[data-testid=compare-pos]");
    const before = await pos.textContent();
    const p0 = Number(await pos.getAttribute("data-pos"));
    const nt = cmp.next_token;
    // A scored position other than the current one where the two top-1 tokens differ, else the last scored.
    const differ = nt.kl.findIndex((v, i) => v !== null && i !== p0 && nt.top1_a[i] !== nt.top1_b[i]);
    const target = differ >= 0 ? differ : nt.kl.findLastIndex((v, i) => v !== null && i !== p0);
    await panel.locator("[data-testid=compare-scrub]").fill(String(target));
    await panel.locator(`[data-testid=compare-pos][data-pos="${target}"]`).waitFor();
    const after = await pos.textContent();
    assert.notEqual(after, before);
    assert.ok(after.includes(`#${nt.top1_a[target]} (p of b’s next ${nt.p_a_of_b[target].toFixed(4)})`), after);
    assert.ok(after.includes(`#${nt.top1_b[target]} (p of a’s next ${nt.p_b_of_a[target].toFixed(4)})`), after);
    assert.ok(after.endsWith(`KL ${nt.kl[target].toFixed(5)}`), after);
    assert.equal(await panel.locator("[data-testid=compare-strip] span.current").getAttribute("data-pos"), String(target));
    // The viewer shows trial 0 (a): its timeline cursor is on the same token, at that token's step.
    const trial = await getJSON(`${backend.url}/api/trials/0?capture_id=${cid}`);
    const step = trial.tokens.find((t) => t.pos === target).step ?? trial.steps.length - 1;
    const chosen = page.locator(`[data-testid=view-timeline] [data-testid=token-strip] .token.chosen[data-pos="${target}"]`);
    await chosen.waitFor();
    assert.equal(await page.locator("[data-testid=view-timeline] [data-testid=step-slider]").inputValue(), String(step));
    // And back: choosing a token in the timeline moves the scrubber.
    const other = nt.kl.findIndex((v, i) => v !== null && i !== target);
    await page.locator(`[data-testid=view-timeline] [data-testid=token-strip] .token[data-pos="${other}"]`).click();
    await panel.locator(`[data-testid=compare-pos][data-pos="${other}"]`).waitFor();
    assert.ok((await pos.textContent()).endsWith(`KL ${nt.kl[other].toFixed(5)}`));
    await panel.locator("[data-testid=compare-scrub]").fill(String(target));
    await panel.locator(`[data-testid=compare-pos][data-pos="${target}"]`).waitFor();
    await saveScreenshot("compare", (path) => panel.screenshot({ path }));
    assert.deepEqual(errors, []);
  });

  test("a trial of another capture file, loaded on demand, compares against the API's answer", async () => {
    const panel = page.locator("[data-testid=compare-panel]");
    // Every text the progress indicator shows, however briefly (the tiny model's pass is quick).
    await page.evaluate(() => {
      window.__pending = [];
      new MutationObserver(() => {
        const el = document.querySelector("[data-testid=compare-pending]");
        if (el) window.__pending.push([el.textContent, document.querySelector("[data-testid=compare-pos]")?.textContent ?? ""]);
      }).observe(document.body, { childList: true, subtree: true, characterData: true });
    });
    await panel.locator("[data-testid=compare-b-capture]").selectOption(SOLO);
    await panel.locator("[data-testid=compare-b]:not([disabled])").waitFor();
    assert.equal(await panel.locator("[data-testid=compare-b]").inputValue(), "0");
    const caps = await getJSON(`${backend.url}/api/captures`);
    const solo = caps.captures.find((c) => c.path === SOLO);
    assert.ok(solo, "choosing the file loaded it on the server");
    const view = panel.locator(`[data-testid=compare-view][data-a="${cid}:0"][data-b="${solo.capture_id}:0"]`);
    await view.waitFor();
    const x = await getJSON(`${backend.url}/api/compare?a=${cid}:0&b=${solo.capture_id}:0`);
    const summary = await panel.locator("[data-testid=compare-summary]").textContent();
    assert.ok(summary.includes(`${x.n_shared} shared tokens`), summary);
    if (x.diverge_at !== null) assert.ok(summary.includes(`diverges at token ${x.diverge_at}`), summary);
    assert.equal(await panel.locator("[data-testid=compare-strip] > span").count(), x.n_shared);
    const heat = panel.locator("[data-testid=compare-heat]");
    assert.equal(await heat.getAttribute("data-cols"), String(x.n_shared));
    const r = 0, c = x.resid_l2_change[0].findIndex((v) => v !== null);
    assert.ok(c >= 0);
    const box = await heat.boundingBox();
    await heat.hover({ position: { x: (c + 0.5) * (box.width / x.n_shared), y: (r + 0.5) * (box.height / x.layers.length) } });
    const tip = panel.locator(`[data-testid=compare-heat-tip][data-row="layer ${x.layers[r]}"][data-col="${c}"]`);
    await tip.waitFor();
    assert.equal(Number(await tip.getAttribute("data-value")), x.resid_l2_change[r][c]);
    // The responses side by side: each trial's own.
    const soloTrials = (await postJSON(`${backend.url}/api/load`, { filepath: SOLO })).trial_list;
    assert.equal(await panel.locator("[data-testid=compare-response-b]").textContent(), soloTrials[0].response);

    // The next-token block: the server's first answer had none (its pass runs in the background), the
    // panel showed its progress where the KL bars and the scrubber's values go, then filled them.
    let final = x;
    for (let i = 0; final.next_token_progress !== null; i++) {
      assert.ok(i < 600, "the next-token pass never finished");
      await new Promise((r) => setTimeout(r, 100));
      final = await getJSON(`${backend.url}/api/compare?a=${cid}:0&b=${solo.capture_id}:0`);
    }
    assert.ok(final.next_token, JSON.stringify(final.notices));
    const seen = await page.evaluate(() => window.__pending);
    assert.ok(seen.length > 0, "the progress indicator showed");
    for (const [line, scrub] of seen) {
      assert.match(line, /^\s*next-token KL over the vocabulary: \d{1,3}%$/);
      assert.equal(scrub, line.trim());
    }
    const want = final.next_token.kl.slice(0, final.n_shared).map((v) => (v === null ? "" : String(v)));
    await page.waitForFunction((w) => {
      const got = [...document.querySelectorAll("[data-testid=compare-strip] .compare-kl")].map((e) => e.getAttribute("data-kl"));
      return JSON.stringify(got) === JSON.stringify(w);
    }, want, { timeout: 10000 });
    assert.ok(want.some((v) => v !== ""), "some token has a KL");
    assert.equal(await panel.locator("[data-testid=compare-pending]").count(), 0);
    const widths = await panel.locator("[data-testid=compare-strip] .compare-kl").evaluateAll((els) => els.map((e) => e.style.width));
    const kls = final.next_token.kl;
    assert.equal(widths[kls.indexOf(Math.max(...kls.filter((v) => v !== null)))], "100%");
    const summaryDone = await panel.locator("[data-testid=compare-summary]").textContent();
    assert.ok(summaryDone.includes(`${(final.summary.top1_agreement * 100).toFixed(1)}%`), summaryDone);
    const at = Number(await panel.locator("[data-testid=compare-pos]").getAttribute("data-pos"));
    const posText = await panel.locator("[data-testid=compare-pos]").textContent();
    assert.ok(posText.endsWith(`KL ${kls[at] === null ? "—" : kls[at].toFixed(5)}`), posText);
    assert.deepEqual(errors, []);
  });
});

async function open() {
  return openCapture(page, backend.url, PAIR);
}
