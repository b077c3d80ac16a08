/** Heat map as SVG: rows are layers, columns tensor types (at the current step) or tokens (the
 * timeline of one tensor type). Colour by the chosen value scale (data/scale); cells carry
 * data-row/data-col/data-value (the real value) for tests; hover shows the real value, click jumps
 * to that tensor (and token). */
import { useMemo, useState } from "react";
import type { HeatmapOut } from "../api/client";
import { rampColor } from "../data/colors";
import { fmt, shortLayer, tokenLabel } from "../data/format";
import type { SpecialLayers } from "../data/layers";
import { drawsToCanvas } from "../data/heatGeometry";
import { makeScale, type ScaleKind, type ValueScale } from "../data/scale";
import { HeatMapCanvas } from "./HeatMapCanvas";
import { ScaleBar } from "./ScaleBar";

interface Props {
  data: HeatmapOut;
  scale: string[]; // the colour ramp
  scaleKind?: ScaleKind; // how values map onto it (default linear)
  highlightCol?: number | null;
  special?: SpecialLayers | null; // row labels: the API's special layers (none: every row is L<n>)
  onCell: (row: number, colIndex: number) => void;
  testId: string;
}

const CELL_H = 16;
const LABEL_W = 44;
const HEAD_H = 70;

export function HeatMap({ data, scale, scaleKind = "linear", highlightCol, special = null, onCell, testId }: Props) {
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  const vs = useMemo(() => makeScale(scaleKind, data.values.flat()), [scaleKind, data.values]);
  const cellW = Math.max(10, Math.min(28, Math.floor(900 / Math.max(1, data.cols.length))));
  const width = LABEL_W + data.cols.length * cellW + 4;
  const height = HEAD_H + data.rows.length * CELL_H + 4;
  const hv = hover ? data.values[hover.r]?.[hover.c] : undefined;
  const hc = hover ? data.cols[hover.c] : undefined;
  if (drawsToCanvas(data.rows.length, data.cols.length)) { // thousands of cells: one canvas, not an element per cell
    return (
      <HeatMapCanvas data={data} ramp={scale} vs={vs} scaleKind={scaleKind} highlightCol={highlightCol} special={special} onCell={onCell}
        testId={testId} geometry={{ labelW: LABEL_W, headH: HEAD_H, cellW: Math.max(6, cellW), cellH: CELL_H }}
        legend={<ScaleLegend ramp={scale} scale={vs} label={data.metric} />} />
    );
  }
  return (
    <div className="heatmap" data-testid={testId} data-scale={scaleKind} data-capture-id={data.capture_id} data-step={data.step ?? ""} data-type={data.type ?? ""}>
      <div className="heatmap-readout" data-testid={`${testId}-readout`}>
        {hover && hc
          ? `${shortLayer(data.rows[hover.r], special)} · ${data.axis === "tokens" ? `token ${hc.index} “${tokenLabel(hc.text ?? hc.label)}”` : hc.label} · ${data.metric} = ${fmt(hv ?? null)}`
          : "Hover a cell for its value; click to open that tensor."}
      </div>
      <div className="heatmap-scroll">
        <svg width={width} height={height} role="img" aria-label={`heat map of ${data.metric} by layer and ${data.axis === "tokens" ? "token" : "tensor type"}`}>
          {data.cols.map((c, j) => (
            <text
              key={`c${j}`}
              className={`heat-col-label${highlightCol === c.index ? " current" : ""}`}
              transform={`translate(${LABEL_W + j * cellW + cellW / 2 + 3},${HEAD_H - 4}) rotate(-60)`}
              fontSize={10}
            >
              {data.axis === "tokens" ? tokenLabel(c.text ?? c.label).slice(0, 10) : c.label}
            </text>
          ))}
          {data.rows.map((layer, i) => (
            <g key={`r${layer}`}>
              <text x={LABEL_W - 4} y={HEAD_H + i * CELL_H + CELL_H * 0.72} textAnchor="end" fontSize={10} className="heat-row-label">
                {shortLayer(layer, special)}
              </text>
              {data.cols.map((c, j) => {
                const v = data.values[i]?.[j] ?? null;
                const t = vs.position(v);
                return (
                  <rect
                    key={j}
                    className="heat-cell"
                    data-row={layer}
                    data-col={data.axis === "tokens" ? c.index : c.label}
                    data-value={v === null ? "null" : String(v)}
                    x={LABEL_W + j * cellW}
                    y={HEAD_H + i * CELL_H}
                    width={cellW - 1}
                    height={CELL_H - 1}
                    fill={t === null ? "#1e2433" : rampColor(scale, t)}
                    stroke={highlightCol === c.index && data.axis === "tokens" ? "#ffffff" : "none"}
                    strokeWidth={highlightCol === c.index ? 1 : 0}
                    onMouseEnter={() => setHover({ r: i, c: j })}
                    onMouseLeave={() => setHover(null)}
                    onClick={() => onCell(i, j)}
                  >
                    <title>{`${shortLayer(layer, special)} ${c.label}: ${fmt(v)}`}</title>
                  </rect>
                );
              })}
            </g>
          ))}
        </svg>
      </div>
      <ScaleLegend ramp={scale} scale={vs} label={data.metric} />
    </div>
  );
}

export function ScaleLegend({ ramp, scale, label }: { ramp: string[]; scale: ValueScale; label: string }) {
  return (
    <div className="scale-legend" data-testid="scale-legend">
      <ScaleBar ramp={ramp} scale={scale} />
      <span className="muted"> {label} (grey: not read)</span>
    </div>
  );
}
