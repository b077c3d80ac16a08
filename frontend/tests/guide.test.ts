// The info panel and docs/TENSOR_GUIDE.md carry the same explanations, and every tensor type the
// library knows (spectra_vis/record/naming.py) has one.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { GUIDE_PATH, renderGuide } from "../scripts/guide.mjs";
import { explainType, explanations } from "../src/data/explain";

const guide = readFileSync(GUIDE_PATH, "utf8");

describe("tensor guide", () => {
  it("docs/TENSOR_GUIDE.md is the rendering of explanations.json (run node scripts/guide.mjs)", () => {
    expect(guide).toBe(renderGuide(explanations));
  });

  it("every type the UI explains appears in the guide with the same text", () => {
    for (const [type, e] of Object.entries(explanations.types)) {
      expect(guide).toContain(`\`${type}\`**, ${e.title}: ${e.text}`);
    }
  });

  it("every tensor type of spectra_vis/record/naming.py is explained", () => {
    const naming = readFileSync(resolve(__dirname, "../../spectra_vis/record/naming.py"), "utf8");
    const table = naming.slice(naming.indexOf("TENSOR_TYPES"), naming.indexOf("WEIGHT_TYPES"));
    const types = [...table.matchAll(/^\s+"([A-Za-z_]+)": \("(\w+)"/gm)].map((m) => [m[1], m[2]]);
    expect(types.length).toBeGreaterThan(30);
    for (const [type, category] of types) {
      expect(explanations.types[type], type).toBeDefined();
      expect(explanations.types[type].category, type).toBe(category);
    }
  });

  it("derived types (Qcur.rope) are explained by their base type", () => {
    const e = explainType("Qcur.rope");
    expect(e.base).toBe("Qcur");
    expect(e.derived).toBe("rope");
    expect(e.info?.title).toBe("Queries");
    expect(explainType("nonsense").info).toBeNull();
  });
});
