/** Token roles in the timeline: the chat template's own tokens (markers, BOS, which the viewer greys),
 * the user's prompt tokens, and generated tokens. Pure: the API's `template` and `prompt` flags decide. */
import type { TrialOut } from "../api/client";

type TokenOut = TrialOut["tokens"][number];

export type TokenRole = "template" | "prompt" | "generated";

export function tokenRole(t: Pick<TokenOut, "prompt" | "template">): TokenRole {
  if (!t.prompt) return "generated";
  return t.template ? "template" : "prompt";
}

/** The timeline's CSS classes for a token: its role, plus `prompt` for every prompt token. */
export function tokenClasses(t: Pick<TokenOut, "prompt" | "template">): string[] {
  const role = tokenRole(t);
  return role === "template" ? ["prompt", "template"] : [role];
}

/** What the token's tooltip says it is: a marked token of a raw prompt (BOS, a space prefix) was
 * added by the tokenizer, not by a chat template. */
export function roleLabel(role: TokenRole, chat: boolean): string {
  if (role !== "template") return role;
  return chat ? "chat template" : "added by the tokenizer";
}

/** The width in pixels a timeline token's button takes for a label (monospace 12 px, padding, border:
 * a little over, so that a packed row never overflows). */
export function tokenWidth(label: string): number {
  return Math.ceil(label.length * 7.5) + 18;
}

/** Tokens packed into rows of at most `width` pixels, in order, `gap` pixels apart: the indices of
 * each row's tokens (a token wider than a row gets a row of its own). The virtualised strip draws
 * only the rows in view. */
export function packRows(widths: number[], width: number, gap: number): number[][] {
  const rows: number[][] = [];
  let row: number[] = [];
  let used = 0;
  widths.forEach((w, i) => {
    if (row.length && used + gap + w > width) {
      rows.push(row);
      row = [];
      used = 0;
    }
    used += (row.length ? gap : 0) + w;
    row.push(i);
  });
  if (row.length) rows.push(row);
  return rows;
}
