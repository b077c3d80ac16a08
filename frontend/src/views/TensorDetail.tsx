/** Tensor detail: the selected tensor's metric over every step of the trial (SVG chart) and all its
 * statistics at the current step and at the chosen token. */
import type { GridCell, Metric, StepOut, TrialOut } from "../api/client";
import { fmt } from "../data/format";

interface Props {
  cell: GridCell;
  trial: TrialOut;
  steps: (StepOut | null)[]; // every step of the trial, loaded
  step: number;
  token: number | null;
  metric: Metric;
  onStep: (step: number) => void;
}

export function statAt(s: StepOut | null, id: number, name: string): number | null {
  if (!s) return null;
  const i = s.stat_names.indexOf(name);
  const t = s.tensors.find((x) => x.id === id);
  return t && i >= 0 ? (t.stats[i] ?? null) : null;
}

export function rowAt(s: StepOut | null, id: number, pos: number | null): (number | null)[] | null {
  if (!s || pos === null) return null;
  const t = s.tensors.find((x) => x.id === id);
  if (!t) return null;
  const k = s.positions.indexOf(pos);
  if (k < 0) return null;
  if (t.rows) return t.rows[k] ?? null;
  return s.n_tokens === 1 ? t.stats : null; // a decode step's stats are its single token's row
}

export function TensorDetail({ cell, trial, steps, step, token, metric, onStep }: Props) {
  const chartMetric = metric === "count" ? "l2" : metric;
  const series = steps.map((s) => statAt(s, cell.id, chartMetric));
  const present = series.filter((v): v is number => v !== null);
  const lo = present.length ? Math.min(...present) : 0;
  const hi = present.length ? Math.max(...present) : 1;
  const W = 360, H = 140, P = 30;
  const x = (i: number) => P + (i * (W - P - 8)) / Math.max(1, series.length - 1);
  const y = (v: number) => H - 18 - ((v - lo) / (hi - lo || 1)) * (H - 36);
  const pts = series.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean).join(" ");
  const cur = steps[step] ?? null;
  const names = cur?.stat_names ?? [];
  const row = rowAt(cur, cell.id, token);
  return (
    <div className="detail" data-testid="tensor-detail" data-tensor-id={cell.id}>
      <h3 data-testid="detail-name">{cell.name}</h3>
      <div className="muted">
        layer {cell.layer} · {cell.type} · {cell.category} · op {cell.op} · shape [{cell.shape.join(", ")}]
        {!cell.captured && " · values not read (only counted) in this capture's preset"}
      </div>
      <svg width={W} height={H} className="chart" data-testid="detail-chart" aria-label={`${chartMetric} over steps`}>
        <text x={4} y={12} fontSize={10} fill="#94a3b8">{chartMetric} over steps{metric === "count" ? " (count is per trial)" : ""}</text>
        <text x={4} y={24} fontSize={9} fill="#94a3b8">{fmt(hi)}</text>
        <text x={4} y={H - 18} fontSize={9} fill="#94a3b8">{fmt(lo)}</text>
        <line x1={P} x2={W - 8} y1={H - 18} y2={H - 18} stroke="#334155" />
        <polyline points={pts} fill="none" stroke="#f89540" strokeWidth={2} />
        {series.map((v, i) => (
          <circle key={i} cx={x(i)} cy={v === null ? H - 18 : y(v)} r={i === step ? 5 : 3}
            fill={v === null ? "#475569" : i === step ? "#ffffff" : "#f89540"} className="chart-point"
            data-step={i} data-value={v === null ? "null" : String(v)} onClick={() => onStep(i)} style={{ cursor: "pointer" }}>
            <title>{`step ${i}: ${fmt(v)}`}</title>
          </circle>
        ))}
        {series.map((_, i) => (
          <text key={`x${i}`} x={x(i)} y={H - 4} fontSize={9} textAnchor="middle" fill="#64748b">{i}</text>
        ))}
      </svg>
      <table className="stats" data-testid="detail-stats">
        <thead>
          <tr><th>statistic</th><th>step {step}</th><th>{token === null ? "token (choose one)" : `token ${token}`}</th></tr>
        </thead>
        <tbody>
          {names.map((n, i) => (
            <tr key={n} data-stat={n}>
              <td>{n}</td>
              <td data-testid={`stat-step-${n}`}>{fmt(statAt(cur, cell.id, n))}</td>
              <td data-testid={`stat-token-${n}`}>{row ? fmt(row[i] ?? null) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {token !== null && !row && cur && (
        <div className="muted">No row for token {token} at this step (llama.cpp keeps only the rows it needs in some tensors).</div>
      )}
      <div className="muted">{trial.steps.length} steps; values read at {present.length}.</div>
    </div>
  );
}
