// Long trials: the heat map's canvas geometry (data/heatGeometry.ts) and the timeline's packed rows
// (data/tokens.ts packRows), checked against brute-force answers.
import { describe, expect, it } from "vitest";
import { cellAtPoint, drawsToCanvas, scrollToCol, visibleCols, type HeatGeometry } from "../src/data/heatGeometry";
import { packRows, tokenWidth } from "../src/data/tokens";

const g: HeatGeometry = { labelW: 44, headH: 70, cellW: 10, cellH: 16, rows: 32, cols: 4000 };

describe("heat map geometry", () => {
  it("finds the cell under every pixel of a few cells, and nothing outside", () => {
    for (const [r, c] of [[0, 0], [5, 17], [31, 3999]]) {
      for (const [dx, dy] of [[0, 0], [9.9, 15.9], [5, 8]]) {
        expect(cellAtPoint(g, g.labelW + c * g.cellW + dx, g.headH + r * g.cellH + dy)).toEqual({ r, c });
      }
    }
    expect(cellAtPoint(g, g.labelW - 1, 100)).toBeNull();
    expect(cellAtPoint(g, 100, g.headH - 1)).toBeNull();
    expect(cellAtPoint(g, g.labelW + 4000 * g.cellW, 100)).toBeNull();
    expect(cellAtPoint(g, 100, g.headH + 32 * g.cellH)).toBeNull();
  });

  it("draws every column a viewport shows, at every scroll position", () => {
    const width = 900;
    for (const scroll of [0, 1, 333, 12345, g.labelW + g.cols * g.cellW - width]) {
      const [a, b] = visibleCols(g, scroll, width);
      for (let c = 0; c < g.cols; c++) {
        const x0 = g.labelW + c * g.cellW - scroll;
        const seen = x0 + g.cellW > g.labelW && x0 < width;
        if (seen) expect(c >= a && c < b).toBe(true);
      }
      expect(b - a).toBeLessThan(width / g.cellW + 4);
    }
  });

  it("scrolls a column into view only when it is out of view", () => {
    expect(scrollToCol(g, 3, 0, 900)).toBe(0);
    const left = scrollToCol(g, 3000, 0, 900);
    const x0 = g.labelW + 3000 * g.cellW - left;
    expect(x0).toBeGreaterThanOrEqual(g.labelW);
    expect(x0 + g.cellW).toBeLessThanOrEqual(900);
  });

  it("uses a canvas for thousands of cells only", () => {
    expect(drawsToCanvas(8, 12)).toBe(false);
    expect(drawsToCanvas(32, 4000)).toBe(true);
    expect(drawsToCanvas(2, 400)).toBe(true);
  });
});

describe("packed token rows", () => {
  it("keeps every token once, in order, each row within the width", () => {
    const labels = Array.from({ length: 4000 }, (_, i) => "x".repeat(1 + ((i * 7) % 13)));
    const widths = labels.map(tokenWidth);
    const rows = packRows(widths, 600, 3);
    expect(rows.flat()).toEqual(labels.map((_, i) => i));
    for (const row of rows) {
      const used = row.reduce((s, i) => s + widths[i], 0) + 3 * (row.length - 1);
      expect(row.length === 1 || used <= 600).toBe(true);
    }
    // Greedy: the next row's first token would not have fitted on the row before.
    for (let i = 1; i < rows.length; i++) {
      const prev = rows[i - 1];
      const used = prev.reduce((s, k) => s + widths[k], 0) + 3 * (prev.length - 1);
      expect(used + 3 + widths[rows[i][0]]).toBeGreaterThan(600);
    }
  });

  it("gives a token wider than the strip a row of its own", () => {
    expect(packRows([50, 900, 50], 300, 3)).toEqual([[0], [1], [2]]);
  });
});
