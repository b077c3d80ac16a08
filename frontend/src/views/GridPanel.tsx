/** The tensor grid panel: the 3D grid at the cursor (the chosen depth; hover feeds the info panel,
 * click selects) and the selected tensor's detail over every step. */
import { useCallback, useMemo } from "react";
import type { GridCell, StepOut } from "../api/client";
import { useAllSteps, useStep, useTrial } from "../api/queries";
import { makeScale } from "../data/scale";
import { TensorGrid } from "../scenes/TensorGrid";
import { cellById, selectCell } from "../state/selection";
import { useHoverType } from "../state/store";
import { useCurrent, useCursorGrid, useFullGrid } from "./current";
import { ErrorBox, Loading } from "./Status";
import { TensorDetail } from "./TensorDetail";

export function GridPanel() {
  const { state, dispatch, cid, special } = useCurrent();
  const [, setHover] = useHoverType();
  const grid = useCursorGrid(state.depth);
  const full = useFullGrid();
  const trial = useTrial(cid, state.trialId);
  const stepData = useStep(cid, state.trialId, state.step);
  const selectedCell = cellById(full.data, state.selected);
  const allSteps = useAllSteps(cid, state.trialId, state.selected !== null ? (trial.data?.steps.length ?? 0) : 0);
  const select = useCallback((c: GridCell) => dispatch(selectCell(c, special.data)), [dispatch, special.data]);
  const onHover = useCallback((c: GridCell | null) => setHover(c?.type ?? null), [setHover]);
  const onStep = useCallback((step: number) => dispatch({ type: "step", step }), [dispatch]);
  const stats = useMemo(() => statsById(stepData.data), [stepData.data]);
  const gridScale = useMemo(() => makeScale(state.scale, grid.data?.cells.map((c) => c.value) ?? []), [state.scale, grid.data]);
  return (
    <section className="panel view-grid" id="view-grid" data-testid="view-grid">
      <h2>Tensor grid <span className="muted small">layers × tensor types at step {state.step}; drag to orbit, scroll to zoom, click a cell</span></h2>
      <div className="grid-row">
        <div className="grid-box">
          <ErrorBox error={grid.error} what="the tensor grid" />
          {grid.loading && !grid.data && <Loading what="the tensor grid" />}
          {grid.data && <TensorGrid grid={grid.data} valueScale={gridScale} selected={state.selected} onSelect={select} onHover={onHover} stats={stats} special={special.data} />}
        </div>
        <div className="detail-box" id="view-detail" data-testid="view-detail">
          <h2>Tensor detail</h2>
          {!selectedCell && <p className="muted">Click a cell (grid, heat map or flow) to see that tensor over every step.</p>}
          <ErrorBox error={allSteps.error} what="the steps of this trial" />
          {selectedCell && trial.data && allSteps.loading && <Loading what="every step" />}
          {selectedCell && trial.data && allSteps.data && (
            <TensorDetail cell={selectedCell} trial={trial.data} steps={allSteps.data} step={state.step} token={state.token} metric={state.metric} onStep={onStep} />
          )}
        </div>
      </div>
    </section>
  );
}

function statsById(s: StepOut | null): { names: string[]; byId: Map<number, (number | null)[]> } | undefined {
  if (!s) return undefined;
  return { names: s.stat_names, byId: new Map(s.tensors.map((t) => [t.id, t.stats])) };
}
