import { describe, expect, it } from "vitest";
import type { AttentionOut } from "../src/api/client";
import { boxesInView, evaluatedEnd, focusLinks, stripLayout } from "../src/data/lens";

const edge = (head: number, pos: number, p: number, q: number) => ({ head, pos, p, distance: q - pos, token_text: "", sink: pos === 0 });
const tok = (pos: number, edges: ReturnType<typeof edge>[]) => ({
  pos, text: "", step: 0, prompt: true, zone: null,
  layers: [{ layer: 0, entropy: [0, 0], coverage: 1, fingerprint: new Array(20).fill(0), periodicity: 0, zone: "diffuse", edges }],
});
const att = {
  capture_id: "c1", trial_id: 0, step: null, layer: 0, head: null, n_head: 2, top_k: 2, attention_layers: [0], fingerprint_names: [],
  tokens: [
    tok(0, [edge(0, 0, 1, 0), edge(1, 0, 1, 0)]),
    tok(1, [edge(0, 0, 0.6, 1), edge(0, 1, 0.4, 1), edge(1, 1, 0.9, 1), edge(1, 0, 0.1, 1)]),
    tok(2, [edge(0, 1, 0.7, 2), edge(0, 0, 0.3, 2), edge(1, 2, 1, 2)]),
  ],
} as unknown as AttentionOut;

describe("Token Lens links", () => {
  it("all heads: probabilities averaged over heads, sinks kept", () => {
    const { out, in: inc } = focusLinks(att, 1, null);
    expect(out).toEqual([{ from: 1, to: 1, p: 0.65 }, { from: 1, to: 0, p: 0.35 }]);
    expect(inc).toEqual([{ from: 2, to: 1, p: 0.35 }]);
  });
  it("one head: that head's edges unchanged", () => {
    expect(focusLinks(att, 2, 0).out).toEqual([{ from: 2, to: 1, p: 0.7 }, { from: 2, to: 0, p: 0.3 }]);
    expect(focusLinks(att, 0, 1).in).toEqual([{ from: 1, to: 0, p: 0.1 }]);
  });
  it("strip boxes do not overlap", () => {
    const b = stripLayout(["<s>", "a", "a very long token indeed"]);
    expect(b[1].x).toBeGreaterThanOrEqual(b[0].x + b[0].w);
    expect(b[2].w).toBeLessThanOrEqual(10 + 7 * 12);
  });
});

describe("boxesInView", () => {
  it("finds exactly the boxes that overlap a pixel range of the strip", () => {
    const texts = Array.from({ length: 3000 }, (_, i) => "x".repeat(1 + (i % 9)));
    const b = stripLayout(texts);
    for (const [lo, hi] of [[0, 500], [12345, 13345], [-400, 100], [b.at(-1)!.x - 10, b.at(-1)!.x + 5000]]) {
      const [first, last] = boxesInView(b, lo, hi);
      const want = b.filter((x) => x.x + x.w > lo && x.x < hi).map((x) => x.pos);
      expect(b.slice(first, last).map((x) => x.pos)).toEqual(want);
      expect(want.length).toBeGreaterThan(0);
    }
    expect(boxesInView(b, 1e9, 1e9 + 10)).toEqual([3000, 3000]);
  });
});

describe("evaluatedEnd", () => {
  it("is the end of the furthest step: the prompt's step and each decode step's one token", () => {
    const steps = [{ pos: 0, n_tokens: 5 }, { pos: 5, n_tokens: 1 }, { pos: 6, n_tokens: 1 }];
    expect(evaluatedEnd(steps)).toBe(7); // a trial of 8 tokens: the 8th (position 7) was sampled, never evaluated
    expect(evaluatedEnd([])).toBe(0);
    expect(evaluatedEnd([{ pos: 6, n_tokens: 1 }, { pos: 0, n_tokens: 5 }])).toBe(7); // order does not matter
  });
});
