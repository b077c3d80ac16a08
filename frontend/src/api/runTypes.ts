// TEMPORARY: the run payloads of /work/helpers/RUNS_API.md until the backend's routes land and
// src/generated/api.ts carries them; then these become aliases of the generated schemas.
export type RunState = "queued" | "loading" | "running" | "saving" | "done" | "cancelled" | "failed";
export interface RunInfo {
  id: string; model: string; preset: string; prompts: string[]; max_tokens: number; state: RunState; trial: number; n_trials: number;
  step: number; tokens: number; tokens_per_s: number | null; progress: number; file: string | null; error: string | null; created: number;
  events: number; temperature: number; seed: number; chat: string; finished: number | null; subscribers: number;
}
export interface RunsOut { runs: RunInfo[]; allowed: boolean }
export interface ModelFile { name: string; size: number; architecture: string | null; demo: boolean }
export interface ModelFilesOut { models_dir: string; files: ModelFile[] }
export interface RunRequest {
  model: string; prompts: string[]; preset: "observe" | "standard" | "full"; max_tokens: number; temperature?: number; seed?: number | null;
  chat?: "auto" | "chat" | "raw";
}
export interface TrialEvent { trial: number; prompt: string; prompt_text: string; tokens: string[] }
export interface StepEvent {
  trial: number; index: number; kind: "prefill" | "decode"; token: string | null; token_id: number | null; layers: number[]; l2: (number | null)[];
  attn_entropy: (number | null)[] | null; top: { id: number; text: string; logit: number }[]; lens_top1: { layer: number; id: number; text: string; p: number }[] | null;
}
export interface DroppedEvent { count: number }
