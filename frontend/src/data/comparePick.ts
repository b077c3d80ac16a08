/** Which two trials the Compare view compares, pure: the captures a side can choose from (loaded on
 * the server, or a file of the data directory loaded on demand), the pair a capture opens with (a
 * `spectra-vis compare` pair: reference vs candidate; a steering sweep: its strength-0 baseline vs a
 * steered trial; else trials 0 and 1), a trial's label, and which trial of the viewer's capture the
 * compare scrubber moves. Tested without a browser. */
import type { CapturesOut, FilesOut, TrialBrief } from "../api/client";

/** One side of the comparison: a capture file (relative to the data directory) and a trial in it. */
export interface Side {
  path: string;
  trial: number;
}

export interface CaptureChoice {
  path: string;
  label: string;
  loaded: boolean;
}

/** Every capture a side can compare, once each by path: the viewer's own first, then the ones the
 * server has loaded, then the valid files of the data directory (loaded when chosen). `loadedToo`:
 * paths known to be loaded since the server's list was read (the viewer's, the sides'). */
export function captureChoices(
  caps: CapturesOut | null, files: FilesOut | null, currentPath: string | null, loadedToo: readonly (string | null)[] = [],
): CaptureChoice[] {
  const out = new Map<string, CaptureChoice>();
  const loaded = new Set<string | null>([...(caps?.captures ?? []).map((c) => c.path), currentPath, ...loadedToo]);
  const add = (path: string, name: string, model: string | null | undefined) => {
    if (!out.has(path)) out.set(path, { path, label: model ? `${name} (${model})` : name, loaded: loaded.has(path) });
  };
  const cur = caps?.captures.find((c) => c.path === currentPath);
  const curFile = files?.files.find((f) => f.path === currentPath);
  if (currentPath !== null) add(currentPath, cur?.name ?? curFile?.name ?? currentPath, cur?.model ?? curFile?.model);
  for (const c of caps?.captures ?? []) add(c.path, c.name, c.model);
  for (const f of files?.files ?? []) if (f.valid) add(f.path, f.name, f.model);
  return [...out.values()];
}

/** The trials a capture opens compared (ids; a: the reference), or null when it has fewer than two:
 * - a pair made by `spectra-vis compare`: its reference and candidate;
 * - a steering sweep (`spectra-vis steer try`): the strength-0 baseline and the strongest positive
 *   strength (else the first other strength);
 * - otherwise the first two trials. */
export function defaultPair(trials: readonly TrialBrief[]): { a: number; b: number } | null {
  const ref = trials.find((t) => t.pair?.role === "reference" && t.pair.candidate !== null);
  if (ref?.pair?.candidate !== null && ref?.pair?.candidate !== undefined && trials.some((t) => t.id === ref.pair!.candidate))
    return { a: ref.id, b: ref.pair.candidate };
  const sweep = sweepOf(trials);
  if (sweep && sweep.others.length > 0) {
    const pos = sweep.others.filter((s) => s.strength > 0);
    const b = pos.length > 0 ? pos[pos.length - 1] : sweep.others[0];
    return { a: sweep.baseline, b: b.trial };
  }
  return trials.length >= 2 ? { a: trials[0].id, b: trials[1].id } : null;
}

/** What kind of pair a capture holds: a `spectra-vis compare` pair, a steering sweep, or neither
 * (then the viewer does not bring the Compare view forward when it opens). */
export function pairKind(trials: readonly TrialBrief[]): "pair" | "sweep" | null {
  if (trials.some((t) => t.pair?.role === "reference" && trials.some((u) => u.id === t.pair!.candidate))) return "pair";
  const sweep = sweepOf(trials);
  return sweep && sweep.others.length > 0 ? "sweep" : null;
}

export interface Sweep {
  id: string;
  baseline: number;
  /** Every trial of the sweep (the baseline too), by strength. */
  strengths: { trial: number; strength: number }[];
  /** The steered trials (not the baseline), by strength. */
  others: { trial: number; strength: number }[];
}

/** The capture's first steering sweep whose baseline trial is in the capture, or null. */
export function sweepOf(trials: readonly TrialBrief[]): Sweep | null {
  const first = trials.find((t) => t.sweep && trials.some((u) => u.id === t.sweep!.baseline));
  if (!first?.sweep) return null;
  const { id, baseline } = first.sweep;
  const strengths = trials
    .filter((t) => t.sweep?.id === id)
    .map((t) => ({ trial: t.id, strength: t.sweep!.strength }))
    .sort((x, y) => x.strength - y.strength || x.trial - y.trial);
  return { id, baseline, strengths, others: strengths.filter((s) => s.trial !== baseline) };
}

/** A strength as the picker shows it: signed, shortest form ("+4", "0", "-0.5"). */
export function strengthLabel(s: number): string {
  return s > 0 ? `+${s}` : String(s);
}

/** A trial in a side's picker: its id, its role in a pair or sweep, and the start of its prompt. */
export function trialLabel(t: TrialBrief, width = 28): string {
  const role = t.pair
    ? `${t.pair.role}${t.pair.forced ? ", forced" : ""}`
    : t.sweep
      ? `strength ${strengthLabel(t.sweep.strength)}`
      : t.control
        ? `${t.control.file} × ${strengthLabel(t.control.strength)}`
        : null;
  const prompt = t.prompt.length > width ? `${t.prompt.slice(0, width - 1)}…` : t.prompt;
  return `#${t.id}${role ? ` · ${role}` : ""} · ${prompt}`;
}

/** Where the compare scrubber moves the viewer's cursor: the viewer's own trial when it is one of
 * the two compared in the viewer's capture (`switchTrial` false), else the first compared trial that
 * is in the viewer's capture (the viewer switches to it); null when neither is. */
export function cursorTarget(
  sides: readonly { captureId: string; trial: number }[],
  viewer: { captureId: string | null; trial: number },
): { trial: number; switchTrial: boolean } | null {
  const mine = sides.filter((s) => s.captureId === viewer.captureId);
  if (mine.length === 0) return null;
  if (mine.some((s) => s.trial === viewer.trial)) return { trial: viewer.trial, switchTrial: false };
  return { trial: mine[0].trial, switchTrial: true };
}
