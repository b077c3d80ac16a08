// docs/TENSOR_GUIDE.md is rendered from src/data/explanations.json, the same text the viewer's info
// panel shows. `node scripts/guide.mjs` rewrites the doc; tests/guide.test.ts checks they agree.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const GUIDE_PATH = resolve(here, "..", "..", "docs", "TENSOR_GUIDE.md");
export const EXPLANATIONS_PATH = resolve(here, "..", "src", "data", "explanations.json");
const DEPTH_NAMES = ["0 layer outputs", "1 + attention and FFN", "2 + projections", "3 + norms", "4 everything"];

export function renderGuide(ex) {
  const out = ["# Tensor guide", "", "<!-- Generated from frontend/src/data/explanations.json by",
    "     `node frontend/scripts/guide.mjs`; the viewer's info panel shows the same text. -->", "",
    ex.intro, "", "## Where in the model (layer rows of the grid)", ""];
  out.push(`- **-1**: ${ex.layers["-1"]}`, `- **0..N-1**: ${ex.layers.block}`,
    `- **998**: ${ex.layers["998"]}`, `- **999**: ${ex.layers["999"]}`, "", "## Categories (cell colours)", "");
  for (const [name, text] of Object.entries(ex.categories)) out.push(`- **${name}**: ${text}`);
  out.push("", "## Metrics", "");
  for (const [name, text] of Object.entries(ex.metrics)) out.push(`- **${name}**: ${text}`);
  out.push("", "## Depth levels", "");
  ex.depths.forEach((text, i) => out.push(`- **${DEPTH_NAMES[i]}**: ${text}`));
  out.push("", "## Component types", "");
  const byCat = {};
  for (const [type, t] of Object.entries(ex.types)) (byCat[t.category] ??= []).push([type, t]);
  for (const cat of Object.keys(ex.categories)) {
    if (!byCat[cat]) continue;
    out.push(`### ${cat}`, "");
    for (const [type, t] of byCat[cat]) out.push(`- **\`${type}\`**, ${t.title}: ${t.text}`);
    out.push("");
  }
  return out.join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = renderGuide(JSON.parse(readFileSync(EXPLANATIONS_PATH, "utf8")));
  writeFileSync(GUIDE_PATH + ".tmp", text);
  renameSync(GUIDE_PATH + ".tmp", GUIDE_PATH);
  console.log(`wrote ${join("docs", "TENSOR_GUIDE.md")}`);
}
