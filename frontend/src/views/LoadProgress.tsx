/** The progress of opening a capture, under the top bar: from the moment a load starts (POST
 * /api/load from the captures panel, a run, startup; or an upload) until the first views have their
 * data (no request running for a moment). An upload's bar is determinate while its bytes are sent
 * (reportUpload, from the captures panel). While the server loads, the bar asks it how far it is
 * (GET /api/loading, useIndexBuilds): a capture saved without its index builds it on its first
 * load, step by step, and the bar shows how many steps are read; otherwise (reading an index, or
 * the file) it is indeterminate, with the seconds elapsed. */
import { useIsFetching } from "@tanstack/react-query";
import { useEffect, useState, useSyncExternalStore } from "react";
import type { LoadingInfo } from "../api/client";
import { LIVE_PATH, useIndexBuilds } from "../api/queries";

export interface UploadState {
  name: string;
  sent: number;
  total: number; // 0: not known yet
}

// ----- the upload being sent (one at a time: the captures panel sends one request at a time) ------
let upload: UploadState | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((f) => f());

/** Report an upload's bytes (null: it has ended). */
export function reportUpload(state: UploadState | null) {
  upload = state;
  emit();
}

function useUpload(): UploadState | null {
  return useSyncExternalStore((f) => { listeners.add(f); return () => { listeners.delete(f); }; }, () => upload);
}

const BUILD_HINT = "A capture saved without its index file (elsewhere, by an older version, or its index deleted) is read step by step on its first load; the server then keeps the index beside it and later loads read that.";

/** Quiet this long (no request running) and the first views are drawn. */
const SETTLE_MS = 400;

type Phase = "upload" | "load" | "views";

/** Whether the server is loading (the bar then asks it how far): a capture load, or an upload
 * whose bytes are all sent (the server saves and loads it). Pure. */
export function serverLoading(phase: Phase, up: UploadState | null): boolean {
  return phase === "load" || (phase === "upload" && up !== null && up.total > 0 && up.sent >= up.total);
}

/** The index build the bar shows, of those the server reports: the first one running (loads wait
 * for each other's builds, so it is the one a load in flight waits for); null when none. Pure. */
export function shownBuild(builds: LoadingInfo[] | null): LoadingInfo | null {
  return builds?.find((b) => b.total > 0) ?? null;
}

/** What the bar says and how full it is (null: indeterminate). `build`: an index build the server
 * reports while it loads (its steps read of the capture's). Pure. */
export function progressText(
  phase: Phase, seconds: number, up: UploadState | null, build: LoadingInfo | null = null,
): { text: string; fraction: number | null } {
  const s = `${seconds.toFixed(0)} s`;
  if (build && build.total > 0 && serverLoading(phase, up)) {
    const f = Math.min(1, build.done / build.total);
    return { text: `Building the index of ${build.name}: ${percent(f)}% of ${build.total} steps · ${s}`, fraction: f };
  }
  if (phase === "upload" && up) {
    const f = up.total > 0 ? up.sent / up.total : null;
    if (f !== null && f < 1) return { text: `Uploading ${up.name}: ${percent(f)}% of ${mib(up.total)} · ${s}`, fraction: f };
    return { text: `Uploading ${up.name}: the server is saving and loading it · ${s}`, fraction: null };
  }
  if (phase === "load") return { text: `Loading the capture · ${s}`, fraction: null };
  return { text: `Fetching the first views · ${s}`, fraction: null };
}

/** Whole percent, rounded down: 100% only once all is done. */
export const percent = (fraction: number) => Math.floor(fraction * 100);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function LoadProgress() {
  const up = useUpload();
  // A running run's capture read again (path LIVE_PATH + run id) is not a load.
  const loading = useIsFetching({ predicate: (q) => q.queryKey[0] === "capture" && !String(q.queryKey[1]).startsWith(LIVE_PATH) }) > 0;
  const fetching = useIsFetching() > 0;
  const [start, setStart] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const active = up !== null || loading;

  useEffect(() => { // a load or upload starts the clock
    if (active && start === null) setStart(Date.now());
  }, [active, start]);
  useEffect(() => { // and a moment without requests after it ends stops it
    if (start === null || active || fetching) return;
    const t = setTimeout(() => setStart(null), SETTLE_MS);
    return () => clearTimeout(t);
  }, [start, active, fetching]);
  useEffect(() => {
    if (start === null) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [start]);

  const phase: Phase = up ? "upload" : loading ? "load" : "views";
  const build = shownBuild(useIndexBuilds(serverLoading(phase, up)));

  if (start === null) return null;
  const { text, fraction } = progressText(phase, Math.max(0, now - start) / 1000, up, build);
  const building = build !== null && serverLoading(phase, up);
  return (
    <div className="load-progress" data-testid="load-progress" data-phase={phase} data-building={building ? build.path : undefined}
      role="progressbar" aria-label={text}
      aria-valuemin={0} aria-valuemax={100} aria-valuenow={fraction === null ? undefined : percent(fraction)}>
      <div className={`load-progress-track${fraction === null ? " indeterminate" : ""}`}>
        <div className="load-progress-fill" style={fraction === null ? undefined : { width: `${fraction * 100}%` }} />
      </div>
      <span className="small" title={building ? BUILD_HINT : undefined}>{text}</span>
    </div>
  );
}
