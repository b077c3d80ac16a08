import { describe, expect, it } from "vitest";
import type { GridOut } from "../src/api/client";
import { MAX_HEIGHT, MIN_HEIGHT, layoutGrid } from "../src/data/gridLayout";
import { LOG_DECADES, SCALE_KINDS, logFloor, makeScale, symexp, symlog } from "../src/data/scale";
import { initialState, reducer } from "../src/state/store";

// Values like a real model's l2 at one step: the logits (~29,000) dwarf everything else.
const l2 = [3.2, 4.04, 11.5, 27.0, 60.1, 150.0, 203.7, 29000];
const signed = [-2.5, -0.03, 0, 0.001, 0.02, 0.4, 7.5];

describe("value scales", () => {
  it.each(SCALE_KINDS)("%s is monotonic and spans 0..1", (kind) => {
    for (const vals of [l2, signed]) {
      const s = makeScale(kind, vals);
      const pos = vals.map((v) => s.position(v)!);
      for (let i = 1; i < pos.length; i++) expect(pos[i]).toBeGreaterThan(pos[i - 1]);
      expect(pos[0]).toBe(0);
      expect(pos[pos.length - 1]).toBe(1);
      // Values between the data's are ordered too.
      const fine = Array.from({ length: 200 }, (_, i) => vals[0] + ((vals[vals.length - 1] - vals[0]) * i) / 199);
      const fp = fine.map((v) => s.position(v)!);
      for (let i = 1; i < fp.length; i++) expect(fp[i]).toBeGreaterThanOrEqual(fp[i - 1]);
    }
  });

  it("linear is today's (v - min) / (max - min)", () => {
    const s = makeScale("linear", l2);
    expect(s.position(14601.6)).toBeCloseTo((14601.6 - 3.2) / (29000 - 3.2));
    expect(s.valueAt(0.5)).toBeCloseTo((3.2 + 29000) / 2);
  });

  it("log spreads the cells a large value washes out in linear", () => {
    const lin = makeScale("linear", l2);
    const log = makeScale("log", l2);
    // 203.7 is under 1% of the way up in linear, 40% in log.
    expect(lin.position(203.7)!).toBeLessThan(0.01);
    expect(log.position(203.7)!).toBeGreaterThan(0.4);
    expect(log.floor).toBe(3.2);
  });

  it("log keeps the sign: 0 maps to symlog 0, negatives below it", () => {
    const s = makeScale("log", signed);
    const zero = s.position(0)!;
    expect(zero).toBeGreaterThan(0);
    expect(zero).toBeLessThan(1);
    expect(s.position(-0.03)!).toBeLessThan(zero);
    expect(s.position(0.02)!).toBeGreaterThan(zero);
    expect(symlog(-5, 0.1)).toBeCloseTo(-symlog(5, 0.1));
    expect(symlog(0, 0.1)).toBe(0);
    expect(s.floor).toBe(0.001);
  });

  it("log's floor is the smallest non-zero |v|, at most LOG_DECADES decades under the largest", () => {
    expect(logFloor([0, -0.5, 20])).toBe(0.5);
    expect(logFloor([1e-12, 100])).toBeCloseTo(100 * 10 ** -LOG_DECADES);
    expect(logFloor([0, 0])).toBe(1);
    expect(logFloor([])).toBe(1);
    for (const y of [-3, -0.2, 0, 0.7, 4]) expect(symlog(symexp(y, 0.01), 0.01)).toBeCloseTo(y);
  });

  it("rank is the percentile; ties share a position", () => {
    const s = makeScale("rank", [5, 1, 3, 3, 100]);
    expect(s.position(1)).toBe(0);
    expect(s.position(3)).toBe(0.375); // ranks 1 and 2 of 0..4
    expect(s.position(5)).toBe(0.75);
    expect(s.position(100)).toBe(1);
    expect(s.valueAt(0.5)).toBe(3);
  });

  it.each(SCALE_KINDS)("%s: null, undefined, NaN and infinities have no position", (kind) => {
    const s = makeScale(kind, [1, null, 2, NaN, undefined, Infinity, -Infinity, 4]);
    expect(s.min).toBe(1);
    expect(s.max).toBe(4);
    for (const v of [null, undefined, NaN, Infinity]) expect(s.position(v)).toBeNull();
    expect(s.position(1)).toBe(0);
  });

  it.each(SCALE_KINDS)("%s: equal min and max sit in the middle; no values give nothing", (kind) => {
    const s = makeScale(kind, [7, 7, null]);
    expect(s.position(7)).toBe(0.5);
    expect(s.ticks()).toEqual([{ t: 0.5, value: 7 }]);
    const zeros = makeScale(kind, [0, 0]);
    expect(zeros.position(0)).toBe(0.5);
    const none = makeScale(kind, [null, NaN]);
    expect(none.position(3)).toBeNull();
    expect(none.valueAt(0.5)).toBeNull();
    expect(none.ticks()).toEqual([]);
  });

  it.each(SCALE_KINDS)("%s: legend ticks are real values, ends are the data's min and max", (kind) => {
    const s = makeScale(kind, signed);
    const ticks = s.ticks();
    expect(ticks[0]).toEqual({ t: 0, value: -2.5 });
    expect(ticks[ticks.length - 1]).toEqual({ t: 1, value: 7.5 });
    for (let i = 1; i < ticks.length; i++) expect(ticks[i].value).toBeGreaterThanOrEqual(ticks[i - 1].value);
    // Each tick's value sits at its position (rank: the nearest data value's position).
    if (kind !== "rank") for (const k of ticks) expect(s.position(k.value)).toBeCloseTo(k.t);
  });
});

describe("the grid and the viewer state use the scale", () => {
  const grid = {
    layers: [0], types: ["a", "b", "c", "d"],
    cells: [4, 30, 29000, null].map((value, i) => ({ id: i, type_index: i, layer_index: 0, value, intensity: null, color: "#4a90d9" })),
  } as unknown as GridOut;
  it("grid heights follow the scale's positions", () => {
    const lin = layoutGrid(grid, makeScale("linear", [4, 30, 29000]));
    const log = layoutGrid(grid, makeScale("log", [4, 30, 29000]));
    expect(lin[0].height).toBe(MIN_HEIGHT);
    expect(log[2].height).toBe(MAX_HEIGHT);
    expect(log[1].height).toBeGreaterThan(lin[1].height * 5);
    expect(log[3].height).toBe(MIN_HEIGHT); // no value
  });
  it("the chosen scale survives loading another capture", () => {
    let s = reducer(initialState, { type: "scale", scale: "log" });
    expect(s.scale).toBe("log");
    s = reducer(s, { type: "loaded", path: "other.json" });
    expect(s.scale).toBe("log");
  });
});
