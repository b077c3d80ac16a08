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

/** What the token's tooltip says it is. */
export function roleLabel(role: TokenRole): string {
  return role === "template" ? "chat template" : role;
}
