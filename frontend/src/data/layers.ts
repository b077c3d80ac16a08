/** The special layers of the capture's naming scheme (embedding, final norm, logits), as the API sends
 * them (`/api/models`: `special_layers`); every other layer is a block. Pure: no fetching here. */
import type { ModelsOut } from "../api/client";

export interface SpecialLayers {
  embedding: number;
  final_norm: number;
  output: number;
}

function parse(v: unknown): SpecialLayers | null {
  const o = v as Partial<Record<keyof SpecialLayers, unknown>> | null;
  if (!o || typeof o !== "object") return null;
  const { embedding, final_norm, output } = o;
  if (typeof embedding !== "number" || typeof final_norm !== "number" || typeof output !== "number") return null;
  return { embedding, final_norm, output };
}

/** The special layers (null when the API sent an incomplete set). One set for every family: the
 * layer numbering belongs to the naming scheme, not to a family. */
export function specialLayers(models: ModelsOut): SpecialLayers | null {
  return parse(models.special_layers);
}

export function isBlock(layer: number, s: SpecialLayers): boolean {
  return layer !== s.embedding && layer !== s.final_norm && layer !== s.output;
}

export function blockLayers(layers: number[], s: SpecialLayers): number[] {
  return layers.filter((l) => isBlock(l, s));
}

/** The capture's model family, as its model card records it (null when it has none). */
export function familyOf(model: Record<string, unknown> | undefined): string | null {
  return typeof model?.family === "string" ? model.family : null;
}
