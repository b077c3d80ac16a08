// The steering projection chart's data (data/projection.ts): lines per layer and per token, the
// shared layers, the layout (one y range with 0, segments broken at missing values) and labels.
import { describe, expect, it } from "vitest";
import { alongLayers, alongTokens, layoutLines, lineLabel, projectionLayers } from "../src/data/projection";

const p = {
  layers: [1, 2, 3],
  values: [
    [-1, -2, null, -4],
    [-10, -20, -30, null],
    [null, null, 5, 6],
  ],
};

describe("lines", () => {
  it("per layer: the layer's row against token position; nothing for a layer without a direction", () => {
    expect(alongTokens(p, 2)).toEqual([{ x: 0, y: -10 }, { x: 1, y: -20 }, { x: 2, y: -30 }, { x: 3, y: null }]);
    expect(alongTokens(p, 0)).toEqual([]);
    expect(alongTokens({ layers: [1], values: [[Number.NaN, 1]] }, 1)).toEqual([{ x: 0, y: null }, { x: 1, y: 1 }]);
  });

  it("per token: the token's column against layer, null where it has no row", () => {
    expect(alongLayers(p, 2)).toEqual([{ x: 1, y: null }, { x: 2, y: -30 }, { x: 3, y: 5 }]);
    expect(alongLayers(p, 9)).toEqual([{ x: 1, y: null }, { x: 2, y: null }, { x: 3, y: null }]);
  });

  it("the layers of both trials, once each, ascending", () => {
    expect(projectionLayers({ layers: [3, 1] }, null, { layers: [2, 3] })).toEqual([1, 2, 3]);
    expect(projectionLayers(null)).toEqual([]);
  });
});

describe("layout", () => {
  const box = { width: 110, height: 60, pad: 5 };

  it("shares one x range and one y range that holds 0 over every line", () => {
    const l = layoutLines([alongTokens(p, 1), alongTokens(p, 3)], box);
    expect([l.xMin, l.xMax, l.yMin, l.yMax]).toEqual([0, 3, -4, 6]);
    // y = 6 at the top (pad), y = -4 at the bottom (height - pad), 0 at 3/5 of the way down.
    expect(l.zeroY).toBeCloseTo(5 + (6 / 10) * 50);
    const dotsB = l.lines[1].dots;
    expect(dotsB.map((d) => [d.at, d.value])).toEqual([[2, 5], [3, 6]]);
    expect(dotsB[1]).toMatchObject({ x: 105, y: 5 });
    expect(dotsB[0].x).toBeCloseTo(5 + (2 / 3) * 100);
  });

  it("breaks a line where a value is missing", () => {
    const l = layoutLines([alongTokens(p, 1)], box);
    expect(l.lines[0].segments.length).toBe(2);
    expect(l.lines[0].segments[0].split(" ").length).toBe(2);
    expect(l.lines[0].segments[1].split(" ").length).toBe(1);
    expect(l.lines[0].dots.length).toBe(3);
  });

  it("keeps a range around 0 when every value is 0 or missing, and centres a single x", () => {
    const l = layoutLines([[{ x: 4, y: 0 }], [{ x: 4, y: null }]], box);
    expect([l.yMin, l.yMax]).toEqual([-1, 1]);
    expect(l.zeroY).toBeCloseTo(30);
    expect(l.lines[0].dots[0].x).toBeCloseTo(55);
    expect(layoutLines([], box)).toMatchObject({ xMin: 0, xMax: 1, yMin: -1, yMax: 1, lines: [] });
  });
});

describe("labels", () => {
  it("name the side, trial and strength", () => {
    expect(lineLabel("a", { trial: 1, strength: 0 })).toBe("a · #1 · strength 0");
    expect(lineLabel("b", { trial: 2, strength: 4 })).toBe("b · #2 · strength +4");
    expect(lineLabel("b", { trial: 0, strength: -0.5 })).toBe("b · #0 · strength -0.5");
    expect(lineLabel("a", { trial: 3, strength: null })).toBe("a · #3 · no control");
  });
});
