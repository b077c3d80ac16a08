/** The saved views (grid, heat maps, timeline, Token Lens, logit lens) follow a running run: while it
 * runs and the user has moved neither the live scrubber nor the viewer's step, the viewer shows the
 * run's capture so far (GET /api/runs/{id}/capture, capture id run-<id>) at its newest step, read
 * again at most once a second when new steps have arrived (every payload of that capture id marked
 * stale, so each view showing one reads it again). When the run ends, live.tsx opens the saved file. */
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { invalidateLive, livePath, refreshLive, refreshLiveTrial } from "../api/queries";
import { savedCursor, type Cursor, type LiveState } from "../data/live";
import { stepsSoFar, userMoved, type Placed } from "../data/liveFollow";
import { useViewer } from "./store";

export const FOLLOW_MS = 1000;

export function useLiveViews(live: LiveState, cursor: Cursor | null): boolean {
  const qc = useQueryClient();
  const { state, dispatch } = useViewer();
  const runId = live.runId;
  const placed = useRef<Placed | null>(null);
  const [stopped, setStopped] = useState<string | null>(null); // the run the user stopped following
  const stateRef = useRef(state);
  stateRef.current = state;
  const steps = useRef(0);
  steps.current = stepsSoFar(live.trials);

  useEffect(() => {
    placed.current = null;
  }, [runId]);
  useEffect(() => {
    if (runId !== null && stopped !== runId && userMoved(placed.current, state)) setStopped(runId);
  }, [runId, stopped, state]);

  const follow = runId !== null && !live.ended && live.info?.state === "running" && stopped !== runId && cursor === null;
  useEffect(() => {
    if (!follow || runId === null) return;
    let cancelled = false;
    let busy = false;
    let seen = -1;
    const tick = async () => {
      if (busy || steps.current === 0 || steps.current === seen) return;
      busy = true;
      seen = steps.current;
      try {
        const cap = await refreshLive(qc, runId);
        if (cancelled) return;
        const at = savedCursor(null, cap.trial_list.map((t) => t.n_steps));
        const trial = await refreshLiveTrial(qc, runId, at.trial);
        if (cancelled) return;
        at.step = Math.max(trial.steps.length - 1, 0);
        const path = livePath(runId);
        const now = stateRef.current;
        if (placed.current !== null && userMoved(placed.current, now)) return; // moved while this was read
        placed.current = { path, trial: at.trial, step: at.step };
        if (now.capturePath !== path) dispatch({ type: "loaded", path });
        if (now.capturePath !== path || now.trialId !== at.trial) dispatch({ type: "trial", trialId: at.trial });
        dispatch({ type: "step", step: at.step });
        invalidateLive(qc, runId);
      } catch {
        seen = -1; // before the run's first step (404), or it just ended: the next tick asks again
      } finally {
        busy = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), FOLLOW_MS);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, [follow, runId, qc, dispatch]);
  return follow;
}
