/** Geometry of a heat map drawn to a canvas (views/HeatMapCanvas): which cell is under a point, which
 * columns a scrolled viewport shows. Pure functions, tested without a browser. */

export interface HeatGeometry {
  labelW: number; // the row labels' width, left of the first column
  headH: number; // the column labels' height, above the first row
  cellW: number;
  cellH: number;
  rows: number;
  cols: number;
}

/** More cells than this (or more columns than COLS_CANVAS) and the heat map is one canvas, not one
 * SVG element per cell. */
export const CELLS_CANVAS = 4000;
export const COLS_CANVAS = 300;

export function drawsToCanvas(rows: number, cols: number): boolean {
  return rows * cols > CELLS_CANVAS || cols > COLS_CANVAS;
}

/** The cell under content point (x, y) (x includes the horizontal scroll), or null. */
export function cellAtPoint(g: HeatGeometry, x: number, y: number): { r: number; c: number } | null {
  const c = Math.floor((x - g.labelW) / g.cellW);
  const r = Math.floor((y - g.headH) / g.cellH);
  if (x < g.labelW || y < g.headH || c < 0 || r < 0 || c >= g.cols || r >= g.rows) return null;
  return { r, c };
}

/** Columns [first, last) a viewport of `width` pixels scrolled by `scrollLeft` shows (whole or part). */
export function visibleCols(g: HeatGeometry, scrollLeft: number, width: number): [number, number] {
  const first = Math.max(0, Math.floor((scrollLeft - g.labelW) / g.cellW));
  const last = Math.min(g.cols, Math.ceil((scrollLeft + width - g.labelW) / g.cellW) + 1);
  return [first, Math.max(first, last)];
}

/** The scroll position that shows column c, or `scrollLeft` when it is already in view. */
export function scrollToCol(g: HeatGeometry, c: number, scrollLeft: number, width: number): number {
  const x0 = g.labelW + c * g.cellW;
  if (x0 >= scrollLeft + g.labelW && x0 + g.cellW <= scrollLeft + width) return scrollLeft;
  return Math.max(0, x0 - width / 2);
}
