/** The logit-lens panel: what each layer's residual stream predicts at each token of the trial
 * (/api/trials/{id}/lens). A click selects that layer's residual-stream tensor (l_out) and moves
 * the cursor to that token, as a heat-map click does. A capture without a lens shows the API's
 * one-line reason instead of the grid. */
import { useMemo } from "react";
import { useColors, useLens, useTrial } from "../api/queries";
import { LENS_TENSOR_TYPE, lensModel } from "../data/logitLens";
import { cellAt, cellById, selectCell } from "../state/selection";
import { useCurrent, useFullGrid } from "./current";
import { LogitLens } from "./LogitLens";
import { ErrorBox, Loading } from "./Status";
import { tokenStep } from "./TokenTimeline";

export function LogitLensPanel() {
  const { state, dispatch, cid, special } = useCurrent();
  const colors = useColors();
  const live = cid?.startsWith("run-") ?? false; // a running run's capture so far: no lens until it is saved
  const lens = useLens(live ? null : cid, state.trialId);
  const trial = useTrial(cid, state.trialId);
  const full = useFullGrid();
  const model = useMemo(() => (lens.data ? lensModel(lens.data) : null), [lens.data]);
  const selected = cellById(full.data, state.selected);
  const selectedLayer = selected?.type === LENS_TENSOR_TYPE ? selected.layer : null;
  const onCell = (layer: number, pos: number) => {
    const cell = cellAt(full.data, layer, LENS_TENSOR_TYPE);
    if (cell) dispatch(selectCell(cell, special.data));
    if (trial.data) dispatch({ type: "token", pos, step: tokenStep(trial.data, pos) });
  };
  return (
    <section className="panel view-logit-lens" id="view-logit-lens" data-testid="view-logit-lens">
      <h2>Logit lens</h2>
      {live && <p className="muted" data-testid="logit-lens-live">The logit lens of a running run appears when it is saved (the live panel shows its top-1 per layer).</p>}
      {lens.missing && <p className="muted" data-testid="logit-lens-unavailable">No logit lens for this trial: {lens.error}</p>}
      {!lens.missing && <ErrorBox error={lens.error} what="the logit lens" />}
      {lens.loading && !lens.data && <Loading what="the logit lens" />}
      {model && cid && colors.data && (
        <>
          <p className="muted small">
            Each cell: the token that layer’s residual stream predicts next, read through the model’s final norm and output head.
            Hover for the top 5; click to select that layer’s residual stream and token.
          </p>
          <LogitLens model={model} ramp={colors.data.scale} captureId={cid} trialId={state.trialId} special={special.data}
            selectedLayer={selectedLayer} selectedToken={state.token} onCell={onCell} />
        </>
      )}
    </section>
  );
}
