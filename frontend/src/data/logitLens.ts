/** Logit-lens data: the layers × tokens grid model built from /api/trials/{id}/lens, its layout in
 * pixels, a cell's colour from its top-1 probability, and the line marking where each token's final
 * prediction first becomes top-1. Pure functions, tested without a browser; no fetching here.
 *
 * Rows are in the API's layer order, top to bottom: layer 0 at the top and the last layer (whose
 * top-1 is the model's own prediction) at the bottom, as in the heat maps. */
import type { LensGridOut } from "../api/client";
import { hexToRgb, rampColor } from "./colors";
import { drawsToCanvas, type HeatGeometry } from "./heatGeometry";

/** The tensor type whose rows the lens reads (the residual stream after a block, blocks.L.hook_resid_post). */
export const LENS_TENSOR_TYPE = "l_out";

/** The fill of a cell without a lens row (llama.cpp computed none there). */
export const NO_ROW_COLOR = "#1e2433";

export interface LensCell {
  layer: number;
  pos: number;
  text: string | null; // top-1 token text; null: no row
  p: number | null; // its probability 0..1
  nextRank: number | null; // rank of the token that actually came next (0: top-1)
}

export interface LensModel {
  layers: number[]; // row i is layers[i], top to bottom
  tokens: string[]; // column j is position j
  nPrompt: number;
  rows: LensCell[][]; // [row][position]
  firstFinal: (number | null)[]; // per position: the first layer whose top-1 is the last layer's
}

/** The grid model of an API payload (rows in its layer order; a missing value becomes null). */
export function lensModel(g: LensGridOut): LensModel {
  const rows = g.layers.map((layer, i) =>
    g.tokens.map((_, pos) => {
      const text = g.top_texts[i]?.[pos] ?? null;
      return { layer, pos, text, p: text === null ? null : (g.top_p[i]?.[pos] ?? null), nextRank: g.next_rank[i]?.[pos] ?? null };
    }),
  );
  return { layers: g.layers, tokens: g.tokens, nPrompt: g.n_prompt, rows, firstFinal: g.tokens.map((_, pos) => g.first_final_layer[pos] ?? null) };
}

/** A cell's fill: its probability on the colour ramp, absolute (0 at the ramp's start, 1 at its end),
 * so colours compare across trials and captures; NO_ROW_COLOR without a probability. */
export function lensColor(p: number | null, ramp: string[]): string {
  if (p === null || !Number.isFinite(p)) return NO_ROW_COLOR;
  return rampColor(ramp, Math.max(0, Math.min(1, p)));
}

/** Dark text on a light fill, light text on a dark one (relative luminance, sRGB weights). */
export function textColorOn(fill: string): string {
  const [r, g, b] = hexToRgb(fill);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 > 0.55 ? "#0b1222" : "#f1f5f9";
}

/** Pixel layout of the grid: a label column on the left, a header row of token texts on top. */
export interface LensLayout {
  cellW: number;
  cellH: number;
  labelW: number;
  headH: number;
}

export const LENS_LAYOUT: LensLayout = { cellW: 56, cellH: 20, labelW: 44, headH: 64 };

export const cellX = (pos: number, l: LensLayout = LENS_LAYOUT) => l.labelW + pos * l.cellW;
export const cellY = (row: number, l: LensLayout = LENS_LAYOUT) => l.headH + row * l.cellH;

export function gridSize(m: LensModel, l: LensLayout = LENS_LAYOUT): { width: number; height: number } {
  return { width: cellX(m.tokens.length, l), height: cellY(m.layers.length, l) };
}

/** The grid as the canvas heat map's geometry (data/heatGeometry: cell under a point, columns in view). */
export function lensGeometry(m: LensModel, l: LensLayout = LENS_LAYOUT): HeatGeometry {
  return { ...l, rows: m.layers.length, cols: m.tokens.length };
}

/** A grid of more cells than the heat map draws as elements is drawn to a canvas (same threshold). */
export function lensDrawsToCanvas(m: LensModel): boolean {
  return drawsToCanvas(m.layers.length, m.tokens.length);
}

/** A token's text cut to fit `width` pixels of 11 px monospace (about 6.7 px a character), with an
 * ellipsis when cut; "" when not even one character and the ellipsis fit. */
export function fitText(text: string, width: number, charW = 6.7): string {
  const n = Math.floor(width / charW);
  if (text.length <= n) return text;
  return n < 2 ? "" : `${text.slice(0, n - 1)}…`;
}

export interface FinalMark {
  pos: number;
  layer: number;
  x1: number;
  x2: number;
  y: number; // the top edge of that layer's cell: below it the final prediction has appeared
}

/** The first-final-layer line: one horizontal mark per position that has one, on the top edge of the
 * first layer whose top-1 is the final prediction, and an SVG path joining neighbouring marks with
 * vertical steps (a gap where a position has none). A layer not in the grid is left out. */
export function firstFinalLine(m: LensModel, l: LensLayout = LENS_LAYOUT): { marks: FinalMark[]; d: string } {
  const marks: FinalMark[] = [];
  m.firstFinal.forEach((layer, pos) => {
    const row = layer === null ? -1 : m.layers.indexOf(layer);
    if (layer === null || row < 0) return;
    marks.push({ pos, layer, x1: cellX(pos, l), x2: cellX(pos + 1, l), y: cellY(row, l) });
  });
  const parts: string[] = [];
  marks.forEach((k, i) => {
    const prev = marks[i - 1];
    parts.push(prev && prev.pos === k.pos - 1 ? `V${k.y}H${k.x2}` : `M${k.x1} ${k.y}H${k.x2}`);
  });
  return { marks, d: parts.join("") };
}
