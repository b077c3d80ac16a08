/** Value scales for the heat maps and the 3D grid: where a real value sits on the colour ramp /
 * height axis (a position 0..1), and back (the real value at a position, for legend ticks).
 * Pure functions, tested without a browser. Views show real values; only positions are scaled.
 *
 * - `linear`: (v − min) / (max − min) over the finite values (what the API's `intensity` is).
 * - `log`: symmetric log, sign(v)·log10(1 + |v| / floor), then linear between its min and max.
 *   Keeps the sign of signed metrics (mean, min, max) and maps 0 to 0. `floor` is the smallest
 *   non-zero |v|, but never below LOG_DECADES decades under the largest |v|: values below the
 *   floor are squeezed towards 0, values above it get about one step per decade.
 * - `rank`: the percentile of v among the finite values (ties share their mean rank).
 *
 * Every scale is monotonic (non-decreasing in v). Without a value (null, undefined, NaN, ±∞) the
 * position is null; when every value is equal the position is 0.5. */

export type ScaleKind = "linear" | "log" | "rank";
export const SCALE_KINDS: readonly ScaleKind[] = ["linear", "log", "rank"];
export const SCALE_LABELS: Record<ScaleKind, string> = { linear: "linear", log: "log", rank: "rank (percentile)" };

/** The log scale's floor is at most this many decades below the largest |value|. */
export const LOG_DECADES = 6;

export type MaybeNumber = number | null | undefined;

export interface Tick {
  t: number; // position 0..1 on the ramp
  value: number; // the real value there
}

export interface ValueScale {
  kind: ScaleKind;
  min: number | null; // smallest finite value (real)
  max: number | null; // largest finite value (real)
  floor: number | null; // log only: the floor of the symmetric log
  /** Position 0..1 of a real value; null without a finite value. */
  position(v: MaybeNumber): number | null;
  /** The real value at position t (0..1); null when the scale has no values. */
  valueAt(t: number): number | null;
  /** Positions with their real values for a legend: the ends, plus quartiles for log and rank. */
  ticks(): Tick[];
}

const finite = (v: MaybeNumber): v is number => typeof v === "number" && Number.isFinite(v);
const clamp01 = (t: number) => Math.max(0, Math.min(1, t));

/** sign(v) · log10(1 + |v| / floor): odd, monotonic, 0 at 0. */
export function symlog(v: number, floor: number): number {
  return Math.sign(v) * Math.log10(1 + Math.abs(v) / floor);
}

/** The inverse of symlog. */
export function symexp(y: number, floor: number): number {
  return Math.sign(y) * floor * (10 ** Math.abs(y) - 1);
}

/** The smallest non-zero |v|, at least LOG_DECADES decades under the largest; 1 when all are 0. */
export function logFloor(values: readonly number[]): number {
  let lo = Infinity;
  let hi = 0;
  for (const v of values) {
    const a = Math.abs(v);
    if (a > 0 && a < lo) lo = a;
    if (a > hi) hi = a;
  }
  if (hi === 0) return 1;
  return Math.max(lo, hi * 10 ** -LOG_DECADES);
}

/** Build the scale of `kind` over `values` (nulls and non-finite values are ignored). */
export function makeScale(kind: ScaleKind, values: Iterable<MaybeNumber>): ValueScale {
  const vals: number[] = [];
  for (const v of values) if (finite(v)) vals.push(v);
  vals.sort((a, b) => a - b);
  const n = vals.length;
  const min = n ? vals[0] : null;
  const max = n ? vals[n - 1] : null;
  const base = { kind, min, max, floor: null as number | null };

  if (kind === "rank") {
    return withTicks({
      ...base,
      position(v) {
        if (!finite(v) || n === 0) return null;
        if (min === max) return 0.5;
        const below = bisect(vals, v);
        const equal = bisect(vals, v, true) - below;
        const rank = equal > 0 ? below + (equal - 1) / 2 : below - 0.5;
        return clamp01(rank / (n - 1));
      },
      valueAt(t) {
        return n ? vals[Math.round(clamp01(t) * (n - 1))] : null;
      },
    }, [0, 0.25, 0.5, 0.75, 1]);
  }

  if (kind === "log") {
    const floor = logFloor(vals);
    const lo = min === null ? null : symlog(min, floor);
    const hi = max === null ? null : symlog(max, floor);
    return withTicks({
      ...base,
      floor,
      position(v) {
        if (!finite(v) || lo === null || hi === null) return null;
        if (hi === lo) return 0.5;
        return clamp01((symlog(v, floor) - lo) / (hi - lo));
      },
      valueAt(t) {
        if (lo === null || hi === null) return null;
        return symexp(lo + clamp01(t) * (hi - lo), floor);
      },
    }, [0, 0.25, 0.5, 0.75, 1]);
  }

  return withTicks({
    ...base,
    position(v) {
      if (!finite(v) || min === null || max === null) return null;
      if (max === min) return 0.5;
      return clamp01((v - min) / (max - min));
    },
    valueAt(t) {
      return min === null || max === null ? null : min + clamp01(t) * (max - min);
    },
  }, [0, 0.5, 1]);
}

function withTicks(s: Omit<ValueScale, "ticks">, at: number[]): ValueScale {
  return {
    ...s,
    ticks() {
      if (s.min === null || s.max === null) return [];
      if (s.min === s.max) return [{ t: 0.5, value: s.min }];
      return at.map((t) => ({ t, value: t === 0 ? s.min! : t === 1 ? s.max! : s.valueAt(t)! }));
    },
  };
}

/** First index with a[i] >= v (a[i] > v when ``after``), a sorted ascending. */
function bisect(a: number[], v: number, after = false): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < v || (after && a[mid] === v)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
