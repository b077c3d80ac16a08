/** The metric, value-scale and depth selectors, and the top bar that wires them to the store. The
 * metrics and depth levels are the API's (`/api/models`); only the scales are the viewer's own. */
import { useMemo } from "react";
import type { Metric } from "../api/client";
import { useColors, useVocabulary, type Vocabulary } from "../api/queries";
import { explanations, metricLabel } from "../data/explain";
import { SCALE_KINDS, SCALE_LABELS, makeScale, type ScaleKind } from "../data/scale";
import { useCurrent, useCursorGrid } from "./current";
import { Legend } from "./InfoPanel";
import { ErrorBox } from "./Status";

const SCALE_HELP =
  "How values map to colour (heat maps) and height/glow (grid). linear: as they are; log: sign·log10(1 + |v|/floor), " +
  "for one huge value (the logits' L2) that washes out the rest; rank: each value's percentile. Hover and legends show real values.";

/** `vocabulary` null: the API's lists have not arrived; each selector shows only the current choice. */
export function Controls({ vocabulary, metric, scale, depth, onMetric, onScale, onDepth }: {
  vocabulary: Vocabulary | null; metric: Metric; scale: ScaleKind; depth: number;
  onMetric: (m: Metric) => void; onScale: (s: ScaleKind) => void; onDepth: (d: number) => void;
}) {
  const metrics = vocabulary?.metrics ?? [metric];
  const depths = vocabulary?.depthLevels.map((label, i) => ({ label, i })) ?? [{ label: String(depth), i: depth }];
  return (
    <div className="controls" data-testid="controls">
      <label title={explanations.metrics[metric]}>
        Metric{" "}
        <select aria-label="metric" value={metric} disabled={!vocabulary} onChange={(e) => onMetric(e.target.value as Metric)}>
          {metrics.map((m) => <option key={m} value={m}>{metricLabel(m)}</option>)}
        </select>
      </label>
      <label title={SCALE_HELP}>
        Scale{" "}
        <select aria-label="scale" value={scale} onChange={(e) => onScale(e.target.value as ScaleKind)}>
          {SCALE_KINDS.map((k) => <option key={k} value={k}>{SCALE_LABELS[k]}</option>)}
        </select>
      </label>
      <label title={explanations.depths[depth]}>
        Depth{" "}
        <select aria-label="depth" value={depth} disabled={!vocabulary} onChange={(e) => onDepth(Number(e.target.value))}>
          {depths.map((d) => <option key={d.i} value={d.i}>{d.label}</option>)}
        </select>
      </label>
    </div>
  );
}

/** The top bar's controls and legend, wired to the store; the legend's height scale is the grid's. */
export function Toolbar() {
  const { state, dispatch } = useCurrent();
  const colors = useColors();
  const vocabulary = useVocabulary();
  const grid = useCursorGrid(state.depth);
  const gridScale = useMemo(() => makeScale(state.scale, grid.data?.cells.map((c) => c.value) ?? []), [state.scale, grid.data]);
  return (
    <>
      <Controls vocabulary={vocabulary.data} metric={state.metric} scale={state.scale} depth={state.depth} onMetric={(m) => dispatch({ type: "metric", metric: m })}
        onScale={(sc) => dispatch({ type: "scale", scale: sc })} onDepth={(d) => dispatch({ type: "depth", depth: d })} />
      {colors.data && <Legend colors={colors.data} scale={gridScale} metric={state.metric} />}
      <ErrorBox error={vocabulary.error} what="the metrics and depth levels" />
      <ErrorBox error={colors.error} what="colours" />
    </>
  );
}
