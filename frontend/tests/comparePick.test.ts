// Which trials the Compare view compares (data/comparePick.ts): the captures a side can choose, the
// pair a capture opens with (pair, sweep, first two), trial labels and where the scrubber moves the
// viewer's cursor.
import { describe, expect, it } from "vitest";
import type { CapturesOut, FilesOut, TrialBrief } from "../src/api/client";
import { captureChoices, cursorTarget, defaultPair, pairKind, strengthLabel, sweepOf, trialLabel } from "../src/data/comparePick";

const brief = (id: number, extra: Partial<TrialBrief> = {}): TrialBrief => ({
  id, prompt: `prompt ${id}`, chat: false, response: `response ${id}`, n_tokens: 5, n_prompt: 3, n_steps: 3,
  control: null, sweep: null, pair: null, ...extra,
});

const info = (path: string, model: string | null = "tiny") => ({
  capture_id: `id-${path}`, name: path.split("/").pop()!, path, model, family: "llama", version: "2.2", legacy: false,
  preset: "standard", trials: 2, loaded_at: "",
});
const file = (path: string, valid = true, model: string | null = "tiny") => ({
  name: path.split("/").pop()!, path, size: 1, modified: "", valid, error: null, version: "2.2", legacy: false, model,
  family: "llama", preset: "standard", trials: 2,
});

describe("capture choices", () => {
  const caps: CapturesOut = { current: "id-b.json", captures: [info("a.json"), info("b.json", null)] };
  const files: FilesOut = { data_dir: "/d", files: [file("c.json"), file("a.json"), file("bad.json", false), file("sub/d.json", true, null)] };

  it("lists the viewer's capture first, then the loaded ones, then the valid files, once each", () => {
    const got = captureChoices(caps, files, "c.json");
    expect(got.map((c) => c.path)).toEqual(["c.json", "a.json", "b.json", "sub/d.json"]);
    expect(got.map((c) => c.loaded)).toEqual([true, true, true, false]); // the viewer's capture is loaded
    expect(captureChoices(caps, files, "c.json", ["sub/d.json", null]).map((c) => c.loaded)).toEqual([true, true, true, true]);
    expect(got.map((c) => c.label)).toEqual(["c.json (tiny)", "a.json (tiny)", "b.json", "d.json"]);
  });

  it("works before either list has arrived", () => {
    expect(captureChoices(null, null, "x.json")).toEqual([{ path: "x.json", label: "x.json", loaded: true }]);
    expect(captureChoices(null, null, null)).toEqual([]);
  });
});

describe("the pair a capture opens with", () => {
  it("is a compare pair's reference and candidate, whatever their order", () => {
    const trials = [
      brief(0),
      brief(1, { pair: { role: "candidate", reference: 2, candidate: null, forced: true } }),
      brief(2, { pair: { role: "reference", reference: null, candidate: 1, forced: false } }),
    ];
    expect(defaultPair(trials)).toEqual({ a: 2, b: 1 });
  });

  it("is a sweep's baseline and its strongest positive strength (else the first other)", () => {
    const sw = (id: number, strength: number, baseline = 1) => brief(id, { sweep: { id: "s1", strength, baseline } });
    expect(defaultPair([sw(0, -4), sw(1, 0), sw(2, 2), sw(3, 4)])).toEqual({ a: 1, b: 3 });
    expect(defaultPair([sw(0, -4), sw(1, 0), sw(2, -2)])).toEqual({ a: 1, b: 0 });
    expect(defaultPair([sw(0, 0, 0)])).toBeNull(); // a sweep of the baseline alone, one trial
  });

  it("says which kind of pair the capture holds", () => {
    const ref = { role: "reference" as const, reference: null, candidate: 1, forced: false };
    expect(pairKind([brief(0, { pair: ref }), brief(1)])).toBe("pair");
    expect(pairKind([brief(0, { pair: { ...ref, candidate: 5 } }), brief(1)])).toBeNull();
    const sw = (id: number, strength: number) => brief(id, { sweep: { id: "s", strength, baseline: 0 } });
    expect(pairKind([sw(0, 0), sw(1, 4)])).toBe("sweep");
    expect(pairKind([sw(0, 0)])).toBeNull();
    expect(pairKind([brief(0), brief(1)])).toBeNull();
  });

  it("is trials 0 and 1 otherwise, none with a single trial", () => {
    expect(defaultPair([brief(0), brief(1), brief(2)])).toEqual({ a: 0, b: 1 });
    expect(defaultPair([brief(0)])).toBeNull();
    expect(defaultPair([])).toBeNull();
    // A pair whose candidate is missing falls back to the first two.
    expect(defaultPair([brief(0, { pair: { role: "reference", reference: null, candidate: 7, forced: false } }), brief(1)])).toEqual({ a: 0, b: 1 });
  });
});

describe("sweeps", () => {
  it("groups a sweep's trials by strength, its baseline apart", () => {
    const trials = [
      brief(0),
      brief(1, { sweep: { id: "s", strength: 4, baseline: 3 } }),
      brief(2, { sweep: { id: "s", strength: -4, baseline: 3 } }),
      brief(3, { sweep: { id: "s", strength: 0, baseline: 3 } }),
      brief(4, { sweep: { id: "other", strength: 1, baseline: 9 } }),
    ];
    expect(sweepOf(trials)).toEqual({
      id: "s", baseline: 3,
      strengths: [{ trial: 2, strength: -4 }, { trial: 3, strength: 0 }, { trial: 1, strength: 4 }],
      others: [{ trial: 2, strength: -4 }, { trial: 1, strength: 4 }],
    });
    expect(sweepOf([brief(0), brief(1)])).toBeNull();
    // A sweep whose baseline is not in the capture is not one to compare against.
    expect(sweepOf([brief(0, { sweep: { id: "x", strength: 2, baseline: 5 } })])).toBeNull();
  });

  it("labels strengths with their sign", () => {
    expect([4, 0, -4, 0.5].map(strengthLabel)).toEqual(["+4", "0", "-4", "+0.5"]);
  });
});

describe("trial labels", () => {
  it("say the id, the role in a pair, sweep or steered run, and the prompt's start", () => {
    expect(trialLabel(brief(0))).toBe("#0 · prompt 0");
    expect(trialLabel(brief(1, { pair: { role: "candidate", reference: 0, candidate: null, forced: true } }))).toBe("#1 · candidate, forced · prompt 1");
    expect(trialLabel(brief(2, { sweep: { id: "s", strength: -2, baseline: 0 } }))).toBe("#2 · strength -2 · prompt 2");
    const control = { file: "sea.gguf", sha256: "x", layers: [1, 3], strength: 2, n_embd: 64 };
    expect(trialLabel(brief(3, { control }))).toBe("#3 · sea.gguf × +2 · prompt 3");
    expect(trialLabel(brief(4, { prompt: "abcdefghij" }), 6)).toBe("#4 · abcde…");
  });
});

describe("the viewer's cursor", () => {
  const sides = [{ captureId: "A", trial: 0 }, { captureId: "A", trial: 1 }];

  it("follows the scrubber on the viewer's own trial when it is compared", () => {
    expect(cursorTarget(sides, { captureId: "A", trial: 1 })).toEqual({ trial: 1, switchTrial: false });
    expect(cursorTarget(sides, { captureId: "A", trial: 0 })).toEqual({ trial: 0, switchTrial: false });
  });

  it("switches the viewer to a compared trial of its capture, and stays put for other captures", () => {
    expect(cursorTarget(sides, { captureId: "A", trial: 5 })).toEqual({ trial: 0, switchTrial: true });
    expect(cursorTarget([{ captureId: "B", trial: 0 }, { captureId: "A", trial: 2 }], { captureId: "A", trial: 0 }))
      .toEqual({ trial: 2, switchTrial: true });
    expect(cursorTarget([{ captureId: "B", trial: 0 }, { captureId: "C", trial: 0 }], { captureId: "A", trial: 0 })).toBeNull();
    expect(cursorTarget([], { captureId: null, trial: 0 })).toBeNull();
  });
});
