/** The compare panel: two trials of the current capture compared (/api/compare; a: the reference).
 * A pair capture made by `spectra-vis compare` (trial 0 the reference model, trial 1 the candidate)
 * opens compared. Shows the summary, the residual drift per layer, the residual L2 change per layer
 * and token (a diverging heat map), the shared tokens with the positions where the two top-1 next
 * tokens differ, and a scrubber over the token positions. */
import { useEffect, useMemo, useRef, useState } from "react";
import { useCompare } from "../api/queries";
import type { ComparisonOut } from "../api/client";
import {
  defaultPair, disagreesAt, divergingColor, driftPoints, firstScored, fixed, positionLine, summaryLine, symmetricMax,
  tokenTitle, trialRef,
} from "../data/compare";
import { tokenLabel } from "../data/format";
import { useCurrent } from "./current";
import { ErrorBox, Loading } from "./Status";

export function ComparePanel() {
  const { capture, cid } = useCurrent();
  if (!capture || !cid) return null;
  // Keyed by capture: another capture starts from its own default pair.
  return <CompareBody key={cid} cid={cid} trials={capture.trial_list.map((t) => t.id)} />;
}

function CompareBody({ cid, trials }: { cid: string; trials: number[] }) {
  const initial = defaultPair(trials.length);
  const [a, setA] = useState<number | null>(initial ? trials[initial.a] : null);
  const [b, setB] = useState<number | null>(initial ? trials[initial.b] : null);
  const ready = a !== null && b !== null && a !== b;
  const cmp = useCompare(ready ? trialRef(cid, a) : null, ready ? trialRef(cid, b) : null);
  const pick = (set: (v: number | null) => void) => (e: React.ChangeEvent<HTMLSelectElement>) =>
    set(e.target.value === "" ? null : Number(e.target.value));
  return (
    <section className="panel view-compare" id="view-compare" data-testid="compare-panel">
      <h2>Compare</h2>
      <div className="compare-pick">
        <label>a (reference){" "}
          <select data-testid="compare-a" value={a ?? ""} onChange={pick(setA)}>
            <option value="">—</option>
            {trials.map((t) => <option key={t} value={t}>{trialRef(cid, t)}</option>)}
          </select>
        </label>{" "}
        <label>b{" "}
          <select data-testid="compare-b" value={b ?? ""} onChange={pick(setB)}>
            <option value="">—</option>
            {trials.map((t) => <option key={t} value={t}>{trialRef(cid, t)}</option>)}
          </select>
        </label>
      </div>
      {!ready && <p className="muted" data-testid="compare-hint">Pick two different trials to compare.</p>}
      <ErrorBox error={cmp.error} what="the comparison" />
      {cmp.loading && <Loading what="the comparison" />}
      {ready && cmp.data && <Comparison key={`${a}:${b}`} data={cmp.data} />}
    </section>
  );
}

function Comparison({ data }: { data: ComparisonOut }) {
  const next = data.next_token;
  const [pos, setPos] = useState(() => firstScored(next));
  const n = data.n_shared;
  return (
    <div data-testid="compare-view" data-a={`${data.a.capture_id}:${data.a.trial}`} data-b={`${data.b.capture_id}:${data.b.trial}`}>
      <p className="small" data-testid="compare-models">
        a: {data.a.model ?? "?"} ({data.a.n_tokens} tokens) · b: {data.b.model ?? "?"} ({data.b.n_tokens} tokens)
      </p>
      <p data-testid="compare-summary">{summaryLine(data.summary)}</p>
      {data.notices.length > 0 && (
        <ul className="compare-notices muted small" data-testid="compare-notices">
          {data.notices.map((m, i) => <li key={i}>{m}</li>)}
        </ul>
      )}
      <div className="compare-row">
        <div>
          <h3>Residual drift (mean cosine per layer)</h3>
          <DriftCurve data={data} />
        </div>
        <div>
          <h3>Residual L2 change, layers × tokens</h3>
          <Heat data={data} pos={pos} />
        </div>
      </div>
      <h3>Tokens <span className="muted small">(red underline: the two top-1 next tokens differ)</span></h3>
      <div className="compare-strip" data-testid="compare-strip">
        {data.tokens.slice(0, n).map((t, i) => (
          <span key={i} data-pos={i} title={tokenTitle(t, next, i)} onClick={() => setPos(i)}
            className={["compare-tok", i >= data.n_prompt ? "generated" : "", disagreesAt(next, i) ? "disagree" : "", i === pos ? "current" : ""]
              .filter(Boolean).join(" ")}>
            {tokenLabel(t)}
          </span>
        ))}
      </div>
      {n > 0 && (
        <div className="compare-scrubber">
          <input type="range" data-testid="compare-scrub" aria-label="token position" min={0} max={n - 1} step={1} value={pos}
            onChange={(e) => setPos(Number(e.target.value))} />{" "}
          <span className="muted small">token {pos}</span>{" "}
          <span data-testid="compare-pos" data-pos={pos}>{positionLine(next, pos)}</span>
        </div>
      )}
    </div>
  );
}

const DRIFT_W = 220, DRIFT_H = 90;

function DriftCurve({ data }: { data: ComparisonOut }) {
  const pts = useMemo(() => driftPoints(data.layers, data.drift, DRIFT_W, DRIFT_H), [data]);
  if (pts.length === 0) return <p className="muted small" data-testid="compare-drift-none">No residual drift (no residual vectors in both trials).</p>;
  return (
    <svg className="compare-drift" data-testid="compare-drift" width={DRIFT_W} height={DRIFT_H} viewBox={`0 0 ${DRIFT_W} ${DRIFT_H}`}>
      <polyline points={pts.map((p) => `${p.x},${p.y}`).join(" ")} />
      {pts.map((p) => (
        <circle key={p.layer} cx={p.x} cy={p.y} r={3} data-layer={p.layer} data-value={p.value.toFixed(6)}>
          <title>layer {p.layer}: {p.value.toFixed(6)}</title>
        </circle>
      ))}
    </svg>
  );
}

const CELL_H = 14;

function Heat({ data, pos }: { data: ComparisonOut; pos: number }) {
  const rows = data.resid_l2_change;
  const nRows = data.layers.length, nCols = data.n_shared;
  const cellW = Math.max(4, Math.min(24, Math.floor(560 / Math.max(1, nCols))));
  const m = useMemo(() => symmetricMax(rows), [rows]);
  const ref = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<{ r: number; c: number; x: number; y: number } | null>(null);
  useEffect(() => {
    const ctx = ref.current?.getContext("2d");
    if (!ctx) return;
    for (let r = 0; r < nRows; r++)
      for (let c = 0; c < nCols; c++) {
        ctx.fillStyle = divergingColor(rows[r]?.[c], m);
        ctx.fillRect(c * cellW, r * CELL_H, cellW, CELL_H);
      }
    ctx.strokeStyle = "#facc15";
    ctx.lineWidth = 1;
    if (pos >= 0 && pos < nCols) ctx.strokeRect(pos * cellW + 0.5, 0.5, cellW - 1, nRows * CELL_H - 1);
  }, [rows, nRows, nCols, cellW, m, pos]);
  const onMove = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const x = e.clientX - box.left, y = e.clientY - box.top;
    const r = Math.floor(y / CELL_H), c = Math.floor(x / cellW);
    setHover(r >= 0 && r < nRows && c >= 0 && c < nCols ? { r, c, x, y } : null);
  };
  return (
    <div className="compare-heat-wrap">
      <canvas ref={ref} data-testid="compare-heat" data-rows={nRows} data-cols={nCols} width={nCols * cellW} height={nRows * CELL_H}
        onMouseMove={onMove} onMouseLeave={() => setHover(null)} />
      <div className="compare-legend small muted">
        <span className="compare-ramp" style={{ background: `linear-gradient(to right, ${divergingColor(-m, m)}, ${divergingColor(0, m)}, ${divergingColor(m, m)})` }} />{" "}
        −{fixed(m, 4)} … 0 … +{fixed(m, 4)} (b − a) / |a|
      </div>
      {hover && (
        <div className="compare-tip tooltip" data-testid="compare-tip" data-layer={data.layers[hover.r]} data-pos={hover.c}
          style={{ left: hover.x + 12, top: hover.y + 12 }}>
          layer {data.layers[hover.r]} · token {hover.c} “{tokenLabel(data.tokens[hover.c] ?? "")}”: {fixed(rows[hover.r]?.[hover.c], 6)}
        </div>
      )}
    </div>
  );
}
