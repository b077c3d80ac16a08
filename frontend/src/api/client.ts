/** The REST API client (docs/API.md). Types come from src/generated/api.ts, generated from the
 * backend's OpenAPI schema; nothing here retypes a payload. Every failure becomes an ApiError with
 * the server's one-line message, which the views show to the user. No cache here: api/queries.ts
 * owns the one cache and every cache key. */
import type { components } from "../generated/api";

type S = components["schemas"];
export type FilesOut = S["FilesOut"];
export type FileInfo = S["FileInfo"];
export type CapturesOut = S["CapturesOut"];
export type LoadOut = S["LoadOut"];
export type UploadOut = S["UploadOut"];
export type LoadingOut = S["LoadingOut"];
export type LoadingInfo = S["LoadingInfo"];
export type TrialBrief = S["TrialBrief"];
export type ColorsOut = S["ColorsOut"];
export type FlowsOut = S["FlowsOut"];
export type ModelsOut = S["ModelsOut"];
export type GridOut = S["GridOut"];
export type GridCell = S["GridCell"];
export type HeatmapOut = S["HeatmapOut"];
export type TrialOut = S["TrialOut"];
export type TokenOut = S["TokenOut"];
export type StepOut = S["StepOut"];
export type StepTensor = S["StepTensor"];
export type AttentionOut = S["AttentionOut"];
export type TokenAttention = S["TokenAttention"];
export type InterpretationOut = S["InterpretationOut"];
export type StepState = S["StepState"];
export type LensGridOut = S["LensGridOut"];
export type LensCellOut = S["LensCellOut"];
export type ComparisonOut = S["ComparisonOut"];
export type ProjectionOut = S["ProjectionOut"];
export type Metric = S["GridRequest"]["metric"] & string;
export type ModelFilesOut = S["ModelFilesOut"];
export type RunInfo = S["RunInfo"];
export type RunRequest = S["RunIn"];
export type RunsOut = S["RunsOut"];
export type { DroppedEvent, StepEvent, TrialEvent } from "./runTypes"; // the SSE events' data (no OpenAPI schema)

export type GridQuery = { capture_id: string; trial_id: number; step: number; metric: Metric; depth: number };
export type HeatmapQuery = { capture_id: string; trial_id: number; metric: Metric; axis: "types" | "tokens"; step?: number; type?: string };
export type LensCellQuery = { capture_id: string; trial_id: number; layer: number; token: number; k?: number };
/** start/stop: steps of a whole-trial query (no step, no token); `api.attention` reads every page when stop is left out. */
export type AttentionQuery = { capture_id: string; trial_id: number; step?: number; layer?: number; head?: number; token?: number; target?: number; start?: number; stop?: number };
/** Steps start..stop-1 of a trial's interpretation; delta false: no delta bars (docs/API.md). */
export type InterpretationPage = { start?: number; stop?: number; delta?: boolean };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Every page of a whole-trial answer: the server sends a page of its byte budget when no `stop` is
 * given and says where the next starts (`next`, and `next_pos` when a step is split between pages;
 * docs/API.md, "Pages of a long trial"); this asks again from there until the end and joins each
 * page's lists into the first (`join`). */
export async function allPages<T extends { stop: number; next: number | null; next_pos?: number | null }>(
  get: (start: number, pos?: number) => Promise<T>, start: number, join: (into: T, page: T) => void,
): Promise<T> {
  const out = await get(start);
  while (out.next !== null) {
    const page = await get(out.next, out.next_pos ?? undefined);
    join(out, page);
    out.stop = page.stop;
    out.next = page.next;
    if (out.next_pos !== undefined) out.next_pos = page.next_pos;
  }
  return out;
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach the Spectra Vis server (${path}): ${(e as Error).message}`);
  }
  return answer<T>(path, resp.status, await resp.text());
}

/** An answer's body, or the API's one-line error as an ApiError. */
function answer<T>(path: string, status: number, text: string): T {
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(status, `${path}: HTTP ${status}, the answer is not JSON`);
  }
  if (status < 200 || status >= 300) {
    const msg = (body as { error?: string } | null)?.error ?? `HTTP ${status}`;
    throw new ApiError(status, msg);
  }
  return body as T;
}

/** A POST of a form through XMLHttpRequest, whose upload reports the bytes sent (fetch does not). */
function postWithProgress<T>(path: string, body: FormData, onProgress: (sent: number, total: number) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onerror = () => reject(new ApiError(0, `cannot reach the Spectra Vis server (${path})`));
    xhr.onload = () => {
      try {
        resolve(answer<T>(path, xhr.status, xhr.responseText));
      } catch (e) {
        reject(e as Error);
      }
    };
    xhr.send(body);
  });
}

function qs(params: Record<string, string | number | null | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** The header that carries a run token (servers started with --allow-runs); none when null. */
export const tokenHeaders = (token: string | null): Record<string, string> => (token ? { "X-Spectra-Token": token } : {});

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});

export const api = {
  files: () => request<FilesOut>("/api/files"),
  captures: () => request<CapturesOut>("/api/captures"),
  load: (filepath: string) => request<LoadOut>("/api/load", json({ filepath })),
  /** The index builds running now (a first load of a capture saved without its index). */
  loading: () => request<LoadingOut>("/api/loading"),
  /** A capture (or trace) as `file`; its .vectors.safetensors companion, if any, as `vectors`. */
  /** With onProgress (and XMLHttpRequest), the bytes sent are reported as they go. */
  upload: (file: File, vectors?: File | null, onProgress?: (sent: number, total: number) => void) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (vectors) form.append("vectors", vectors, vectors.name);
    if (onProgress && typeof XMLHttpRequest !== "undefined") return postWithProgress<UploadOut>("/api/upload", form, onProgress);
    return request<UploadOut>("/api/upload", { method: "POST", body: form });
  },
  colors: () => request<ColorsOut>("/api/colors"),
  models: () => request<ModelsOut>("/api/models"),
  flows: (model_family: string | null) => request<FlowsOut>(`/api/flows${qs({ model_family })}`),
  grid: (b: GridQuery) => request<GridOut>("/api/tensor-grid", json(b)),
  heatmap: (q: HeatmapQuery) => request<HeatmapOut>(`/api/heatmap${qs(q)}`),
  trial: (capture_id: string, trial_id: number) => request<TrialOut>(`/api/trials/${trial_id}${qs({ capture_id })}`),
  step: (capture_id: string, trial_id: number, n: number) =>
    request<StepOut>(`/api/trials/${trial_id}/steps/${n}${qs({ capture_id })}`),
  /** Attention; a whole-trial query without `stop` is read page by page and joined (`allPages`). */
  attention: (q: AttentionQuery) => {
    const get = (start?: number, pos?: number) => request<AttentionOut>(`/api/attention${qs({ ...q, start, pos })}`);
    if (q.step !== undefined || q.token !== undefined || q.stop !== undefined) return get(q.start);
    return allPages(get, q.start ?? 0, (into, page) => void into.tokens.push(...page.tokens));
  },
  /** The interpretation of steps start..stop-1; without `stop`, every page to the trial's end, joined. */
  interpretation: (capture_id: string, trial_id: number, page: InterpretationPage = {}) => {
    const get = (start?: number) =>
      request<InterpretationOut>(`/api/trials/${trial_id}/interpretation${qs({ capture_id, start, stop: page.stop, delta: page.delta === undefined ? undefined : String(page.delta) })}`);
    if (page.stop !== undefined) return get(page.start);
    return allPages(get, page.start ?? 0, (into, p) => {
      into.zones.push(...p.zones);
      into.states.push(...p.states);
    });
  },
  lens: (capture_id: string, trial_id: number) => request<LensGridOut>(`/api/trials/${trial_id}/lens${qs({ capture_id })}`),
  lensCell: ({ trial_id, ...q }: LensCellQuery) => request<LensCellOut>(`/api/trials/${trial_id}/lens${qs(q)}`),
  /** Two trials compared, each as `capture_id:trial` (a: the reference). */
  compare: (a: string, b: string) => request<ComparisonOut>(`/api/compare${qs({ a, b })}`),
  /** A steered trial's residual projection on its control vector's direction (404: no control). */
  projection: (capture_id: string, trial_id: number) =>
    request<ProjectionOut>(`/api/trials/${trial_id}/projection${qs({ capture_id })}`),
  // Live runs (docs/API.md): every runs route sends the run token when there is one.
  modelFiles: () => request<ModelFilesOut>("/api/models/files"),
  runs: (token: string | null) => request<RunsOut>("/api/runs", { headers: tokenHeaders(token) }),
  startRun: (body: RunRequest, token: string | null) => {
    const init = json(body);
    return request<RunInfo>("/api/runs", { ...init, headers: { ...(init.headers as Record<string, string>), ...tokenHeaders(token) } });
  },
  /** A running run's capture so far (capture id run-<id>, which every view route takes). */
  runCapture: (id: string, token: string | null) =>
    request<LoadOut>(`/api/runs/${encodeURIComponent(id)}/capture`, { headers: tokenHeaders(token) }),
  cancelRun: (id: string, token: string | null) =>
    request<RunInfo>(`/api/runs/${encodeURIComponent(id)}`, { method: "DELETE", headers: tokenHeaders(token) }),
};
