import type { Metric } from "../api/client";
import { DEPTH_LABELS, METRICS, explanations } from "../data/explain";

export function Controls({ metric, depth, onMetric, onDepth }: {
  metric: Metric; depth: number; onMetric: (m: Metric) => void; onDepth: (d: number) => void;
}) {
  return (
    <div className="controls" data-testid="controls">
      <label title={explanations.metrics[metric]}>
        Metric{" "}
        <select aria-label="metric" value={metric} onChange={(e) => onMetric(e.target.value as Metric)}>
          {METRICS.map((m) => <option key={m} value={m}>{m === "absmax" ? "abs-max" : m}</option>)}
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
