/** The steering projection chart, pure: a trial's residual stream (l_out) projected on its control
 * vector's direction (GET /api/trials/{id}/projection, [layer][token] in residual units), read as
 * one line per trial, either per layer (projection against token position) or per token (projection
 * against layer), and laid out in a box with a shared y axis that always shows 0. Tested without a
 * browser. */
import type { ProjectionOut } from "../api/client";

export type ProjectionMode = "layer" | "token";

/** One point of a line: x (token position or layer) and the projection (null: no row there). */
export interface Pt {
  x: number;
  y: number | null;
}

/** The projection at one layer, against token position (empty when the layer has no direction). */
export function alongTokens(p: Pick<ProjectionOut, "layers" | "values">, layer: number): Pt[] {
  const i = p.layers.indexOf(layer);
  if (i < 0) return [];
  return (p.values[i] ?? []).map((y, x) => ({ x, y: finite(y) }));
}

/** The projection at one token position, against layer (null where the token has no row). */
export function alongLayers(p: Pick<ProjectionOut, "layers" | "values">, pos: number): Pt[] {
  return p.layers.map((layer, i) => ({ x: layer, y: finite(p.values[i]?.[pos]) }));
}

/** The layers both projections have directions for (the union, ascending). */
export function projectionLayers(...ps: (Pick<ProjectionOut, "layers"> | null)[]): number[] {
  return [...new Set(ps.flatMap((p) => p?.layers ?? []))].sort((x, y) => x - y);
}

export interface Box {
  width: number;
  height: number;
  pad: number;
}

export interface Layout {
  /** Per line, its segments (runs of consecutive values, broken where a value is missing) as SVG
   * polyline points, and its dots. */
  lines: { segments: string[]; dots: { x: number; y: number; value: number; at: number }[] }[];
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  /** The pixel row of y = 0. */
  zeroY: number;
}

/** Lay lines out in a box: one x range over every line, one y range over every value and 0. */
export function layoutLines(lines: readonly Pt[][], box: Box): Layout {
  const xs = lines.flatMap((l) => l.map((p) => p.x));
  const ys = lines.flatMap((l) => l.flatMap((p) => (p.y === null ? [] : [p.y])));
  const xMin = xs.length ? Math.min(...xs) : 0, xMax = xs.length ? Math.max(...xs) : 1;
  let yMin = Math.min(0, ...ys), yMax = Math.max(0, ...ys);
  if (yMin === yMax) [yMin, yMax] = [yMin - 1, yMax + 1];
  const { width, height, pad } = box;
  const px = (x: number) => pad + (xMax === xMin ? (width - 2 * pad) / 2 : ((x - xMin) / (xMax - xMin)) * (width - 2 * pad));
  const py = (y: number) => pad + ((yMax - y) / (yMax - yMin)) * (height - 2 * pad);
  const out = lines.map((line) => {
    const segments: string[] = [];
    let run: string[] = [];
    const dots: Layout["lines"][number]["dots"] = [];
    for (const p of line) {
      if (p.y === null) {
        if (run.length) segments.push(run.join(" "));
        run = [];
        continue;
      }
      const x = px(p.x), y = py(p.y);
      run.push(`${round(x)},${round(y)}`);
      dots.push({ x, y, value: p.y, at: p.x });
    }
    if (run.length) segments.push(run.join(" "));
    return { segments, dots };
  });
  return { lines: out, xMin, xMax, yMin, yMax, zeroY: py(0) };
}

/** A line's name in the legend: its side, trial and strength. */
export function lineLabel(side: "a" | "b", p: Pick<ProjectionOut, "trial" | "strength">): string {
  const s = p.strength === null ? "no control" : `strength ${p.strength > 0 ? "+" : ""}${p.strength}`;
  return `${side} · #${p.trial} · ${s}`;
}

function finite(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}

const round = (v: number) => Math.round(v * 100) / 100;
