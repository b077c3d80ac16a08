import type { Metric } from "../api/client";
import { DEPTH_LABELS, METRICS, explanations } from "../data/explain";
import { SCALE_KINDS, SCALE_LABELS, type ScaleKind } from "../data/scale";

const SCALE_HELP =
  "How values map to colour (heat maps) and height/glow (grid). linear: as they are; log: sign·log10(1 + |v|/floor), " +
  "for one huge value (the logits' L2) that washes out the rest; rank: each value's percentile. Hover and legends show real values.";

export function Controls({ metric, scale, depth, onMetric, onScale, onDepth }: {
  metric: Metric; scale: ScaleKind; depth: number;
  onMetric: (m: Metric) => void; onScale: (s: ScaleKind) => void; onDepth: (d: number) => void;
}) {
  return (
    <div className="controls" data-testid="controls">
      <label title={explanations.metrics[metric]}>
        Metric{" "}
        <select aria-label="metric" value={metric} onChange={(e) => onMetric(e.target.value as Metric)}>
          {METRICS.map((m) => <option key={m} value={m}>{m === "absmax" ? "abs-max" : m}</option>)}
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
        <select aria-label="depth" value={depth} onChange={(e) => onDepth(Number(e.target.value))}>
          {DEPTH_LABELS.map((d, i) => <option key={i} value={i}>{d}</option>)}
        </select>
      </label>
    </div>
  );
}
