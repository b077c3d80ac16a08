// The comparison data (data/compare.ts): the disagreement positions, the symmetric domain and
// diverging colour, the types heat map of a statistic, the KL per token, the drift curve's points
// and the panel's lines.
import { describe, expect, it } from "vitest";
import type { ComparisonOut } from "../src/api/client";
import {
  DIVERGING, disagreements, disagreesAt, divergingColor, driftPoints, firstScored, fixed, idLabel, klFractions, pendingFraction,
  pendingLine, positionLine, statChoices, summaryLine, symmetricMax, tokenTitle, topChanges, trialRef, typeHeat, vocabOf,
} from "../src/data/compare";

type NextToken = NonNullable<ComparisonOut["next_token"]>;

const next: NextToken = {
  kl: [null, 0.5, 0.25, 0.125, null],
  top1_a: [null, 10, 11, 12, null],
  top1_b: [null, 10, 99, null, 7],
  p_b_of_a: [null, 0.9, 0.1, null, null],
  p_a_of_b: [null, 0.9, 0.2, null, null],
};

describe("trials", () => {
  it("names a trial capture_id:trial", () => {
    expect(trialRef("c1", 1)).toBe("c1:1");
  });
});

describe("disagreements", () => {
  it("are the positions where both top-1 tokens are known and differ", () => {
    expect(disagreements(next)).toEqual([2]);
    expect(disagreesAt(next, 1)).toBe(false); // same token
    expect(disagreesAt(next, 3)).toBe(false); // b unknown
    expect(disagreesAt(next, 4)).toBe(false); // a unknown
    expect(disagreesAt(next, 2)).toBe(true);
    expect(disagreements(null)).toEqual([]);
    expect(topChanges(next, new Map([[11, " x"]]))).toEqual([{ pos: 2, a: "“·x” #11", b: "#99" }]);
    expect(topChanges(null)).toEqual([]);
  });
});

describe("diverging scale", () => {
  it("is symmetric around 0 over the largest finite |value|", () => {
    expect(symmetricMax([[0.1, -0.4, null], [0.2, Number.NaN]])).toBe(0.4);
    expect(symmetricMax([[null, 0]])).toBe(1);
  });

  it("goes blue at -m, white at 0, red at +m, clamped, grey without a value", () => {
    expect(divergingColor(-2, 2)).toBe(DIVERGING.neg);
    expect(divergingColor(0, 2)).toBe(DIVERGING.mid);
    expect(divergingColor(2, 2)).toBe(DIVERGING.pos);
    expect(divergingColor(10, 2)).toBe(DIVERGING.pos);
    expect(divergingColor(-10, 2)).toBe(DIVERGING.neg);
    expect(divergingColor(null, 2)).toBe(DIVERGING.none);
    // Halfway: the mean of white and the end colour.
    expect(divergingColor(1, 2)).toBe("#d58891");
    expect(divergingColor(-1, 2)).toBe("#8cafd2");
  });
});

describe("drift curve", () => {
  it("has one point per layer with a value, the highest drift at the top", () => {
    const pts = driftPoints([0, 1, 2, 3], [0.9, null, 0.5, 0.7], 108, 58, 4);
    expect(pts.map((p) => p.layer)).toEqual([0, 2, 3]);
    expect(pts.map((p) => p.value)).toEqual([0.9, 0.5, 0.7]);
    expect(pts[0]).toMatchObject({ x: 4, y: 4 });
    expect(pts[1]).toMatchObject({ x: 4 + (2 / 3) * 100, y: 54 });
    expect(pts[2].x).toBeCloseTo(104);
    expect(pts[2].y).toBeCloseTo(29);
    expect(driftPoints([0, 1], null, 100, 50)).toEqual([]);
    expect(driftPoints([0, 1], [0.5, 0.5], 100, 50).map((p) => p.y)).toEqual([25, 25]);
  });
});

describe("lines", () => {
  it("formats the summary, the scrubber position and a token's title", () => {
    const s = summaryLine({ n_shared: 19, diverge_at: null, mean_kl: 0.0704, top1_agreement: 1 / 6, n_next_token: 6, mean_cosine: 0.95086 });
    expect(s).toBe("mean KL 0.0704 nats · top-1 agreement 16.7% · mean cosine 0.9509 · 19 shared tokens");
    expect(summaryLine({ n_shared: 3, diverge_at: 2 })).toBe("mean KL — · top-1 agreement — · mean cosine — · 3 shared tokens · diverges at token 2");
    const vocab = vocabOf([{ id: 11, text: " Paris" }], null, [{ id: 11, text: "other" }, { id: 10, text: "a" }]);
    expect([...vocab.entries()]).toEqual([[11, " Paris"], [10, "a"]]);
    expect(idLabel(11, vocab)).toBe("“·Paris” #11");
    expect(idLabel(99, vocab)).toBe("#99");
    expect(idLabel(null, vocab)).toBe("—");
    expect(positionLine(next, 2, vocab)).toBe("a → “·Paris” #11 (p of b’s next 0.2000) · b → #99 (p of a’s next 0.1000) · KL 0.25000");
    expect(positionLine(next, 0)).toBe("a → — (p of b’s next —) · b → — (p of a’s next —) · KL —");
    expect(positionLine(null, 1)).toBe("a → — (p of b’s next —) · b → — (p of a’s next —) · KL —");
    expect(tokenTitle(" is", next, 1)).toBe("#1 “·is” · KL 0.50000 · top-1 a #10, b #10");
    expect(tokenTitle(" is", next, 0)).toBe("#0 “·is” · KL —");
    expect(fixed(0.1234567)).toBe("0.123457");
    expect(fixed(null)).toBe("—");
    expect(firstScored(next)).toBe(1);
    expect(firstScored(null)).toBe(0);
  });
});

describe("KL per token", () => {
  it("is each KL over the largest, null without one, over n positions", () => {
    expect(klFractions(next, 5)).toEqual([null, 1, 0.5, 0.25, null]);
    expect(klFractions(next, 3)).toEqual([null, 1, 0.5]);
    expect(klFractions(null, 2)).toEqual([null, null]);
    const zero: NextToken = { ...next, kl: [0, 0] };
    expect(klFractions(zero, 2)).toEqual([0, 0]);
  });
});

describe("statistic change per layer and tensor type", () => {
  const data = {
    types: ["attn_norm", "Qcur", "l_out", "ffn_out"],
    stats: {
      mean: [[0.1, null, -0.2, null], [null, null, 0.3, null]],
      l2: [[0.01, null, 0.02, null], [0.5, null, null, null]],
      nonfinite: [[null, null, null, null], [null, null, null, null]],
    },
  };

  it("offers the statistics with a value, l2 first", () => {
    expect(statChoices(data.stats)).toEqual(["l2", "mean"]);
    expect(statChoices({})).toEqual([]);
  });

  it("keeps only the types with a value in some layer, rows aligned with them", () => {
    expect(typeHeat(data, "mean")).toEqual({ types: ["attn_norm", "l_out"], rows: [[0.1, -0.2], [null, 0.3]] });
    expect(typeHeat(data, "l2")).toEqual({ types: ["attn_norm", "l_out"], rows: [[0.01, 0.02], [0.5, null]] });
    expect(typeHeat(data, "nonfinite")).toEqual({ types: [], rows: [[], []] });
    expect(typeHeat(data, "missing")).toEqual({ types: [], rows: [] });
  });
});

describe("the next-token block while the server computes it", () => {
  it("is a fraction of the vocabulary's blocks, 0 before the total is known, null when nothing is pending", () => {
    expect(pendingFraction(null)).toBeNull();
    expect(pendingFraction({ done: 0, total: 0 })).toBe(0);
    expect(pendingFraction({ done: 13, total: 32 })).toBeCloseTo(13 / 32, 12);
    expect(pendingFraction({ done: 40, total: 32 })).toBe(1);
  });
  it("says so with a whole percentage", () => {
    expect(pendingLine({ done: 13, total: 32 })).toBe(`next-token KL over the vocabulary: ${Math.floor((13 / 32) * 100)}%`);
    expect(pendingLine({ done: 2, total: 5 })).toBe("next-token KL over the vocabulary: 40%");
    expect(pendingLine({ done: 0, total: 0 })).toBe("next-token KL over the vocabulary: 0%");
    expect(pendingLine(null)).toBeNull();
  });
});
