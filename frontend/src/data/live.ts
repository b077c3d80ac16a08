/** A live run as the viewer sees it: the state built from the run's Server-Sent Events (docs/API.md,
 * GET /api/runs/{id}/events), pure and tested without a browser. The reducer applies events in order
 * and ignores a replayed one (an id at or below the last applied: a reconnect with ?after= may
 * overlap), so reconnecting is safe, except a step event that fills a hole. Steps are stored by
 * their index in the trial; steps the server dropped for a slow client leave holes, are counted,
 * and are read again from the backlog once the run has ended (`refill`: from which event).
 *
 * The cursor: null follows the newest step; a {trial, step} is where the user moved the scrubber. */
import type { DroppedEvent, RunInfo, StepEvent, TrialEvent } from "../api/client";
import type { SseEvent } from "./sse";

export type RunEvent =
  | { type: "state"; data: RunInfo }
  | { type: "trial"; data: TrialEvent }
  | { type: "step"; data: StepEvent }
  | { type: "dropped"; data: DroppedEvent }
  | { type: "done"; data: RunInfo };

const EVENT_TYPES = new Set(["state", "trial", "step", "dropped", "done"]);

/** A run event of an SSE event with its sequence number; null for an event type the viewer does not
 * know (a newer server may add some). Bad JSON throws, saying which event. */
export function decodeRunEvent(e: SseEvent): { seq: number | null; event: RunEvent } | null {
  if (!EVENT_TYPES.has(e.event)) return null;
  let data: unknown;
  try {
    data = JSON.parse(e.data);
  } catch {
    throw new Error(`the server sent a "${e.event}" event that is not JSON (id ${e.id ?? "none"})`);
  }
  const seq = e.id !== null && /^\d+$/.test(e.id) ? Number(e.id) : null;
  return { seq, event: { type: e.event, data } as RunEvent };
}

export interface LiveTrial {
  trial: number;
  prompt: string;
  promptText: string;
  promptTokens: string[];
  steps: (StepEvent | null)[]; // by step index; null: not received (dropped)
}

export interface LiveState {
  runId: string | null;
  info: RunInfo | null;
  lastSeq: number | null; // the last event applied: reconnect with ?after=lastSeq
  trials: LiveTrial[]; // by trial index
  dropped: number; // events the server dropped for this client
  refill: number | null; // read the backlog again after this event id to fill the holes (null: none)
  ended: boolean; // "done" arrived: the stream is over
}

export const initialLive: LiveState = { runId: null, info: null, lastSeq: null, trials: [], dropped: 0, refill: null, ended: false };

/** An event with its sequence number (null: the server sent no id). */
export interface Numbered {
  seq: number | null;
  event: RunEvent;
}

export type LiveAction =
  | { type: "watch"; runId: string; info?: RunInfo | null } // start (or switch to) a run: everything else reset
  | { type: "close" } // watch no run
  | ({ type: "event" } & Numbered)
  | { type: "events"; items: readonly Numbered[] } // a batch, in order (one render for many steps)
  | { type: "polled"; info: RunInfo } // the run as GET /api/runs last showed it (progress, tokens per second)
  | { type: "refilled" }; // the backlog was read again: no more refill

export function liveReducer(s: LiveState, a: LiveAction): LiveState {
  switch (a.type) {
    case "close":
      return initialLive;
    case "watch":
      return a.runId === s.runId ? s : { ...initialLive, runId: a.runId, info: a.info ?? null };
    case "polled":
      return newerInfo(s, a.info) ? { ...s, info: a.info } : s;
    case "event":
      return applyEvents(s, [a]);
    case "events":
      return applyEvents(s, a.items);
    case "refilled":
      return s.refill === null ? s : { ...s, refill: null };
  }
}

/** Whether a polled RunInfo is this run's and not older than what the events said: the stream's
 * "state" events come only when the state changes, the list has the progress in between. Once the
 * run has ended, its "done" event has the final word. */
function newerInfo(s: LiveState, info: RunInfo): boolean {
  return !s.ended && info.id === s.runId && (s.info === null || info.events >= s.info.events);
}

/** Apply events in order to a copy of the state: the trials array, and each trial an event touches,
 * are copied once per batch (a run of a thousand steps must not copy its steps a thousand times). */
function applyEvents(s: LiveState, items: readonly Numbered[]): LiveState {
  const d: LiveState = { ...s, trials: [...s.trials] };
  const owned = new Set<number>();
  const trial = (i: number): LiveTrial => {
    for (let k = d.trials.length; k <= i; k++) {
      d.trials.push({ trial: k, prompt: "", promptText: "", promptTokens: [], steps: [] });
      owned.add(k);
    }
    if (!owned.has(i)) {
      d.trials[i] = { ...d.trials[i], steps: [...d.trials[i].steps] };
      owned.add(i);
    }
    return d.trials[i];
  };
  let changed = false;
  for (const { seq, event: e } of items) {
    if (seq !== null && d.lastSeq !== null && seq <= d.lastSeq) {
      // A replay, ignored; but a step the server had dropped fills its hole.
      if (e.type !== "step" || (d.trials[e.data.trial]?.steps[e.data.index] ?? null) !== null) continue;
      const t = trial(e.data.trial);
      while (t.steps.length < e.data.index) t.steps.push(null);
      t.steps[e.data.index] = e.data;
      changed = true;
      continue;
    }
    changed = true;
    d.lastSeq = seq ?? d.lastSeq;
    if (e.type === "state") {
      // A replayed backlog may hold states older than the run as last polled.
      if (d.info === null || e.data.events >= d.info.events) d.info = e.data;
    } else if (e.type === "done") {
      d.info = e.data;
      d.ended = true;
    } else if (e.type === "dropped") {
      d.dropped += Math.max(0, e.data.count);
      // The dropped ids are first..last (the event's own id is the last's): read again after first - 1.
      const first = e.data.first ?? (seq !== null ? seq - e.data.count + 1 : 1);
      const from = Math.max(0, first - 1);
      d.refill = d.refill === null ? from : Math.min(d.refill, from);
    } else if (e.type === "trial") {
      Object.assign(trial(e.data.trial), { prompt: e.data.prompt, promptText: e.data.prompt_text, promptTokens: e.data.tokens });
    } else if (e.type === "step") {
      const t = trial(e.data.trial);
      while (t.steps.length < e.data.index) t.steps.push(null);
      t.steps[e.data.index] = e.data;
    }
  }
  return changed ? d : s;
}

// ----- reading the state -------------------------------------------------------------------
const ACTIVE: ReadonlySet<string> = new Set(["queued", "loading", "running", "saving"]);

/** Whether a run is still going (queued, loading the model, running or saving). */
export const isActive = (info: RunInfo | null | undefined): boolean => !!info && ACTIVE.has(info.state);

/** Steps received of a trial (holes left by dropped events not counted). */
export const stepCount = (t: LiveTrial | undefined): number => t?.steps.filter((x) => x !== null).length ?? 0;

/** Steps not received (yet) below the newest one of each trial: the holes of dropped events. */
export const missingSteps = (s: LiveState): number => s.trials.reduce((n, t) => n + t.steps.length - stepCount(t), 0);

/** Steps received in every trial. */
export const totalSteps = (s: LiveState): number => s.trials.reduce((n, t) => n + stepCount(t), 0);

export interface Cursor {
  trial: number;
  step: number;
}

/** The newest step received: the last trial with a step, its highest index; null before any step. */
export function newestStep(s: LiveState): Cursor | null {
  for (let i = s.trials.length - 1; i >= 0; i--) {
    const steps = s.trials[i].steps;
    for (let j = steps.length - 1; j >= 0; j--) if (steps[j] !== null) return { trial: i, step: j };
  }
  return null;
}

/** The step the live views show: where the user put the scrubber, else the newest one. */
export function shownStep(s: LiveState, cursor: Cursor | null): Cursor | null {
  return cursor ?? newestStep(s);
}

/** The text the model has produced in a trial so far, token by token (step order; a dropped step: null). */
export function generatedTokens(t: LiveTrial | undefined): (string | null)[] {
  return t?.steps.map((x) => x?.token ?? null) ?? [];
}

export interface HeatStrip {
  layers: number[]; // row i is layers[i], top to bottom
  steps: number; // columns: step 0..steps-1
  values: (number | null)[][]; // [row][step]; null: that step was not received
  min: number | null;
  max: number | null;
}

/** Layers × steps of one trial's residual-stream L2 (each step's last row per layer). The layers
 * are the first received step's; a later step with another layer set fills what it has. */
export function heatStrip(t: LiveTrial | undefined): HeatStrip {
  const steps = t?.steps ?? [];
  const layers = steps.find((x) => x !== null)?.layers ?? [];
  const rowOf = new Map(layers.map((l, i) => [l, i]));
  const values = layers.map(() => steps.map((): number | null => null));
  let min: number | null = null;
  let max: number | null = null;
  steps.forEach((st, j) => {
    st?.layers.forEach((layer, k) => {
      const r = rowOf.get(layer);
      const v = st.l2[k];
      if (r === undefined || v === undefined || v === null || !Number.isFinite(v)) return;
      values[r][j] = v;
      min = min === null ? v : Math.min(min, v);
      max = max === null ? v : Math.max(max, v);
    });
  });
  return { layers, steps: steps.length, values, min, max };
}

/** Where the viewer's cursor goes in the saved capture when the run ends (`nSteps`: steps per trial
 * of the saved file): following (cursor null), its newest step, the last trial's last; else the step
 * the user chose, clamped to what the file holds. */
export function savedCursor(cursor: Cursor | null, nSteps: readonly number[]): Cursor {
  if (nSteps.length === 0) return { trial: 0, step: 0 };
  const trial = cursor === null ? nSteps.length - 1 : Math.min(Math.max(cursor.trial, 0), nSteps.length - 1);
  const last = Math.max(nSteps[trial] - 1, 0);
  return { trial, step: cursor === null ? last : Math.min(Math.max(cursor.step, 0), last) };
}
