/** Heat map as SVG: rows are layers, columns tensor types (at the current step) or tokens (the
 * timeline of one tensor type). Cells carry data-row/data-col/data-value for tests; hover shows
 * the value, click jumps to that tensor (and token). */
import { useState } from "react";
import type { HeatmapOut } from "../api/client";
import { normalise, rampColor } from "../data/colors";
import { fmt, shortLayer, tokenLabel } from "../data/format";

interface Props {
  data: HeatmapOut;
  scale: string[];
  highlightCol?: number | null;
  onCell: (row: number, colIndex: number) => void;
  testId: string;
}

const CELL_H = 16;
const LABEL_W = 44;
const HEAD_H = 70;

export function HeatMap({ data, scale, highlightCol, onCell, testId }: Props) {
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  const cellW = Math.max(10, Math.min(28, Math.floor(900 / Math.max(1, data.cols.length))));
  const width = LABEL_W + data.cols.length * cellW + 4;
  const height = HEAD_H + data.rows.length * CELL_H + 4;
  const hv = hover ? data.values[hover.r]?.[hover.c] : undefined;
  const hc = hover ? data.cols[hover.c] : undefined;
  return (
    <div className="heatmap" data-testid={testId} data-capture-id={data.capture_id} data-step={data.step ?? ""} data-type={data.type ?? ""}>
      <div className="heatmap-readout" data-testid={`${testId}-readout`}>
        {hover && hc
          ? `${shortLayer(data.rows[hover.r])} · ${data.axis === "tokens" ? `token ${hc.index} “${tokenLabel(hc.text ?? hc.label)}”` : hc.label} · ${data.metric} = ${fmt(hv ?? null)}`
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
                {shortLayer(layer)}
              </text>
              {data.cols.map((c, j) => {
                const v = data.values[i]?.[j] ?? null;
                const t = normalise(v, data.min ?? null, data.max ?? null);
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
                    <title>{`${shortLayer(layer)} ${c.label}: ${fmt(v)}`}</title>
                  </rect>
                );
              })}
            </g>
          ))}
        </svg>
      </div>
      <ScaleLegend scale={scale} min={data.min ?? null} max={data.max ?? null} label={data.metric} />
    </div>
  );
}

export function ScaleLegend({ scale, min, max, label }: { scale: string[]; min: number | null; max: number | null; label: string }) {
  return (
    <div className="scale-legend" data-testid="scale-legend">
      <span>{fmt(min)}</span>
      <span className="scale-bar" style={{ background: `linear-gradient(to right, ${scale.join(", ")})` }} />
      <span>{fmt(max)}</span>
      <span className="muted"> {label} (grey: not read)</span>
    </div>
  );
}
