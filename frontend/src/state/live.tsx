/** The live run the viewer watches: its state built from the run's events (data/live.ts), the
 * connection that reads them (api/runStream.ts, reconnecting with ?after=), the live cursor (null:
 * follow the newest step; set when the user moves the live scrubber) and the run token. Between
 * the events' state changes, the run's progress and speed come from the polled run list; steps the
 * server dropped for this page are read again from the backlog once the run has ended. When the
 * run ends with a saved file, the viewer loads that file (POST /api/load, as the captures panel
 * does) and moves its cursor to the step the live views showed: no page reload. */
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useState, type ReactNode } from "react";
import type { RunInfo } from "../api/client";
import { keys, loadCapture, useRuns } from "../api/queries";
import { watchRun, type StreamStatus } from "../api/runStream";
import {
  initialLive, liveReducer, savedCursor, type Cursor, type LiveAction, type LiveState, type Numbered, type RunEvent,
} from "../data/live";
import { useLiveViews } from "./liveViews";
import { useViewer } from "./store";

const TOKEN_KEY = "spectra-vis-run-token";

export interface Live {
  live: LiveState;
  stream: StreamStatus | null; // the events connection (null: no run watched)
  cursor: Cursor | null; // null: follow the newest step
  setCursor: (c: Cursor | null) => void;
  token: string; // the run token (only a server started with --allow-runs needs one)
  setToken: (t: string) => void;
  watch: (run: RunInfo) => void; // watch this run (its backlog first, then live)
  close: () => void; // watch no run (the live panel closes; a run goes on on the server)
  opened: { runId: string; path: string } | null; // the saved capture the viewer switched to
  openError: string | null;
}

const Ctx = createContext<Live | null>(null);

function storedToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const [live, send] = useReducer(liveReducer, initialLive);
  const [stream, setStream] = useState<StreamStatus | null>(null);
  const [cursor, setCursor] = useState<Cursor | null>(null);
  const [token, setTokenState] = useState(storedToken);
  const [opened, setOpened] = useState<Live["opened"]>(null);
  const [openError, setOpenError] = useState<string | null>(null);
  const lastSeq = useRef<number | null>(null);
  lastSeq.current = live.lastSeq;
  useFollowEvents(live.ended ? null : live.runId, token, lastSeq, send, setStream);
  const polled = useRuns(token || null).data?.runs.find((r) => r.id === live.runId);
  useEffect(() => {
    if (polled) send({ type: "polled", info: polled });
  }, [polled]);
  useRefill(live, token, send);
  useOpenWhenSaved(live, cursor, setOpened, setOpenError);
  useLiveViews(live, cursor);

  const setToken = useCallback((t: string) => {
    setTokenState(t);
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage unavailable: the token lasts as long as the page */
    }
  }, []);
  const watch = useCallback((run: RunInfo) => {
    send({ type: "watch", runId: run.id, info: run });
    setCursor(null);
    setOpenError(null);
  }, []);
  const close = useCallback(() => {
    send({ type: "close" });
    setCursor(null);
  }, []);
  const value = useMemo(
    () => ({ live, stream, cursor, setCursor, token, setToken, watch, close, opened, openError }),
    [live, stream, cursor, token, setToken, watch, close, opened, openError],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useLive(): Live {
  const v = useContext(Ctx);
  if (!v) throw new Error("useLive outside LiveProvider");
  return v;
}

const FLUSH_MS = 100; // events are applied in batches, at most ten renders a second

/** Events collected and applied together: steps every FLUSH_MS, anything else at once (in order). */
function batcher(send: (a: LiveAction) => void) {
  const buffer: Numbered[] = [];
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (buffer.length) send({ type: "events", items: buffer.splice(0) });
  };
  const push = (seq: number | null, event: RunEvent) => {
    buffer.push({ seq, event });
    if (event.type !== "step") flush();
    else if (timer === null) timer = setTimeout(flush, FLUSH_MS);
  };
  return { push, flush };
}

/** Read the watched run's events into the reducer until it ends (again, from the last event, after a
 * token change). A fast run sends hundreds of steps a second: they are applied in batches. */
function useFollowEvents(
  runId: string | null, token: string, lastSeq: { current: number | null },
  send: (a: LiveAction) => void, setStream: (s: StreamStatus | null) => void,
) {
  useEffect(() => {
    if (runId === null) return;
    const ctl = new AbortController();
    const batch = batcher(send);
    void watchRun(runId, { token: token || null, after: lastSeq.current, signal: ctl.signal, onEvent: batch.push, onStatus: setStream });
    return () => {
      ctl.abort();
      batch.flush();
    };
  }, [runId, token, lastSeq, send, setStream]);
}

/** Once the run has ended, read its backlog again from the first dropped event: the steps this page
 * missed fill their holes (the reducer ignores everything else it already has). */
function useRefill(live: LiveState, token: string, send: (a: LiveAction) => void) {
  const runId = live.ended ? live.runId : null;
  const from = live.refill;
  useEffect(() => {
    if (runId === null || from === null) return;
    const ctl = new AbortController();
    const batch = batcher(send);
    void watchRun(runId, { token: token || null, after: from, signal: ctl.signal, onEvent: batch.push, onStatus: () => {}, maxAttempts: 3 })
      .finally(() => {
        batch.flush();
        if (!ctl.signal.aborted) send({ type: "refilled" });
      });
    return () => ctl.abort();
  }, [runId, from, token, send]);
}

/** When the watched run ends with a saved file: load it, make it the viewer's capture, put the
 * cursor where the live views were, and read the file and run lists again. Once per run. */
function useOpenWhenSaved(
  live: LiveState, cursor: Cursor | null,
  setOpened: (o: Live["opened"]) => void, setOpenError: (e: string | null) => void,
) {
  const qc = useQueryClient();
  const { dispatch } = useViewer();
  const done = useRef<string | null>(null);
  const cursorRef = useRef(cursor);
  cursorRef.current = cursor;
  const file = live.ended ? (live.info?.file ?? null) : null;
  const runId = live.runId;
  useEffect(() => {
    if (!live.ended || runId === null) return;
    void qc.invalidateQueries({ queryKey: keys.runs });
    void qc.invalidateQueries({ queryKey: keys.files });
    if (file === null || done.current === runId) return;
    done.current = runId;
    loadCapture(qc, file).then(
      (cap) => {
        const c = savedCursor(cursorRef.current, cap.trial_list.map((t) => t.n_steps));
        dispatch({ type: "loaded", path: cap.path });
        if (c.trial !== 0) dispatch({ type: "trial", trialId: c.trial });
        dispatch({ type: "step", step: c.step });
        setOpened({ runId, path: cap.path });
      },
      (e: Error) => setOpenError(`The run saved ${file} but it could not be opened: ${e.message}`),
    );
  }, [live.ended, runId, file, qc, dispatch, setOpened, setOpenError]);
}
