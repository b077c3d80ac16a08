/** The comparison of two trials (/api/compare), pure: which trials to compare by default, where the
 * two next-token predictions disagree, the diverging colour of a signed change, the drift curve's
 * points and the lines the panel shows. Tested without a browser. */
import type { ComparisonOut } from "../api/client";
import { hexToRgb, rgbToHex } from "./colors";
import { fmt, tokenLabel } from "./format";

type NextToken = NonNullable<ComparisonOut["next_token"]>;
type Summary = ComparisonOut["summary"];

/** A trial as the compare API names it: `capture_id:trial`. */
export const trialRef = (captureId: string, trial: number) => `${captureId}:${trial}`;

/** The trials compared when the panel opens: 0 (the reference) and 1, when there are two or more. */
export function defaultPair(nTrials: number): { a: number; b: number } | null {
  return nTrials >= 2 ? { a: 0, b: 1 } : null;
}

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

/** What the scrubber shows at a position: both top-1 next tokens and the KL. */
export function positionLine(next: NextToken | null, pos: number): string {
  const id = (v: number | null | undefined) => (v === null || v === undefined ? "—" : String(v));
  return `a: ${id(next?.top1_a[pos])} b: ${id(next?.top1_b[pos])} KL ${fixed(next?.kl[pos], 5)}`;
}

/** The token strip's title at a position. */
export function tokenTitle(text: string, next: NextToken | null, pos: number): string {
  return `#${pos} “${tokenLabel(text)}” · KL ${fixed(next?.kl[pos], 5)}`;
}

/** Where the scrubber starts: the first position with a next-token KL, else 0. */
export function firstScored(next: NextToken | null): number {
  const i = next?.kl.findIndex((v) => v !== null) ?? -1;
  return i < 0 ? 0 : i;
}
