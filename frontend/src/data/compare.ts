/** The comparison of two trials (/api/compare), pure: where the two next-token predictions disagree,
 * the diverging colour of a signed change, the layers x tensor types heat map of one statistic, the
 * drift curve's points, the KL per token and the lines the panel shows. Which trials are compared:
 * data/comparePick.ts. Tested without a browser. */
import type { ComparisonOut } from "../api/client";
import { hexToRgb, rgbToHex } from "./colors";
import { fmt, tokenLabel } from "./format";

type NextToken = NonNullable<ComparisonOut["next_token"]>;
type Summary = ComparisonOut["summary"];

/** A trial as the compare API names it: `capture_id:trial`. */
export const trialRef = (captureId: string, trial: number) => `${captureId}:${trial}`;

/** Whether both trials predict a next token at `pos` and the two top-1 tokens differ. */
export function disagreesAt(next: NextToken | null, pos: number): boolean {
  const a = next?.top1_a[pos], b = next?.top1_b[pos];
  return a !== null && a !== undefined && b !== null && b !== undefined && a !== b;
}

/** The positions where the two top-1 next tokens differ (both known). */
export function disagreements(next: NextToken | null): number[] {
  if (!next) return [];
  return next.top1_a.flatMap((_, pos) => (disagreesAt(next, pos) ? [pos] : []));
}

/** Where the two top-1 next tokens change (both known, different), with each run's token. */
export function topChanges(next: NextToken | null, vocab?: ReadonlyMap<number, string>): { pos: number; a: string; b: string }[] {
  return disagreements(next).map((pos) => ({ pos, a: idLabel(next!.top1_a[pos], vocab), b: idLabel(next!.top1_b[pos], vocab) }));
}

/** The largest |value| over the finite values (the domain is [-m, m]); 1 when there is none or all are 0. */
export function symmetricMax(rows: readonly (readonly (number | null)[])[]): number {
  let m = 0;
  for (const row of rows) for (const v of row) if (v !== null && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m > 0 ? m : 1;
}

export const DIVERGING = { neg: "#2166ac", mid: "#f7f7f7", pos: "#b2182b", none: "#3f3f46" } as const;

/** Blue (−m) – white (0) – red (+m), clamped beyond ±m; grey without a value. */
export function divergingColor(v: number | null | undefined, m: number): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DIVERGING.none;
  const t = Math.max(-1, Math.min(1, m > 0 ? v / m : 0));
  const from = hexToRgb(DIVERGING.mid);
  const to = hexToRgb(t < 0 ? DIVERGING.neg : DIVERGING.pos);
  const f = Math.abs(t);
  return rgbToHex([from[0] + (to[0] - from[0]) * f, from[1] + (to[1] - from[1]) * f, from[2] + (to[2] - from[2]) * f]);
}

/** A value with fixed decimals; "—" without one. */
export function fixed(v: number | null | undefined, digits = 6): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : v.toFixed(digits);
}

export interface DriftPoint {
  layer: number;
  value: number;
  x: number;
  y: number;
}

/** The drift curve in a width x height box (pad px inside): one point per layer with a value, the
 * y axis from the smallest to the largest drift (higher drift, closer to the top). */
export function driftPoints(layers: readonly number[], drift: readonly (number | null)[] | null, width: number, height: number, pad = 4): DriftPoint[] {
  if (!drift) return [];
  const vals = drift.filter((v): v is number => v !== null && Number.isFinite(v));
  if (vals.length === 0) return [];
  const lo = Math.min(...vals), hi = Math.max(...vals);
  const n = layers.length;
  return layers.flatMap((layer, i) => {
    const v = drift[i];
    if (v === null || v === undefined || !Number.isFinite(v)) return [];
    const x = pad + (n > 1 ? (i / (n - 1)) * (width - 2 * pad) : (width - 2 * pad) / 2);
    const y = hi === lo ? height / 2 : pad + ((hi - v) / (hi - lo)) * (height - 2 * pad);
    return [{ layer, value: v, x, y }];
  });
}

/** The summary line: mean KL, top-1 agreement, mean cosine and the tokens shared. */
export function summaryLine(s: Summary): string {
  const parts = [
    `mean KL ${s.mean_kl === null || s.mean_kl === undefined ? "—" : `${fmt(s.mean_kl)} nats`}`,
    `top-1 agreement ${s.top1_agreement === null || s.top1_agreement === undefined ? "—" : `${(s.top1_agreement * 100).toFixed(1)}%`}`,
    `mean cosine ${fixed(s.mean_cosine, 4)}`,
    `${s.n_shared} shared tokens`,
  ];
  if (s.diverge_at !== null) parts.push(`diverges at token ${s.diverge_at}`);
  return parts.join(" · ");
}

/** Token id -> text, from token lists (the compared trials' tokens); the first text seen wins. */
export function vocabOf(...lists: readonly (readonly { id: number; text: string }[] | null | undefined)[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const list of lists) for (const t of list ?? []) if (!out.has(t.id)) out.set(t.id, t.text);
  return out;
}

/** A token id as the scrubber shows it: its text when known, and the id. */
export function idLabel(id: number | null | undefined, vocab?: ReadonlyMap<number, string>): string {
  if (id === null || id === undefined) return "—";
  const text = vocab?.get(id);
  return text === undefined ? `#${id}` : `“${tokenLabel(text)}” #${id}`;
}

/** What the scrubber shows of both runs at a position: each run's top-1 next token, the probability
 * it gives to the token that came next in the other run, and KL(a || b). */
export function positionLine(next: NextToken | null, pos: number, vocab?: ReadonlyMap<number, string>): string {
  const a = `a → ${idLabel(next?.top1_a[pos], vocab)} (p of b’s next ${fixed(next?.p_a_of_b[pos], 4)})`;
  const b = `b → ${idLabel(next?.top1_b[pos], vocab)} (p of a’s next ${fixed(next?.p_b_of_a[pos], 4)})`;
  return `${a} · ${b} · KL ${fixed(next?.kl[pos], 5)}`;
}

/** Each position's KL as a fraction of the largest finite KL (0..1), null without one; n positions. */
export function klFractions(next: NextToken | null, n: number): (number | null)[] {
  const kl = next?.kl ?? [];
  let m = 0;
  for (let i = 0; i < n; i++) {
    const v = kl[i];
    if (v !== null && v !== undefined && Number.isFinite(v)) m = Math.max(m, v);
  }
  return Array.from({ length: n }, (_, i) => {
    const v = kl[i];
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    return m > 0 ? Math.max(0, v) / m : 0;
  });
}

/** The statistics the types heat map offers: those with a finite value somewhere, l2 first. */
export function statChoices(stats: ComparisonOut["stats"]): string[] {
  const have = Object.keys(stats).filter((k) => stats[k].some((row) => row.some((v) => v !== null && Number.isFinite(v))));
  return [...have.filter((k) => k === "l2"), ...have.filter((k) => k !== "l2")];
}

/** The layers x tensor types heat map of one statistic's relative change: only the types with a
 * value in some layer (a preset that did not read a type leaves no empty column). */
export function typeHeat(data: Pick<ComparisonOut, "types" | "stats">, stat: string): { types: string[]; rows: (number | null)[][] } {
  const rows = data.stats[stat] ?? [];
  const keep = data.types.flatMap((_, j) => (rows.some((row) => row[j] !== null && row[j] !== undefined) ? [j] : []));
  return { types: keep.map((j) => data.types[j]), rows: rows.map((row) => keep.map((j) => row[j] ?? null)) };
}

/** The token strip's title at a position. */
export function tokenTitle(text: string, next: NextToken | null, pos: number, vocab?: ReadonlyMap<number, string>): string {
  const head = `#${pos} “${tokenLabel(text)}” · KL ${fixed(next?.kl[pos], 5)}`;
  const a = next?.top1_a[pos], b = next?.top1_b[pos];
  if ((a === null || a === undefined) && (b === null || b === undefined)) return head;
  return `${head} · top-1 a ${idLabel(a, vocab)}, b ${idLabel(b, vocab)}`;
}

type Progress = ComparisonOut["next_token_progress"];

/** How far the server's pass over the output heads has come, 0..1 (0 until it knows the total);
 * null when nothing is pending. */
export function pendingFraction(progress: Progress): number | null {
  if (!progress) return null;
  return progress.total > 0 ? Math.min(1, Math.max(0, progress.done / progress.total)) : 0;
}

/** The line shown where the KL bars and the scrubber's values go while the block is computed. */
export function pendingLine(progress: Progress): string | null {
  const f = pendingFraction(progress);
  return f === null ? null : `next-token KL over the vocabulary: ${Math.floor(f * 100)}%`;
}

/** Where the scrubber starts: the first position with a next-token KL, else 0. */
export function firstScored(next: NextToken | null): number {
  const i = next?.kl.findIndex((v) => v !== null) ?? -1;
  return i < 0 ? 0 : i;
}
