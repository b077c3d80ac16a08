/** The progress of opening a capture, under the top bar: from the moment a load starts (POST
 * /api/load from the captures panel, a run, startup; or an upload) until the first views have their
 * data (no request running for a moment). The server does not report how far a load is, so that
 * part is an indeterminate bar with the seconds elapsed; an upload's bar is determinate while its
 * bytes are sent (reportUpload, from the captures panel). */
import { useIsFetching } from "@tanstack/react-query";
import { useEffect, useState, useSyncExternalStore } from "react";
import { LIVE_PATH } from "../api/queries";

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

/** Quiet this long (no request running) and the first views are drawn. */
const SETTLE_MS = 400;

type Phase = "upload" | "load" | "views";

/** What the bar says and how full it is (null: indeterminate). Pure. */
export function progressText(phase: Phase, seconds: number, up: UploadState | null): { text: string; fraction: number | null } {
  const s = `${seconds.toFixed(0)} s`;
  if (phase === "upload" && up) {
    const f = up.total > 0 ? up.sent / up.total : null;
    if (f !== null && f < 1) return { text: `Uploading ${up.name}: ${Math.round(f * 100)}% of ${mib(up.total)} · ${s}`, fraction: f };
    return { text: `Uploading ${up.name}: the server is saving and loading it · ${s}`, fraction: null };
  }
  if (phase === "load") return { text: `Loading the capture · ${s}`, fraction: null };
  return { text: `Fetching the first views · ${s}`, fraction: null };
}

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

  if (start === null) return null;
  const phase: Phase = up ? "upload" : loading ? "load" : "views";
  const { text, fraction } = progressText(phase, Math.max(0, now - start) / 1000, up);
  return (
    <div className="load-progress" data-testid="load-progress" data-phase={phase} role="progressbar" aria-label={text}
      aria-valuemin={0} aria-valuemax={100} aria-valuenow={fraction === null ? undefined : Math.round(fraction * 100)}>
      <div className={`load-progress-track${fraction === null ? " indeterminate" : ""}`}>
        <div className="load-progress-fill" style={fraction === null ? undefined : { width: `${fraction * 100}%` }} />
      </div>
      <span className="small">{text}</span>
    </div>
  );
}
