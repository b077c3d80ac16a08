// The logit-lens data (data/logitLens.ts): the grid model of an API payload, a cell's colour from
// its probability, and the first-final-layer line's positions.
import { describe, expect, it } from "vitest";
import type { LensGridOut } from "../src/api/client";
import { rampColor } from "../src/data/colors";
import {
  LENS_LAYOUT, NO_ROW_COLOR, cellX, cellY, firstFinalLine, fitText, gridSize, lensColor, lensDrawsToCanvas, lensGeometry, lensModel,
  textColorOn,
} from "../src/data/logitLens";
import { cellAtPoint, visibleCols } from "../src/data/heatGeometry";

// Two layers, four positions; as the API sends it: the last layer has no rows for the prompt
// positions before the last, and the last (sampled) token has none at all.
const payload: LensGridOut = {
  capture_id: "c1", trial_id: 0, layers: [0, 1], tokens: ["<s>", "Hi", " there", "!"], n_prompt: 3,
  top_ids: [[5, 6, 7, null], [null, null, 7, null]],
  top_texts: [[" a", "b", " there", null], [null, null, " there", null]],
  top_p: [[0.1, 0.5, 0.25, null], [null, null, 0.9, null]],
  entropy: [[3, 2, 1, null], [null, null, 0.5, null]],
  next_rank: [[4, 0, 2, null], [null, null, 0, null]],
  first_final_layer: [null, null, 0, null],
};
const ramp = ["#000000", "#ffffff"];

describe("lensModel", () => {
  it("builds rows in the API's layer order with every cell's top-1, probability and next rank", () => {
    const m = lensModel(payload);
    expect(m.layers).toEqual([0, 1]);
    expect(m.tokens).toHaveLength(4);
    expect(m.nPrompt).toBe(3);
    expect(m.rows[0][1]).toEqual({ layer: 0, pos: 1, text: "b", p: 0.5, nextRank: 0 });
    expect(m.rows[1][2]).toEqual({ layer: 1, pos: 2, text: " there", p: 0.9, nextRank: 0 });
    expect(m.rows[1][0]).toEqual({ layer: 1, pos: 0, text: null, p: null, nextRank: null });
    expect(m.rows[0][3].text).toBeNull();
    expect(m.firstFinal).toEqual([null, null, 0, null]);
  });
  it("a short array becomes nulls, never undefined", () => {
    const m = lensModel({ ...payload, top_texts: [[" a"], []], top_p: [[0.1], []], next_rank: [[1], []], first_final_layer: [] });
    expect(m.rows[0][0].text).toBe(" a");
    expect(m.rows[0][2]).toEqual({ layer: 0, pos: 2, text: null, p: null, nextRank: null });
    expect(m.firstFinal).toEqual([null, null, null, null]);
  });
});

describe("lensColor", () => {
  it("places the probability on the ramp absolutely (0 and 1 at its ends), grey without one", () => {
    expect(lensColor(0, ramp)).toBe("#000000");
    expect(lensColor(1, ramp)).toBe("#ffffff");
    expect(lensColor(0.5, ramp)).toBe(rampColor(ramp, 0.5));
    expect(lensColor(1.2, ramp)).toBe("#ffffff");
    expect(lensColor(null, ramp)).toBe(NO_ROW_COLOR);
    expect(lensColor(Number.NaN, ramp)).toBe(NO_ROW_COLOR);
  });
  it("text is dark on light fills, light on dark ones", () => {
    expect(textColorOn("#ffffff")).not.toBe(textColorOn("#000000"));
    expect(textColorOn("#f0f921")).toBe(textColorOn("#ffffff"));
    expect(textColorOn("#0d0887")).toBe(textColorOn("#000000"));
  });
});

describe("firstFinalLine", () => {
  const { cellW, cellH, labelW, headH } = LENS_LAYOUT;
  it("marks each position's first final layer on the top edge of that layer's cell", () => {
    const m = lensModel({ ...payload, first_final_layer: [1, 0, 0, null] });
    const { marks, d } = firstFinalLine(m);
    expect(marks).toEqual([
      { pos: 0, layer: 1, x1: labelW, x2: labelW + cellW, y: headH + cellH },
      { pos: 1, layer: 0, x1: labelW + cellW, x2: labelW + 2 * cellW, y: headH },
      { pos: 2, layer: 0, x1: labelW + 2 * cellW, x2: labelW + 3 * cellW, y: headH },
    ]);
    expect(marks[1].x1).toBe(cellX(1));
    expect(marks[0].y).toBe(cellY(1));
    // Neighbours join with a vertical step; the path ends where the marks do.
    expect(d).toBe(`M${labelW} ${headH + cellH}H${labelW + cellW}V${headH}H${labelW + 2 * cellW}V${headH}H${labelW + 3 * cellW}`);
  });
  it("starts a new piece after a position without one, and leaves out a layer not in the grid", () => {
    const m = lensModel({ ...payload, first_final_layer: [0, null, 1, 7] });
    const { marks, d } = firstFinalLine(m);
    expect(marks.map((k) => k.pos)).toEqual([0, 2]);
    expect(d.match(/M/g)).toHaveLength(2);
  });
  it("the grid is as large as its cells", () => {
    expect(gridSize(lensModel(payload))).toEqual({ width: labelW + 4 * cellW, height: headH + 2 * cellH });
  });
});

describe("the canvas grid of a long trial", () => {
  const long = (layers: number, tokens: number) => lensModel({
    ...payload, layers: Array.from({ length: layers }, (_, i) => i), tokens: Array.from({ length: tokens }, (_, i) => `t${i}`),
    top_ids: [], top_texts: [], top_p: [], entropy: [], next_rank: [], first_final_layer: [],
  });

  it("is drawn to a canvas past the heat map's threshold, as elements below it", () => {
    expect(lensDrawsToCanvas(lensModel(payload))).toBe(false);
    expect(lensDrawsToCanvas(long(36, 4000))).toBe(true);
    expect(lensDrawsToCanvas(long(2, 400))).toBe(true); // more columns than COLS_CANVAS
  });

  it("shares the element grid's pixel layout: the cell under a point is the one cellX/cellY place there", () => {
    const m = long(5, 1000);
    const g = lensGeometry(m);
    expect([g.rows, g.cols]).toEqual([5, 1000]);
    for (const [r, c] of [[0, 0], [4, 999], [2, 517]]) {
      expect(cellAtPoint(g, cellX(c) + LENS_LAYOUT.cellW / 2, cellY(r) + LENS_LAYOUT.cellH / 2)).toEqual({ r, c });
    }
    expect(cellAtPoint(g, cellX(1000) + 1, cellY(0) + 1)).toBeNull();
    // A 900-pixel viewport scrolled to column 500 draws some twenty columns, 500 among them.
    const [c0, c1] = visibleCols(g, cellX(500) - LENS_LAYOUT.labelW, 900);
    expect(c0).toBeLessThanOrEqual(500);
    expect(c1).toBeGreaterThan(500);
    expect(c1 - c0).toBeLessThanOrEqual(Math.ceil(900 / LENS_LAYOUT.cellW) + 2);
  });

  it("cuts a token's text to the cell's width with an ellipsis", () => {
    expect(fitText("abc", 50)).toBe("abc");
    const cut = fitText("a_very_long_token", 50);
    expect(cut.endsWith("…")).toBe(true);
    expect(cut.length).toBe(Math.floor(50 / 6.7));
    expect("a_very_long_token".startsWith(cut.slice(0, -1))).toBe(true);
    expect(fitText("abc", 10)).toBe("");
  });
});
