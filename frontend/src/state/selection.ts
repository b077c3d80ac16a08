/** Selection logic, pure: which capture the viewer opens first, what choosing a cell selects (and
 * which flow block and token heat-map type follow it), and which cell a heat-map click means. */
import type { CapturesOut, FilesOut, GridCell, GridOut } from "../api/client";
import { isBlock, type SpecialLayers } from "../data/layers";
import type { Action } from "./store";

/** Start with the server's current capture, else the newest valid file; null: nothing to show. */
export function startupPath(caps: CapturesOut, files: FilesOut): string | null {
  const current = caps.captures.find((c) => c.capture_id === caps.current);
  return current?.path ?? files.files.find((f) => f.valid)?.path ?? null;
}

/** Selecting a cell selects its tensor, shows its type in the token heat map and, for a block,
 * opens that block in the flow diagram (before the special layers are known: no block). */
export function selectCell(cell: GridCell, special: SpecialLayers | null): Action {
  const block = special !== null && isBlock(cell.layer, special);
  return { type: "select", id: cell.id, tensorType: cell.type, ...(block ? { flowLayer: cell.layer } : {}) };
}

/** The grid cell at a layer and tensor type (with a value, when asked). */
export function cellAt(grid: GridOut | null, layer: number, type: string, withValue = false): GridCell | undefined {
  return grid?.cells.find((c) => c.layer === layer && c.type === type && (!withValue || c.value !== null));
}

export function cellById(grid: GridOut | null, id: number | null): GridCell | null {
  return id === null ? null : (grid?.cells.find((c) => c.id === id) ?? null);
}
