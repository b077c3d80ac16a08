/** The heat-map panel: layers × tensor types at the cursor's step, and layers × tokens for one tensor
 * type; a click selects that tensor (and moves the cursor to the token). */
import { useColors, useHeatmap } from "../api/queries";
import { cellAt, selectCell } from "../state/selection";
import { useCurrent, useFullGrid } from "./current";
import { HeatMap } from "./HeatMap";
import { ErrorBox, Loading } from "./Status";

export function HeatMapsPanel() {
  const { state, dispatch, cid, special } = useCurrent();
  const colors = useColors();
  const full = useFullGrid();
  const heatTypes = useHeatmap(cid ? { capture_id: cid, trial_id: state.trialId, metric: state.metric, axis: "types", step: state.step } : null);
  const tokenMetric = state.metric === "count" ? null : state.metric; // count is per trial
  const heatTokens = useHeatmap(cid && tokenMetric ? { capture_id: cid, trial_id: state.trialId, metric: tokenMetric, axis: "tokens", type: state.heatType } : null);
  const select = (layer: number, type: string, withValue: boolean) => {
    const cell = cellAt(full.data, layer, type, withValue);
    if (cell) dispatch(selectCell(cell, special.data));
  };
  return (
    <section className="panel view-heatmap" id="view-heatmap" data-testid="view-heatmap">
      <h2>Heat maps</h2>
      <h3>Layers × tensor types at step {state.step}</h3>
      <ErrorBox error={heatTypes.error} what="the heat map" />
      {heatTypes.loading && !heatTypes.data && <Loading what="the heat map" />}
      {heatTypes.data && colors.data && (
        <HeatMap data={heatTypes.data} scale={colors.data.scale} scaleKind={state.scale} testId="heatmap-types" special={special.data} onCell={(r, c) => {
          const h = heatTypes.data!;
          select(h.rows[r], h.cols[c].type ?? "", true);
        }} />
      )}
      <h3>
        Layers × tokens for{" "}
        <select aria-label="heat map tensor type" value={state.heatType} onChange={(e) => dispatch({ type: "heatType", tensorType: e.target.value })}>
          {(full.data?.types ?? [state.heatType]).map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
      </h3>
      {!tokenMetric && <p className="muted">count is per trial, not per token: choose another metric for the token heat map.</p>}
      <ErrorBox error={heatTokens.error} what="the token heat map" />
      {heatTokens.loading && !heatTokens.data && <Loading what="the token heat map" />}
      {tokenMetric && heatTokens.data && colors.data && (
        <HeatMap data={heatTokens.data} scale={colors.data.scale} scaleKind={state.scale} testId="heatmap-tokens" highlightCol={state.token} special={special.data} onCell={(r, c) => {
          const h = heatTokens.data!;
          const col = h.cols[c];
          select(h.rows[r], h.type ?? "", false);
          dispatch({ type: "token", pos: col.index, step: col.step ?? state.step });
        }} />
      )}
    </section>
  );
}
