import { describe, expect, it } from "vitest";
import { glowColor, normalise, rampColor } from "../src/data/colors";
import { blockFlow } from "../src/data/flow";
import { fmt } from "../src/data/format";
import { MAX_HEIGHT, MIN_HEIGHT, cellHeight, layoutGrid } from "../src/data/gridLayout";
import { reducer, initialState } from "../src/state/store";
import type { GridOut } from "../src/api/client";

const plasma = ["#0d0887", "#7e03a8", "#cc4778", "#f89540", "#f0f921"];

describe("colours", () => {
  it("ramp ends and midpoint", () => {
    expect(rampColor(plasma, 0)).toBe("#0d0887");
    expect(rampColor(plasma, 1)).toBe("#f0f921");
    expect(rampColor(plasma, 0.5)).toBe("#cc4778");
    expect(rampColor(plasma, 2)).toBe("#f0f921");
  });
  it("normalise", () => {
    expect(normalise(5, 0, 10)).toBe(0.5);
    expect(normalise(3, 3, 3)).toBe(0.5);
    expect(normalise(null, 0, 1)).toBeNull();
  });
  it("glow grows with intensity", () => {
    const lo = glowColor("#50c878", 0).reduce((a, b) => a + b);
    const hi = glowColor("#50c878", 1).reduce((a, b) => a + b);
    expect(hi).toBeGreaterThan(lo);
  });
});

describe("grid layout", () => {
  const grid = {
    layers: [-1, 0, 999], types: ["embd", "l_out", "result_output"],
    cells: [
      { id: 0, type_index: 0, layer_index: 0, intensity: 0, color: "#4a90d9" },
      { id: 1, type_index: 1, layer_index: 1, intensity: 1, color: "#e8e8e8" },
      { id: 2, type_index: 2, layer_index: 2, intensity: null, color: "#da70d6" },
    ],
  } as unknown as GridOut;
  it("one layout per cell, centred, height by intensity", () => {
    const l = layoutGrid(grid);
    expect(l).toHaveLength(3);
    expect(l[1].x).toBeCloseTo(0);
    expect(l[1].z).toBeCloseTo(0);
    expect(l[0].x).toBeLessThan(0);
    expect(l[1].height).toBe(MAX_HEIGHT);
    expect(l[0].height).toBe(MIN_HEIGHT);
    expect(l[2].height).toBe(cellHeight(null));
  });
});

describe("flow layout", () => {
  it("columns follow the data path", () => {
    const { nodes, edges } = blockFlow({
      attention_flow: [["l_out.prev", "attn_norm"], ["attn_norm", "Qcur"], ["Qcur", "kq"], ["attn_norm", "Kcur"], ["Kcur", "kq"], ["kq", "attn_out"], ["attn_out", "ffn_inp"], ["l_out.prev", "ffn_inp"]],
      ffn_flow: [["ffn_inp", "ffn_out"], ["ffn_out", "l_out"], ["ffn_inp", "l_out"]],
      layer_flow: [["l_out", "l_out.next"]],
    });
    const col = Object.fromEntries(nodes.map((n) => [n.id, n.col]));
    expect(col["l_out.prev"]).toBe(0);
    expect(col.attn_norm).toBe(1);
    expect(col.kq).toBe(3);
    expect(col.l_out).toBeGreaterThan(col.ffn_inp);
    expect(edges).toHaveLength(11);
    expect(nodes.find((n) => n.id === "l_out.prev")?.type).toBe("l_out");
  });
});

describe("format and state", () => {
  it("fmt", () => {
    expect(fmt(null)).toBe("—");
    expect(fmt(4.0012956)).toBe("4.001");
    expect(fmt(203.7)).toBe("203.7");
    expect(fmt(0)).toBe("0");
    expect(fmt(1234567)).toBe("1.235e+6");
  });
  it("choosing a token moves the step; a new trial resets the cursor", () => {
    let s = reducer(initialState, { type: "token", pos: 17, step: 2 });
    expect(s.step).toBe(2);
    expect(s.token).toBe(17);
    s = reducer(s, { type: "trial", trialId: 1 });
    expect(s.step).toBe(0);
    expect(s.token).toBeNull();
  });
});
