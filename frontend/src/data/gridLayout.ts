/** Layout of the 3D tensor grid: one cell per tensor at (type column, layer row), height and glow
 * by the metric's position on the chosen value scale (data/scale; without one, the API's linear
 * `intensity`). Pure: the scene only copies these numbers into one InstancedMesh. */
import type { GridCell, GridOut } from "../api/client";
import { glowColor } from "./colors";
import type { ValueScale } from "./scale";

export const SPACING = 1.2;
export const MIN_HEIGHT = 0.08;
export const MAX_HEIGHT = 3;

export interface CellLayout {
  x: number;
  z: number;
  height: number;
  color: [number, number, number];
}

export function cellHeight(intensity: number | null): number {
  return intensity === null ? MIN_HEIGHT : MIN_HEIGHT + intensity * (MAX_HEIGHT - MIN_HEIGHT);
}

export function gridCenter(grid: Pick<GridOut, "layers" | "types">): [number, number] {
  return [((grid.types.length - 1) * SPACING) / 2, ((grid.layers.length - 1) * SPACING) / 2];
}

export function layoutCell(cell: GridCell, center: [number, number], scale?: ValueScale): CellLayout {
  const intensity = scale ? scale.position(cell.value) : cell.intensity ?? null;
  return {
    x: cell.type_index * SPACING - center[0],
    z: cell.layer_index * SPACING - center[1],
    height: cellHeight(intensity),
    color: glowColor(cell.color, intensity),
  };
}

export function layoutGrid(grid: GridOut, scale?: ValueScale): CellLayout[] {
  const c = gridCenter(grid);
  return grid.cells.map((cell) => layoutCell(cell, c, scale));
}
