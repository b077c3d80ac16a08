// The data of a run's Server-Sent Events other than RunInfo (docs/API.md, GET /api/runs/{id}/events).
// The OpenAPI schema describes the stream as text/event-stream without a schema for its events, so
// these are written from docs/API.md's table; RunInfo and every JSON route's payload are generated.
export interface TrialEvent { trial: number; prompt: string; prompt_text: string; tokens: string[]; token_ids?: number[] }
export interface StepEvent {
  trial: number; index: number; kind: "prefill" | "decode"; pos?: number; n_tokens?: number; ms?: number | null; decoded_at?: number;
  token: string | null; token_id: number | null; layers: number[]; l2: (number | null)[];
  attn_entropy: (number | null)[] | null; top: { id: number; text: string; logit: number }[];
  lens_top1: { layer: number; id: number; text: string; p: number }[] | null;
}
export interface DroppedEvent { count: number; first?: number; last?: number; total?: number }
