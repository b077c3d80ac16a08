// The live-run state (data/live.ts): events in order build the trials and steps, a replay after a
// reconnect changes nothing, dropped events leave holes that are counted, the heat strip holds each
// step's L2 per layer, the cursor follows the newest step unless the user set it; and the whole path
// text → SSE parser → decode → reducer gives the same state as the events applied directly.
import { describe, expect, it } from "vitest";
import type { RunInfo, StepEvent } from "../src/api/client";
import {
  decodeRunEvent, heatStrip, initialLive, isActive, liveReducer, missingSteps, newestStep, savedCursor, shownStep, stepCount, totalSteps,
  type LiveAction, type LiveState, type RunEvent,
} from "../src/data/live";
import { feedSse, initialSse } from "../src/data/sse";

const LAYERS = [0, 1, 2, 3];

const info = (over: Partial<RunInfo> = {}): RunInfo => ({
  id: "r1", model: "tiny.gguf", preset: "standard", prompts: ["a", "b"], max_tokens: 5, state: "running", trial: 0, n_trials: 2,
  step: 0, tokens: 0, tokens_per_s: null, progress: 0, file: null, error: null, created: 0, events: 0, ...over,
}) as RunInfo;

/** A step whose numbers are a function of (trial, index, layer), so the test can recompute them. */
const l2 = (trial: number, index: number, layer: number) => 1 + trial * 100 + index * 10 + layer + 0.5;
const step = (trial: number, index: number): StepEvent => ({
  trial, index, kind: index === 0 ? "prefill" : "decode", token: `t${trial}.${index}`, token_id: 10 + index, layers: LAYERS,
  l2: LAYERS.map((l) => l2(trial, index, l)), attn_entropy: LAYERS.map(() => 0.5), top: [{ id: 10 + index, text: `t${trial}.${index}`, logit: 3 }],
  lens_top1: null,
}) as StepEvent;

/** The events of a run with 2 trials of `n` steps each, numbered from 1. */
function runEvents(n: number): { seq: number; event: RunEvent }[] {
  const evs: RunEvent[] = [{ type: "state", data: info({ state: "loading" }) }];
  for (let t = 0; t < 2; t++) {
    evs.push({ type: "trial", data: { trial: t, prompt: `p${t}`, prompt_text: `p${t}`, tokens: ["<s>", `p${t}`] } });
    for (let i = 0; i < n; i++) evs.push({ type: "step", data: step(t, i) });
  }
  evs.push({ type: "done", data: info({ state: "done", file: "run.json", progress: 1 }) });
  return evs.map((event, i) => ({ seq: i + 1, event }));
}

const apply = (s: LiveState, evs: { seq: number | null; event: RunEvent }[]) =>
  evs.reduce((acc, e) => liveReducer(acc, { type: "event", seq: e.seq, event: e.event } as LiveAction), s);

const watching = liveReducer(initialLive, { type: "watch", runId: "r1" });

describe("liveReducer", () => {
  it("builds the trials and their steps from the events", () => {
    const s = apply(watching, runEvents(3));
    expect(s.trials.map((t) => [t.prompt, t.promptTokens, stepCount(t)])).toEqual([["p0", ["<s>", "p0"], 3], ["p1", ["<s>", "p1"], 3]]);
    expect(s.trials[1].steps.map((x) => x?.token)).toEqual(["t1.0", "t1.1", "t1.2"]);
    expect(s.info?.state).toBe("done");
    expect(s.info?.file).toBe("run.json");
    expect(s.ended).toBe(true);
    expect(s.lastSeq).toBe(runEvents(3).length);
    expect(totalSteps(s)).toBe(6);
    expect(isActive(s.info)).toBe(false);
  });

  it("ignores events replayed after a reconnect (ids at or below the last applied)", () => {
    const evs = runEvents(4);
    const once = apply(watching, evs);
    // Connection dropped after event 6; the server replays from ?after=4 (an overlap of two).
    const twice = apply(apply(watching, evs.slice(0, 6)), evs.slice(4));
    expect(twice).toEqual(once);
    const mid = apply(watching, evs.slice(0, 6));
    expect(liveReducer(mid, { type: "event", ...evs[3] })).toBe(mid);
  });

  it("counts dropped events and leaves holes where their steps were", () => {
    const evs = runEvents(5);
    // The server dropped trial 0's steps 1 and 2 (events 4 and 5) and said so.
    const kept = evs.filter((e) => e.seq !== 4 && e.seq !== 5);
    const s = apply(watching, [...kept.slice(0, 3), { seq: 6, event: { type: "dropped", data: { count: 2 } } }, ...kept.slice(3).map((e) => ({ ...e, seq: e.seq + 1 }))]);
    expect(s.dropped).toBe(2);
    expect(s.trials[0].steps.map((x) => x?.index ?? null)).toEqual([0, null, null, 3, 4]);
    expect(stepCount(s.trials[0])).toBe(3);
    const strip = heatStrip(s.trials[0]);
    expect(strip.steps).toBe(5);
    expect(strip.values.map((row) => row[1])).toEqual(LAYERS.map(() => null));
    expect(missingSteps(s)).toBe(2);
    expect(s.refill).toBe(4); // without "first": its own id (6) is the last dropped one's, so 5..6: after 4
  });

  it("reading the backlog again fills the holes and changes nothing else", () => {
    const evs = runEvents(5);
    // Events 4 and 5 (steps 1 and 2 of trial 0) dropped; the server's dropped event carries their ids.
    const live = [...evs.slice(0, 3), { seq: 5, event: { type: "dropped", data: { count: 2, first: 4, last: 5, total: 2 } } as RunEvent }, ...evs.slice(5)];
    const holed = apply(watching, live);
    expect(holed.ended).toBe(true);
    expect(holed.refill).toBe(3);
    expect(missingSteps(holed)).toBe(2);
    // The backlog after event 3, read again once the run has ended: only the two holes change.
    const filled = liveReducer(holed, { type: "events", items: evs.slice(3) });
    expect(missingSteps(filled)).toBe(0);
    expect(filled.trials).toEqual(apply(watching, evs).trials);
    expect({ ...filled, trials: null }).toEqual({ ...holed, trials: null });
    expect(liveReducer(filled, { type: "events", items: evs.slice(3) })).toBe(filled); // nothing left to fill
    expect(liveReducer(filled, { type: "refilled" }).refill).toBeNull();
  });

  it("starts afresh when another run is watched, and keeps the state when the same one is", () => {
    const s = apply(watching, runEvents(2));
    expect(liveReducer(s, { type: "watch", runId: "r1" })).toBe(s);
    const other = liveReducer(s, { type: "watch", runId: "r2", info: info({ id: "r2", state: "queued" }) });
    expect(other).toEqual({ ...initialLive, runId: "r2", info: info({ id: "r2", state: "queued" }) });
  });
});

describe("reading the live state", () => {
  it("the heat strip holds each step's L2 per layer, with its range", () => {
    const s = apply(watching, runEvents(4));
    const strip = heatStrip(s.trials[1]);
    expect(strip.layers).toEqual(LAYERS);
    expect(strip.steps).toBe(4);
    for (const [r, layer] of LAYERS.entries()) for (let i = 0; i < 4; i++) expect(strip.values[r][i]).toBe(l2(1, i, layer));
    const all = LAYERS.flatMap((l) => [0, 1, 2, 3].map((i) => l2(1, i, l)));
    expect(strip.min).toBe(Math.min(...all));
    expect(strip.max).toBe(Math.max(...all));
    expect(heatStrip(undefined)).toEqual({ layers: [], steps: 0, values: [], min: null, max: null });
  });

  it("follows the newest step unless the user chose one", () => {
    const evs = runEvents(3);
    expect(newestStep(watching)).toBeNull();
    const partway = apply(watching, evs.slice(0, 7)); // state, trial 0 + 3 steps, trial 1 + its step 0
    expect(newestStep(partway)).toEqual({ trial: 1, step: 0 });
    expect(shownStep(partway, null)).toEqual({ trial: 1, step: 0 });
    expect(shownStep(partway, { trial: 0, step: 1 })).toEqual({ trial: 0, step: 1 });
    const later = apply(partway, evs.slice(7, 9));
    expect(shownStep(later, null)).toEqual({ trial: 1, step: 2 });
    expect(shownStep(later, { trial: 0, step: 1 })).toEqual({ trial: 0, step: 1 });
  });

  it("puts the saved capture's cursor at its newest step when following, else at the chosen one (clamped)", () => {
    expect(savedCursor(null, [5, 7])).toEqual({ trial: 1, step: 6 });
    expect(savedCursor({ trial: 0, step: 2 }, [5, 7])).toEqual({ trial: 0, step: 2 });
    expect(savedCursor({ trial: 3, step: 99 }, [5, 7])).toEqual({ trial: 1, step: 6 });
    expect(savedCursor(null, [])).toEqual({ trial: 0, step: 0 });
  });
});

describe("decodeRunEvent", () => {
  it("decodes the known types with their sequence number, skips unknown ones, and names a bad event", () => {
    expect(decodeRunEvent({ id: "12", event: "dropped", data: '{"count": 3}' })).toEqual({ seq: 12, event: { type: "dropped", data: { count: 3 } } });
    expect(decodeRunEvent({ id: null, event: "state", data: "{}" })?.seq).toBeNull();
    expect(decodeRunEvent({ id: "1", event: "heartbeat", data: "{}" })).toBeNull();
    expect(() => decodeRunEvent({ id: "4", event: "step", data: "{not json" })).toThrow(/"step" event that is not JSON \(id 4\)/);
  });

  it("text cut anywhere, parsed, decoded and reduced gives the state of the events applied directly", () => {
    const evs = runEvents(6);
    const text = evs.map((e) => `id: ${e.seq}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event.data)}\n\n`).join(": ping\n\n");
    let parser = initialSse;
    let s = watching;
    for (let at = 0; at < text.length; at += 37) {
      const r = feedSse(parser, text.slice(at, at + 37));
      parser = r.state;
      for (const e of r.events) {
        const d = decodeRunEvent(e)!;
        s = liveReducer(s, { type: "event", seq: d.seq, event: d.event });
      }
    }
    expect(s).toEqual(apply(watching, evs));
  });
});

describe("polled run info", () => {
  it("takes the list's progress between state events, never an older one, and never after done", () => {
    const running = apply(watching, [{ seq: 1, event: { type: "state", data: info({ state: "running", events: 0 }) } }]);
    const polled = info({ state: "running", events: 40, tokens: 39, tokens_per_s: 12.5, progress: 0.4 });
    const s = liveReducer(running, { type: "polled", info: polled });
    expect(s.info).toEqual(polled);
    // An answer sent before that one (fewer events) changes nothing; nor does another run's.
    expect(liveReducer(s, { type: "polled", info: info({ events: 10, progress: 0.1 }) })).toBe(s);
    expect(liveReducer(s, { type: "polled", info: info({ id: "r9", events: 99 }) })).toBe(s);
    // A replayed backlog's older state event does not undo it either.
    const replay = liveReducer(s, { type: "event", seq: 2, event: { type: "state", data: info({ state: "loading", events: 1 }) } });
    expect(replay.info).toEqual(polled);
    const done = liveReducer(s, { type: "event", seq: 50, event: { type: "done", data: info({ state: "done", events: 49, file: "f.json" }) } });
    expect(liveReducer(done, { type: "polled", info: info({ state: "done", events: 60 }) })).toBe(done);
  });
});

describe("batches", () => {
  it("a batch gives the state of its events one by one, and never changes the state it starts from", () => {
    const evs = runEvents(5);
    const deepFreeze = <T,>(o: T): T => {
      if (o && typeof o === "object" && !Object.isFrozen(o)) {
        Object.freeze(o);
        Object.values(o).forEach(deepFreeze);
      }
      return o;
    };
    const start = deepFreeze(apply(watching, evs.slice(0, 5)));
    const batched = liveReducer(start, { type: "events", items: evs.slice(3) }); // overlaps by two: skipped
    expect(batched).toEqual(apply(watching, evs));
    expect(start.trials[0].steps.length).toBe(3); // untouched (frozen: a write would have thrown)
    expect(liveReducer(start, { type: "events", items: evs.slice(0, 5) })).toBe(start); // only replays
  });
});
