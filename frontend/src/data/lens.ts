/** Token Lens data: which positions a token attends to, which tokens attend to it, and where each
 * token sits on the lens strip. Pure functions over /api/attention payloads. */
import type { AttentionOut } from "../api/client";

export interface Link {
  from: number; // query position
  to: number; // attended position
  p: number; // probability (mean over heads when no head is chosen)
}

/** Links of one layer's payload (every token, one layer) touching `focus`: out = what focus attends
 * to, in = tokens that attend to focus. `head` null: each position's probability averaged over heads
 * (a head whose top-k left a position out counts 0 for it). */
export function focusLinks(att: AttentionOut, focus: number, head: number | null): { out: Link[]; in: Link[] } {
  const nHead = Math.max(1, att.n_head);
  const linksOf = (t: AttentionOut["tokens"][number]): Link[] => {
    const layer = t.layers[0];
    if (!layer) return [];
    const acc = new Map<number, number>();
    for (const e of layer.edges) {
      if (head !== null && e.head !== head) continue;
      acc.set(e.pos, (acc.get(e.pos) ?? 0) + e.p);
    }
    return [...acc].map(([to, p]) => ({ from: t.pos, to, p: head === null ? p / nHead : p }));
  };
  const self = att.tokens.find((t) => t.pos === focus);
  const out = self ? linksOf(self).sort((a, b) => b.p - a.p) : [];
  const incoming: Link[] = [];
  for (const t of att.tokens) {
    if (t.pos === focus) continue;
    for (const l of linksOf(t)) if (l.to === focus) incoming.push(l);
  }
  return { out, in: incoming.sort((a, b) => b.p - a.p) };
}

export interface TokenBox {
  pos: number;
  x: number;
  w: number;
}

export const CHAR_W = 7;
export function stripLayout(texts: string[], gap = 4): TokenBox[] {
  let x = 4;
  return texts.map((t, pos) => {
    const w = 10 + CHAR_W * Math.min(Math.max(t.length, 1), 12);
    const box = { pos, x, w };
    x += w + gap;
    return box;
  });
}

/** The boxes [first, last) that overlap pixels [left, right) of the strip (boxes in order, as
 * stripLayout lays them out): the strip draws only these. */
export function boxesInView(boxes: TokenBox[], left: number, right: number): [number, number] {
  const firstEndingAfter = (x: number) => { // the first box whose right edge is past x
    let lo = 0, hi = boxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (boxes[mid].x + boxes[mid].w > x) hi = mid; else lo = mid + 1;
    }
    return lo;
  };
  const first = firstEndingAfter(left);
  let last = first;
  while (last < boxes.length && boxes[last].x < right) last++;
  return [first, last];
}

/** Positions a trial evaluated (each had a query row in some step): 0..end-1. The token sampled at
 * the last step was never fed back, so it has no attention of its own (only edges could point at
 * it, and none do): asking for it would be a 404. */
export function evaluatedEnd(steps: readonly { pos: number; n_tokens: number }[]): number {
  let end = 0;
  for (const s of steps) end = Math.max(end, s.pos + s.n_tokens);
  return end;
}
