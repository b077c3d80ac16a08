/** The steering projection chart: where the model "thinks along" the control vector's concept. Each
 * compared trial that ran with a control vector (GET /api/trials/{id}/projection; a sweep's baseline
 * too, at strength 0) is one line of its residual stream's projection on the vector's direction,
 * either per layer (projection against token position; a line marks where the response starts) or
 * per token (projection against layer, at the compare scrubber's token). Data: data/projection.ts. */
import { useMemo, useState } from "react";
import type { ProjectionOut } from "../api/client";
import { useProjection } from "../api/queries";
import { fixed } from "../data/compare";
import { tokenLabel } from "../data/format";
import { alongLayers, alongTokens, layoutLines, lineLabel, projectionLayers, type ProjectionMode, type Pt } from "../data/projection";
import { ErrorBox } from "./Status";

interface Ref {
  captureId: string | null;
  trial: number;
}

const BOX = { width: 420, height: 150, pad: 8 };
const COLORS = { a: "#94a3b8", b: "#f59e0b" } as const;

/** `b` null: one trial's line alone (a steered capture of one trial). */
export function ProjectionChart({ a, b, pos, posNote = "the scrubber" }: { a: Ref; b: Ref | null; pos: number; posNote?: string }) {
  const pa = useProjection(a.captureId, a.trial), pb = useProjection(b?.captureId ?? null, b?.trial ?? 0);
  const sides = ([["a", pa.data], ["b", pb.data]] as const).filter((s): s is readonly ["a" | "b", ProjectionOut] => s[1] !== null);
  const layers = useMemo(() => projectionLayers(pa.data, pb.data), [pa.data, pb.data]);
  const [mode, setMode] = useState<ProjectionMode>("layer");
  const [layer, setLayer] = useState<number | null>(null);
  const shownLayer = layer !== null && layers.includes(layer) ? layer : (layers[layers.length - 1] ?? null);
  if (pa.missing && (pb.missing || b === null)) return null;
  const error = (!pa.missing && pa.error) || (!pb.missing && pb.error) || null;
  const lines: Pt[][] = sides.map(([, p]) => (mode === "layer" ? (shownLayer === null ? [] : alongTokens(p, shownLayer)) : alongLayers(p, pos)));
  return (
    <div className="projection" data-testid="projection" data-mode={mode} data-layer={shownLayer ?? ""} data-pos={pos}>
      <h3>
        Projection on the control vector{" "}
        <select data-testid="projection-mode" aria-label="projection axis" value={mode} onChange={(e) => setMode(e.target.value as ProjectionMode)}>
          <option value="layer">per layer, against token</option>
          <option value="token">per token, against layer</option>
        </select>{" "}
        {mode === "layer" ? (
          <select data-testid="projection-layer" aria-label="layer" value={shownLayer ?? ""} onChange={(e) => setLayer(Number(e.target.value))}>
            {layers.map((l) => <option key={l} value={l}>layer {l}</option>)}
          </select>
        ) : (
          <span className="muted small">at token {pos}{sides[0] ? ` “${tokenLabel(sides[0][1].tokens[pos] ?? "")}”` : ""} ({posNote})</span>
        )}
      </h3>
      {(pa.missing || pb.missing) && (
        <p className="muted small" data-testid="projection-missing">{pa.missing ? `a: ${pa.error}` : `b: ${pb.error}`}</p>
      )}
      <ErrorBox error={error} what="the projection" />
      {sides.length > 0 && <Lines sides={sides} lines={lines} mode={mode} />}
    </div>
  );
}

function Lines({ sides, lines, mode }: { sides: readonly (readonly ["a" | "b", ProjectionOut])[]; lines: Pt[][]; mode: ProjectionMode }) {
  const lay = useMemo(() => layoutLines(lines, BOX), [lines]);
  const nPrompt = sides[0][1].n_prompt;
  const promptX = mode === "layer" && lay.xMax > lay.xMin
    ? BOX.pad + ((nPrompt - 0.5 - lay.xMin) / (lay.xMax - lay.xMin)) * (BOX.width - 2 * BOX.pad) : null;
  return (
    <div>
      <svg className="projection-chart" data-testid="projection-chart" width={BOX.width} height={BOX.height} viewBox={`0 0 ${BOX.width} ${BOX.height}`}>
        <line className="zero" x1={BOX.pad} x2={BOX.width - BOX.pad} y1={lay.zeroY} y2={lay.zeroY} />
        {promptX !== null && <line className="prompt-end" x1={promptX} x2={promptX} y1={BOX.pad} y2={BOX.height - BOX.pad} />}
        {sides.map(([side, p], i) => (
          <g key={side} data-testid={`projection-line-${side}`} data-trial={p.trial} stroke={COLORS[side]} fill={COLORS[side]}>
            {lay.lines[i].segments.map((pts, k) => <polyline key={k} points={pts} />)}
            {lay.lines[i].dots.map((d) => (
              <circle key={d.at} cx={d.x} cy={d.y} r={2.5} data-at={d.at} data-value={String(d.value)}>
                <title>{mode === "layer" ? `token ${d.at} “${tokenLabel(p.tokens[d.at] ?? "")}”` : `layer ${d.at}`}: {fixed(d.value, 4)}</title>
              </circle>
            ))}
          </g>
        ))}
      </svg>
      <div className="projection-legend small muted">
        {fixed(lay.yMin, 2)} … {fixed(lay.yMax, 2)} residual units · x: {mode === "layer" ? "token position (dashed: the response starts)" : "layer"} ·{" "}
        {sides.map(([side, p]) => (
          <span key={side} style={{ color: COLORS[side] }}>■ {lineLabel(side, p)} </span>
        ))}
      </div>
    </div>
  );
}
