/** Number formatting shared by every view (so tests can compare displayed text with the API). */
export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

export function layerName(layer: number): string {
  if (layer === -1) return "embedding (-1)";
  if (layer === 998) return "final norm (998)";
  if (layer === 999) return "logits (999)";
  return `layer ${layer}`;
}

export function shortLayer(layer: number): string {
  if (layer === -1) return "emb";
  if (layer === 998) return "norm";
  if (layer === 999) return "logits";
  return `L${layer}`;
}

/** Make whitespace in token texts visible. */
export function tokenLabel(text: string): string {
  return text.replace(/\n/g, "⏎").replace(/ /g, "·") || "∅";
}
