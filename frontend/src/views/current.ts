/** What the panels start from: the store, the loaded capture and its special layers, and the grid at
 * the timeline cursor. Each comes from one cache entry that every panel shares. */
import { useCapture, useGrid, useSpecialLayers } from "../api/queries";
import { DEPTH_LABELS } from "../data/explain";
import { familyOf } from "../data/layers";
import { useViewer } from "../state/store";

/** Every tensor: the depth the flow diagram, heat-map clicks and the selection read. */
export const DEPTH_ALL = DEPTH_LABELS.length - 1;

export function useCurrent() {
  const { state, dispatch } = useViewer();
  const capture = useCapture(state.capturePath).data;
  const special = useSpecialLayers(familyOf(capture?.model));
  return { state, dispatch, capture, cid: capture?.capture_id ?? null, special };
}

/** The tensor grid at the cursor's trial, step and metric, at a depth level. */
export function useCursorGrid(depth: number) {
  const { state, cid } = useCurrent();
  return useGrid(cid ? { capture_id: cid, trial_id: state.trialId, step: state.step, metric: state.metric, depth } : null);
}
