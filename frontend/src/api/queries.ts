/** The viewer's data layer: one hook per API resource over one TanStack Query cache. Every cache key
 * is built here, once (`keys`), so two views asking for the same resource share one request and one
 * copy. Captures do not change once loaded: nothing goes stale, and a failure is shown at once (no
 * retry). Hooks take what they need as arguments (null: nothing to load) and never read the store. */
import {
  QueryClient, keepPreviousData, queryOptions, useQueries, useQuery, useQueryClient, type UseQueryResult,
} from "@tanstack/react-query";
import { useEffect, useState } from "react";
import {
  ApiError, api, type AttentionQuery, type InterpretationPage, type CapturesOut, type FilesOut, type GridQuery, type HeatmapQuery, type LensCellQuery,
  type LensGridOut, type LoadOut, type LoadingInfo, type Metric, type ModelsOut, type ProjectionOut, type RunInfo, type RunRequest, type RunsOut, type StepOut,
} from "./client";
import { specialLayers, type SpecialLayers } from "../data/layers";

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { staleTime: Infinity, retry: false, refetchOnWindowFocus: false, refetchOnReconnect: false },
    },
  });
}

export const keys = {
  files: ["files"] as const,
  captures: ["captures"] as const,
  colors: ["colors"] as const,
  models: ["models"] as const,
  startup: ["startup"] as const,
  capture: (path: string) => ["capture", path] as const,
  flows: (family: string | null) => ["flows", family] as const,
  grid: (q: GridQuery) => ["grid", q.capture_id, q.trial_id, q.step, q.metric, q.depth] as const,
  heatmap: (q: HeatmapQuery) => ["heatmap", q] as const,
  trial: (cid: string, tid: number) => ["trial", cid, tid] as const,
  step: (cid: string, tid: number, n: number) => ["step", cid, tid, n] as const,
  attention: (q: AttentionQuery) => ["attention", q] as const,
  interpretation: (cid: string, tid: number, page: InterpretationPage) => ["interpretation", cid, tid, page] as const,
  lens: (cid: string, tid: number) => ["lens", cid, tid] as const,
  lensCell: (q: LensCellQuery) => ["lensCell", q.capture_id, q.trial_id, q.layer, q.token, q.k ?? 5] as const,
  compare: (a: string, b: string) => ["compare", a, b] as const,
  projection: (cid: string, tid: number) => ["projection", cid, tid] as const,
  modelFiles: ["modelFiles"] as const,
  runs: ["runs"] as const,
};

/** What a view reads of a query: its data (kept from the previous key while the next one loads),
 * its one-line error, and whether a request is running. Disabled (nothing to load): all empty. */
export interface Async<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

function asAsync<T>(q: UseQueryResult<T, Error>, enabled: boolean): Async<T> {
  if (!enabled) return { data: null, error: null, loading: false };
  return { data: q.error ? null : (q.data ?? null), error: q.error?.message ?? null, loading: q.isFetching };
}

// ----- options (shared by the hooks, the startup query and the tests) ----------------------
const filesOptions = () => queryOptions({ queryKey: keys.files, queryFn: api.files });
const capturesOptions = () => queryOptions({ queryKey: keys.captures, queryFn: api.captures });
const modelsOptions = () => queryOptions({ queryKey: keys.models, queryFn: api.models });
/** The viewer's "path" of a running run's capture so far (GET /api/runs/{id}/capture), and its capture id. */
export const LIVE_PATH = "run:";
export const livePath = (runId: string) => `${LIVE_PATH}${runId}`;
export const liveCaptureId = (runId: string) => `run-${runId}`;
function runToken(): string | null {
  try {
    return sessionStorage.getItem("spectra-vis-run-token") || null; // state/live.tsx keeps it there
  } catch {
    return null;
  }
}
const loadPath = (path: string) =>
  path.startsWith(LIVE_PATH) ? api.runCapture(path.slice(LIVE_PATH.length), runToken()) : api.load(path);
const captureOptions = (path: string) => queryOptions({ queryKey: keys.capture(path), queryFn: () => loadPath(path) });
const stepOptions = (cid: string, tid: number, n: number) =>
  queryOptions({ queryKey: keys.step(cid, tid, n), queryFn: () => api.step(cid, tid, n), placeholderData: keepPreviousData });

/** A running run's capture so far, read again (GET /api/runs/{id}/capture). */
export const refreshLive = (qc: QueryClient, runId: string): Promise<LoadOut> =>
  qc.fetchQuery({ ...captureOptions(livePath(runId)), staleTime: 0 });

/** One trial of a running run's capture, read again (the timeline's query: its step count). */
export function refreshLiveTrial(qc: QueryClient, runId: string, tid: number) {
  const cid = liveCaptureId(runId);
  return qc.fetchQuery({ queryKey: keys.trial(cid, tid), queryFn: () => api.trial(cid, tid), staleTime: 0 });
}

/** Mark the other payloads of a running run's capture stale, so each view showing one reads it
 * again: not its steps (a captured step never changes), nor the capture and its trials (read by
 * refreshLive and refreshLiveTrial, so the step put in the viewer is the timeline's last). */
export function invalidateLive(qc: QueryClient, runId: string): void {
  const cid = `"${liveCaptureId(runId)}"`;
  const fresh = new Set(["capture", "step", "trial"]);
  void qc.invalidateQueries({ predicate: (q) => !fresh.has(String(q.queryKey[0])) && JSON.stringify(q.queryKey).includes(cid) });
}

// ----- hooks -----------------------------------------------------------------------------
export const useFiles = () => asAsync(useQuery(filesOptions()), true);

/** The captures the server has loaded (the compare view's pickers). */
export const useCaptures = () => asAsync(useQuery(capturesOptions()), true);

export const useColors = () => asAsync(useQuery({ queryKey: keys.colors, queryFn: api.colors }), true);

/** The loaded capture (POST /api/load once per file; the captures panel and startup seed it). */
export function useCapture(path: string | null): Async<LoadOut> {
  const q = useQuery({ ...captureOptions(path ?? ""), enabled: path !== null });
  return asAsync(q, path !== null);
}

/** The special layers the API sends (one set for every family). */
export function useSpecialLayers(): Async<SpecialLayers> {
  const a = asAsync(useQuery({ ...modelsOptions(), select: specialLayers }), true);
  if (a.data !== null || a.error || a.loading) return { ...a, data: a.data };
  return { data: null, error: "the API sent no special layers", loading: false };
}

/** What the selectors offer, as the API sends it: the metrics to colour by and the depth levels'
 * labels (level i is depth i; the last is every tensor). */
export interface Vocabulary {
  metrics: Metric[];
  depthLevels: string[];
}

// Module-level, so TanStack Query keeps one result per models response.
const vocabularyOf = (m: ModelsOut): Vocabulary => ({ metrics: m.metrics as Metric[], depthLevels: m.depth_levels });

/** The metric and depth selectors' options (the models resource: one request with the special layers). */
export const useVocabulary = (): Async<Vocabulary> => asAsync(useQuery({ ...modelsOptions(), select: vocabularyOf }), true);

export function useFlows(family: string | null, enabled: boolean) {
  const q = useQuery({ queryKey: keys.flows(family), queryFn: () => api.flows(family), enabled });
  return asAsync(q, enabled);
}

export function useGrid(q: GridQuery | null) {
  const r = useQuery({
    queryKey: q ? keys.grid(q) : ["grid", null], queryFn: () => api.grid(q!), enabled: q !== null, placeholderData: keepPreviousData,
  });
  return asAsync(r, q !== null);
}

export function useHeatmap(q: HeatmapQuery | null) {
  const r = useQuery({
    queryKey: q ? keys.heatmap(q) : ["heatmap", null], queryFn: () => api.heatmap(q!), enabled: q !== null,
    placeholderData: keepPreviousData,
  });
  return asAsync(r, q !== null);
}

export function useTrial(cid: string | null, tid: number) {
  const q = useQuery({
    queryKey: keys.trial(cid ?? "", tid), queryFn: () => api.trial(cid!, tid), enabled: cid !== null, placeholderData: keepPreviousData,
  });
  return asAsync(q, cid !== null);
}

export function useStep(cid: string | null, tid: number, n: number) {
  const q = useQuery({ ...stepOptions(cid ?? "", tid, n), enabled: cid !== null });
  return asAsync(q, cid !== null);
}

/** Every step of a trial (n of them; 0: nothing to load), each under its own step key. */
export function useAllSteps(cid: string | null, tid: number, n: number): Async<StepOut[]> {
  const enabled = cid !== null && n > 0;
  return useQueries({
    queries: Array.from({ length: enabled ? n : 0 }, (_, i) => stepOptions(cid!, tid, i)),
    combine: combineSteps,
  });
}

// Module-level, so TanStack Query runs it only when a step's result changes.
function combineSteps(rs: UseQueryResult<StepOut, Error>[]): Async<StepOut[]> {
  if (rs.length === 0) return { data: null, error: null, loading: false };
  const failed = rs.find((r) => r.error);
  const done = rs.every((r) => r.data !== undefined && !r.isPlaceholderData);
  return {
    data: failed || !done ? null : rs.map((r) => r.data!),
    error: failed?.error?.message ?? null,
    loading: rs.some((r) => r.isFetching),
  };
}

export function useAttention(q: AttentionQuery | null) {
  const r = useQuery({
    queryKey: q ? keys.attention(q) : ["attention", null], queryFn: () => api.attention(q!), enabled: q !== null,
    placeholderData: keepPreviousData,
  });
  return asAsync(r, q !== null);
}

/** A trial's interpretation; `page` picks steps (start..stop-1) and whether the delta bars come. */
export function useInterpretation(cid: string, tid: number, page: InterpretationPage = {}) {
  const q = useQuery({
    queryKey: keys.interpretation(cid, tid, page), queryFn: () => api.interpretation(cid, tid, page), placeholderData: keepPreviousData,
  });
  return asAsync(q, true);
}

/** The logit-lens grid of a trial. `missing`: the API answered 404, the capture has no lens (then
 * `error` is its one-line reason, to show instead of the grid). */
export function useLens(cid: string | null, tid: number): Async<LensGridOut> & { missing: boolean } {
  const q = useQuery({ queryKey: keys.lens(cid ?? "", tid), queryFn: () => api.lens(cid!, tid), enabled: cid !== null });
  return { ...asAsync(q, cid !== null), missing: q.error instanceof ApiError && q.error.status === 404 };
}

/** One logit-lens cell's top-k (the tooltip); null: nothing to load. No placeholder: a tooltip must
 * never show the previous cell's tokens. */
export function useLensCell(q: LensCellQuery | null) {
  const r = useQuery({
    queryKey: q ? keys.lensCell(q) : ["lensCell", null], queryFn: () => api.lensCell(q!), enabled: q !== null,
  });
  return asAsync(r, q !== null);
}

const COMPARE_POLL_MS = 400; // while the server computes the next-token block (next_token_progress set)

/** Two trials compared (`capture_id:trial` each, a: the reference); null for either: nothing to load.
 * Asked again every 400 ms while the server is still computing its next-token block. */
export function useCompare(a: string | null, b: string | null) {
  const enabled = a !== null && b !== null;
  const q = useQuery({
    queryKey: enabled ? keys.compare(a, b) : ["compare", null], queryFn: () => api.compare(a!, b!), enabled,
    refetchInterval: (query) => (query.state.data?.next_token_progress ? COMPARE_POLL_MS : false),
  });
  return asAsync(q, enabled);
}

/** A trial's residual projection on its control vector (steering). `missing`: the API answered 404,
 * the trial ran without a control vector (then `error` is its one-line reason). */
export function useProjection(cid: string | null, tid: number): Async<ProjectionOut> & { missing: boolean } {
  const q = useQuery({ queryKey: keys.projection(cid ?? "", tid), queryFn: () => api.projection(cid!, tid), enabled: cid !== null });
  return { ...asAsync(q, cid !== null), missing: q.error instanceof ApiError && q.error.status === 404 };
}

// ----- live runs --------------------------------------------------------------------------
/** The models a run may use (GET /api/models/files). */
export const useModelFiles = () => asAsync(useQuery({ queryKey: keys.modelFiles, queryFn: api.modelFiles }), true);

const RUN_POLL_ACTIVE_MS = 1000; // while a run is queued or going: its progress
const RUN_POLL_IDLE_MS = 5000; // otherwise: runs started elsewhere (another tab, the REST API)
const ACTIVE_RUN = new Set(["queued", "loading", "running", "saving"]);

/** The server's runs, read again every second while one is going (else every 5 s). `status`: the
 * HTTP status of a refusal (403: runs are not allowed here; then no polling), else null. Runs
 * change: never cached. */
export function useRuns(token: string | null): Async<RunsOut> & { status: number | null } {
  const q = useQuery({
    queryKey: keys.runs, queryFn: () => api.runs(token), staleTime: 0,
    refetchInterval: (query) => {
      const e = query.state.error;
      if (e instanceof ApiError && e.status === 403) return false; // runs not allowed: asked again when the token changes
      return query.state.data?.runs.some((r) => ACTIVE_RUN.has(r.state)) ? RUN_POLL_ACTIVE_MS : RUN_POLL_IDLE_MS;
    },
  });
  return { ...asAsync(q, true), status: q.error instanceof ApiError ? q.error.status : null };
}

/** Start a run (POST /api/runs); the run list is read again. */
export async function startRun(qc: QueryClient, body: RunRequest, token: string | null): Promise<RunInfo> {
  const run = await api.startRun(body, token);
  void qc.invalidateQueries({ queryKey: keys.runs });
  return run;
}

/** Stop a run (DELETE /api/runs/{id}): it keeps and saves what it captured; the run list is read again. */
export async function cancelRun(qc: QueryClient, id: string, token: string | null): Promise<RunInfo> {
  const run = await api.cancelRun(id, token);
  void qc.invalidateQueries({ queryKey: keys.runs });
  return run;
}

// ----- startup, load and upload ----------------------------------------------------------
export type Startup = { path: string } | { path: null; dataDir: string };

/** The capture to open first (`choose`: the selection's rule), loaded before this resolves, with the
 * models resource (the special layers every view labels by, the metrics and depth levels the
 * selectors offer); the file list it reads is the captures panel's, fetched once. A failed models
 * request is shown by the views that need it. */
export function useStartup(choose: (caps: CapturesOut, files: FilesOut) => string | null) {
  const qc = useQueryClient();
  return useQuery({
    queryKey: keys.startup,
    queryFn: async (): Promise<Startup> => {
      const [caps, files] = await Promise.all([
        qc.fetchQuery(capturesOptions()), qc.fetchQuery(filesOptions()), qc.prefetchQuery(modelsOptions()),
      ]);
      const path = choose(caps, files);
      if (path === null) return { path: null, dataDir: files.data_dir };
      await qc.fetchQuery(captureOptions(path));
      return { path };
    },
  });
}

/** How often GET /api/loading is asked while a capture load is in flight. */
export const LOADING_POLL_MS = 400;

/** The index builds the server reports (GET /api/loading: a first load of a capture saved without
 * its index reads every step, seconds for a large file), asked every LOADING_POLL_MS while `active`
 * (a load or upload in flight), the first time one interval after it starts, so a quick load asks
 * nothing. Null when not active or before the first answer; a failed ask keeps the last answer.
 * Outside the cache on purpose: each answer is only that moment's, and a query would count in
 * useIsFetching, which the progress bar reads to know that the views are drawn. */
export function useIndexBuilds(active: boolean): LoadingInfo[] | null {
  const [builds, setBuilds] = useState<LoadingInfo[] | null>(null);
  useEffect(() => {
    if (!active) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ask = async () => {
      try {
        const out = await api.loading();
        if (live) setBuilds(out.loading);
      } catch {
        /* the bar stays as it was (an older server has no such route) */
      }
      if (live) timer = setTimeout(() => void ask(), LOADING_POLL_MS);
    };
    timer = setTimeout(() => void ask(), LOADING_POLL_MS);
    return () => {
      live = false;
      clearTimeout(timer);
      setBuilds(null);
    };
  }, [active]);
  return active ? builds : null;
}

/** Load a capture file (always asks the server, which makes it current) into the cache. */
export async function loadCapture(qc: QueryClient, path: string): Promise<LoadOut> {
  return qc.fetchQuery({ ...captureOptions(path), staleTime: 0 });
}

/** Upload a capture or trace, with its vectors companion if any: the server saves and loads it; the
 * file list is read again. */
export async function uploadCapture(qc: QueryClient, file: File, vectors?: File | null, onProgress?: (sent: number, total: number) => void) {
  const out = await api.upload(file, vectors, onProgress);
  qc.setQueryData(keys.capture(out.path), out);
  void qc.invalidateQueries({ queryKey: keys.files });
  return out;
}
