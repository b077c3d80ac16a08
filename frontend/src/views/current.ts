/** What the panels start from: the store, the loaded capture and its special layers, and the grid at
 * the timeline cursor. Each comes from one cache entry that every panel shares. */
import { useCapture, useGrid, useSpecialLayers, useVocabulary } from "../api/queries";
import { useViewer } from "../state/store";

export function useCurrent() {
  const { state, dispatch } = useViewer();
  const capture = useCapture(state.capturePath).data;
  const special = useSpecialLayers();
  return { state, dispatch, capture, cid: capture?.capture_id ?? null, special };
}

/** The tensor grid at the cursor's trial, step and metric, at a depth level (null: nothing to load). */
export function useCursorGrid(depth: number | null) {
  const { state, cid } = useCurrent();
  const enabled = cid !== null && depth !== null;
  return useGrid(enabled ? { capture_id: cid, trial_id: state.trialId, step: state.step, metric: state.metric, depth } : null);
}

/** Every tensor: the grid at the API's last depth level, which the flow diagram, heat-map clicks and
 * the selection read. Nothing loads until the depth levels have arrived. */
export function useFullGrid() {
  const levels = useVocabulary().data?.depthLevels;
  return useCursorGrid(levels ? levels.length - 1 : null);
}
