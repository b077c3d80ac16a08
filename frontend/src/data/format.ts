/** Number and label formatting shared by every view (so tests can compare displayed text with the API). */
import type { SpecialLayers } from "./layers";

export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

/** A layer's short label: a special layer (as the API's model profile numbers them) by its role,
 * any other layer as a block (L<n>; also every layer while the special layers are not known). */
export function shortLayer(layer: number, special: SpecialLayers | null): string {
  if (layer === special?.embedding) return "emb";
  if (layer === special?.final_norm) return "norm";
  if (layer === special?.output) return "logits";
  return `L${layer}`;
}

/** Make whitespace in token texts visible. */
export function tokenLabel(text: string): string {
  return text.replace(/\n/g, "⏎").replace(/ /g, "·") || "∅";
}
