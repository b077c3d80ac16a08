/** The flow diagram panel: the model's path and one block's data path at the cursor's step, coloured
 * by the metric; a click selects that tensor, a block in the top row opens it. */
import { useCallback } from "react";
import type { GridCell } from "../api/client";
import { useFlows } from "../api/queries";
import { blockLayers, familyOf } from "../data/layers";
import { selectCell } from "../state/selection";
import { useCurrent, useFullGrid } from "./current";
import { FlowDiagram } from "./FlowDiagram";
import { ErrorBox, Loading } from "./Status";

export function FlowPanel() {
  const { state, dispatch, capture, special } = useCurrent();
  const flows = useFlows(familyOf(capture?.model), capture !== undefined);
  const full = useFullGrid();
  const select = useCallback((c: GridCell) => dispatch(selectCell(c, special.data)), [dispatch, special.data]);
  const onLayer = useCallback((layer: number) => dispatch({ type: "flowLayer", layer }), [dispatch]);
  const ready = flows.data && full.data && special.data;
  // The store's block, else the capture's first block.
  const layer = state.flowLayer ?? (capture && special.data ? (blockLayers(capture.layers, special.data)[0] ?? 0) : 0);
  return (
    <section className="panel view-flow" id="view-flow" data-testid="view-flow">
      <h2>Flow diagram <span className="muted small">{state.metric} at step {state.step}</span></h2>
      <ErrorBox error={flows.error ?? full.error ?? special.error} what="the flow diagram" />
      {(flows.loading || full.loading || special.loading) && !ready && <Loading what="the flow diagram" />}
      {flows.data && full.data && special.data && (
        <FlowDiagram flows={flows.data} grid={full.data} special={special.data} layer={layer} onLayer={onLayer} onSelect={select} />
      )}
    </section>
  );
}
