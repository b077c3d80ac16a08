/** Plain-words explanations of every component type, from explanations.json (the one source that
 * docs/TENSOR_GUIDE.md is rendered from). Prose only: the metric names and depth levels themselves
 * come from the API (`/api/models`), never from a list here. */
import ex from "./explanations.json";

export interface TypeExplanation {
  category: string;
  title: string;
  text: string;
}
export const explanations = ex as {
  intro: string;
  layers: Record<string, string>;
  categories: Record<string, string>;
  metrics: Record<string, string>;
  depths: string[];
  types: Record<string, TypeExplanation>;
};

/** A metric's name as the selector shows it; the names themselves come from the API (`/api/models`). */
export function metricLabel(metric: string): string {
  return metric === "absmax" ? "abs-max" : metric;
}

/** `Qcur.rope` (a derived op llama.cpp ran on Qcur) is explained by its base type `Qcur`. */
export function explainType(type: string): { base: string; derived: string | null; info: TypeExplanation | null } {
  if (explanations.types[type]) return { base: type, derived: null, info: explanations.types[type] };
  const dot = type.indexOf(".");
  const base = dot > 0 ? type.slice(0, dot) : type;
  return { base, derived: dot > 0 ? type.slice(dot + 1) : null, info: explanations.types[base] ?? null };
}
