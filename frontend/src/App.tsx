/** The viewer: wires the shared state (state/store) to the views. Every API failure is shown in
 * the view that needed the data. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, type GridCell, type LoadOut, type StepOut } from "./api/client";
import { useApi } from "./api/useApi";
import { useViewer } from "./state/store";
import { TensorGrid } from "./scenes/TensorGrid";
import { CapturesPanel, EmptyState } from "./views/CapturesPanel";
import { Controls } from "./views/Controls";
import { FlowDiagram } from "./views/FlowDiagram";
import { HeatMap } from "./views/HeatMap";
import { InfoPanel, Legend } from "./views/InfoPanel";
import { TensorDetail } from "./views/TensorDetail";
import { TokenTimeline } from "./views/TokenTimeline";
import { TokenLens } from "./views/TokenLens";
import { fmt } from "./data/format";
import { makeScale } from "./data/scale";

export function Loading({ what }: { what: string }) {
  return <div className="loading" role="status">Loading {what}…</div>;
}
export function ErrorBox({ error, what }: { error: string | null; what: string }) {
  return error ? <div className="error" role="alert">Could not load {what}: {error}</div> : null;
}

type Boot = { state: "loading" } | { state: "empty"; dataDir: string } | { state: "ready" } | { state: "error"; error: string };

export function App() {
  const { state, dispatch } = useViewer();
  const [boot, setBoot] = useState<Boot>({ state: "loading" });
  const [refresh, setRefresh] = useState(0);
  const cap = state.capture;
  const cid = cap?.capture_id ?? null;
  const onLoaded = useCallback((c: LoadOut) => {
    dispatch({ type: "loaded", capture: c });
    setBoot({ state: "ready" });
  }, [dispatch]);

  // Start with the current capture of the server, else the newest valid file.
  useEffect(() => {
    (async () => {
      const [caps, files] = await Promise.all([api.captures(), api.files()]);
      const current = caps.captures.find((c) => c.capture_id === caps.current);
      const path = current?.path ?? files.files.find((f) => f.valid)?.path;
      if (!path) return setBoot({ state: "empty", dataDir: files.data_dir });
      onLoaded(await api.load(path));
    })().catch((e: Error) => setBoot({ state: "error", error: e.message }));
  }, [onLoaded]);

  const colors = useApi("colors", api.colors);
  const q = cid ? { capture_id: cid, trial_id: state.trialId, step: state.step, metric: state.metric } : null;
  const grid = useApi(q && `${JSON.stringify(q)}:${state.depth}`, () => api.grid({ ...q!, depth: state.depth }));
  const fullGrid = useApi(q && JSON.stringify(q), () => api.grid({ ...q!, depth: 4 }));
  const trial = useApi(cid && `${cid}:${state.trialId}`, () => api.trial(cid!, state.trialId));
  const stepData = useApi(cid && `${cid}:${state.trialId}:${state.step}`, () => api.step(cid!, state.trialId, state.step));
  const flows = useApi(cid, () => api.flows(cid!));
  const heatTypes = useApi(q && `ht:${JSON.stringify(q)}`, () =>
    api.heatmap({ capture_id: cid!, trial_id: state.trialId, metric: state.metric, axis: "types", step: state.step }));
  const tokenMetric = state.metric === "count" ? null : state.metric;
  const heatTokens = useApi(cid && tokenMetric && `${cid}:${state.trialId}:${tokenMetric}:${state.heatType}`, () =>
    api.heatmap({ capture_id: cid!, trial_id: state.trialId, metric: tokenMetric!, axis: "tokens", type: state.heatType }));
  const nSteps = trial.data?.steps.length ?? 0;
  const allSteps = useApi(cid && state.selected !== null && nSteps ? `${cid}:${state.trialId}:all:${nSteps}` : null, () =>
    Promise.all(Array.from({ length: nSteps }, (_, n) => api.step(cid!, state.trialId, n))));

  const [hovered, setHovered] = useState<GridCell | null>(null);
  const selectedCell = fullGrid.data?.cells.find((c) => c.id === state.selected) ?? null;
  const select = useCallback((c: GridCell) => dispatch({ type: "select", id: c.id, layer: c.layer, tensorType: c.type }), [dispatch]);
  const onStep = useCallback((step: number) => dispatch({ type: "step", step }), [dispatch]);
  const stats = useMemo(() => statsById(stepData.data), [stepData.data]);
  const gridScale = useMemo(() => makeScale(state.scale, grid.data?.cells.map((c) => c.value) ?? []), [state.scale, grid.data]);

  if (boot.state === "loading") return <Shell><Loading what="captures" /></Shell>;
  if (boot.state === "error") return <Shell><div className="error" role="alert">Cannot reach the Spectra Vis API: {boot.error}</div></Shell>;

  return (
    <Shell
      header={cap && (
        <>
          <Controls metric={state.metric} scale={state.scale} depth={state.depth} onMetric={(m) => dispatch({ type: "metric", metric: m })}
            onScale={(sc) => dispatch({ type: "scale", scale: sc })} onDepth={(d) => dispatch({ type: "depth", depth: d })} />
          {colors.data && <Legend colors={colors.data} scale={gridScale} metric={state.metric} />}
          <ErrorBox error={colors.error} what="colours" />
        </>
      )}
    >
      <aside className="sidebar">
        <CapturesPanel capture={cap} trialId={state.trialId} onLoaded={onLoaded} onTrial={(id) => dispatch({ type: "trial", trialId: id })}
          refreshKey={refresh} onRefresh={() => setRefresh((r) => r + 1)} />
        <InfoPanel type={hovered?.type ?? selectedCell?.type ?? null} metric={state.metric} />
      </aside>
      <main className="main">
        {boot.state === "empty" && !cap && <EmptyState dataDir={boot.dataDir} />}
        {cap && (
          <>
            <section className="panel view-grid" id="view-grid" data-testid="view-grid">
              <h2>Tensor grid <span className="muted small">layers × tensor types at step {state.step}; drag to orbit, scroll to zoom, click a cell</span></h2>
              <div className="grid-row">
                <div className="grid-box">
                  <ErrorBox error={grid.error} what="the tensor grid" />
                  {grid.loading && !grid.data && <Loading what="the tensor grid" />}
                  {grid.data && <TensorGrid grid={grid.data} valueScale={gridScale} selected={state.selected} onSelect={select} onHover={setHovered} stats={stats} />}
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
            <section className="panel view-timeline" id="view-timeline" data-testid="view-timeline">
              <h2>Token timeline</h2>
              <ErrorBox error={trial.error} what="the trial" />
              {trial.loading && !trial.data && <Loading what="the trial" />}
              {trial.data && cid && (
                <TokenLens captureId={cid} trial={trial.data} attentionLayers={cap.attention_layers} colors={colors.data} step={state.step} token={state.token} pinned={state.pinnedToken}
                  onPin={(pos) => dispatch({ type: "pin", pos })}
                  timeline={(extra) => (
                    <TokenTimeline trial={trial.data!} step={state.step} token={state.token} onStep={onStep}
                      onToken={(pos, step) => dispatch({ type: "token", pos, step })} {...extra} />
                  )} />
              )}
              {stepData.data?.logits && trial.data && (
                <div className="muted small" data-testid="next-token">
                  next token at this step: id {trial.data.steps[state.step]?.next_token?.id ?? "—"} (logit {fmt(trial.data.steps[state.step]?.next_token?.logit ?? null)})
                </div>
              )}
            </section>
            <section className="panel view-heatmap" id="view-heatmap" data-testid="view-heatmap">
              <h2>Heat maps</h2>
              <h3>Layers × tensor types at step {state.step}</h3>
              <ErrorBox error={heatTypes.error} what="the heat map" />
              {heatTypes.loading && !heatTypes.data && <Loading what="the heat map" />}
              {heatTypes.data && colors.data && (
                <HeatMap data={heatTypes.data} scale={colors.data.scale} scaleKind={state.scale} testId="heatmap-types" onCell={(r, c) => {
                  const h = heatTypes.data!;
                  const cell = fullGrid.data?.cells.find((x) => x.layer === h.rows[r] && x.type === h.cols[c].type && x.value !== null);
                  if (cell) select(cell);
                }} />
              )}
              <h3>
                Layers × tokens for{" "}
                <select aria-label="heat map tensor type" value={state.heatType} onChange={(e) => dispatch({ type: "heatType", tensorType: e.target.value })}>
                  {(fullGrid.data?.types ?? [state.heatType]).map((t) => <option key={t} value={t}>{t}</option>)}
                </select>
              </h3>
              {!tokenMetric && <p className="muted">count is per trial, not per token: choose another metric for the token heat map.</p>}
              <ErrorBox error={heatTokens.error} what="the token heat map" />
              {heatTokens.loading && !heatTokens.data && <Loading what="the token heat map" />}
              {tokenMetric && heatTokens.data && colors.data && (
                <HeatMap data={heatTokens.data} scale={colors.data.scale} scaleKind={state.scale} testId="heatmap-tokens" highlightCol={state.token} onCell={(r, c) => {
                  const h = heatTokens.data!;
                  const col = h.cols[c];
                  const cell = fullGrid.data?.cells.find((x) => x.layer === h.rows[r] && x.type === h.type);
                  if (cell) select(cell);
                  dispatch({ type: "token", pos: col.index, step: col.step ?? state.step });
                }} />
              )}
            </section>
            <section className="panel view-flow" id="view-flow" data-testid="view-flow">
              <h2>Flow diagram <span className="muted small">{state.metric} at step {state.step}</span></h2>
              <ErrorBox error={flows.error ?? fullGrid.error} what="the flow diagram" />
              {(flows.loading || fullGrid.loading) && !(flows.data && fullGrid.data) && <Loading what="the flow diagram" />}
              {flows.data && fullGrid.data && (
                <FlowDiagram flows={flows.data} grid={fullGrid.data} layer={state.flowLayer} onLayer={(l) => dispatch({ type: "flowLayer", layer: l })} onSelect={select} />
              )}
            </section>
          </>
        )}
      </main>
    </Shell>
  );
}

function statsById(s: StepOut | null): { names: string[]; byId: Map<number, (number | null)[]> } | undefined {
  if (!s) return undefined;
  return { names: s.stat_names, byId: new Map(s.tensors.map((t) => [t.id, t.stats])) };
}

function Shell({ children, header }: { children: React.ReactNode; header?: React.ReactNode }) {
  return (
    <div className="app">
      <header className="topbar">
        <h1>Spectra Vis</h1>
        {header}
      </header>
      <div className="body">{children}</div>
    </div>
  );
}
