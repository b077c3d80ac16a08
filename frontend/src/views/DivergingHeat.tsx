/** A signed-change heat map on a canvas (one fillRect per cell, no React element per cell): rows x
 * columns on the diverging scale centred on zero (data/compare.ts), a legend, and a tooltip with the
 * hovered cell's real value. The Compare view shows two: layers x tokens and layers x tensor types. */
import { useEffect, useMemo, useRef, useState } from "react";
import { divergingColor, fixed, symmetricMax } from "../data/compare";

interface Props {
  testid: string;
  rows: readonly (readonly (number | null)[])[];
  rowLabels: readonly string[];
  colLabels: readonly string[];
  /** The column axis's name in the tooltip ("token", "type"). */
  colName: string;
  /** What the values are (the legend's unit). */
  unit: string;
  maxWidth?: number;
  /** The widest a cell may be (px). */
  maxCell?: number;
  /** Short row labels at the left ("L3"), and the column labels under the columns (vertical). */
  rowTicks?: readonly string[];
  colTicks?: boolean;
  /** A column to outline (the scrubber's token), if any. */
  marker?: number | null;
  onColumn?: (c: number) => void;
}

const CELL_H = 14;

export function DivergingHeat(props: Props) {
  const { testid, rows, rowLabels, colLabels, colName, unit, maxWidth = 560, maxCell = 24, rowTicks, colTicks = false, marker = null, onColumn } = props;
  const nRows = rows.length, nCols = colLabels.length;
  const cellW = Math.max(4, Math.min(maxCell, Math.floor(maxWidth / Math.max(1, nCols))));
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
    if (marker !== null && marker >= 0 && marker < nCols) {
      ctx.strokeStyle = "#facc15";
      ctx.lineWidth = 1;
      ctx.strokeRect(marker * cellW + 0.5, 0.5, cellW - 1, nRows * CELL_H - 1);
    }
  }, [rows, nRows, nCols, cellW, m, marker]);
  // The cell from the canvas's box; the tooltip's place from the wrapper's (the canvas may be scrolled).
  const cellAt = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const wrap = e.currentTarget.closest(".compare-heat-wrap")?.getBoundingClientRect() ?? box;
    const r = Math.floor((e.clientY - box.top) / CELL_H), c = Math.floor((e.clientX - box.left) / cellW);
    const x = e.clientX - wrap.left, y = e.clientY - wrap.top;
    return r >= 0 && r < nRows && c >= 0 && c < nCols ? { r, c, x, y } : null;
  };
  const value = hover ? rows[hover.r]?.[hover.c] : null;
  return (
    <div className="compare-heat-wrap">
      <div className="compare-heat-grid">
        {rowTicks && (
          <div className="compare-row-ticks small muted">
            {rowTicks.map((t, i) => <div key={i} style={{ height: CELL_H, lineHeight: `${CELL_H}px` }}>{t}</div>)}
          </div>
        )}
        <div className="compare-heat-scroll" style={{ maxWidth: maxWidth + 40 }}>
          <canvas ref={ref} data-testid={testid} data-rows={nRows} data-cols={nCols} width={nCols * cellW} height={nRows * CELL_H}
            onMouseMove={(e) => setHover(cellAt(e))} onMouseLeave={() => setHover(null)}
            onClick={(e) => { const h = cellAt(e); if (h && onColumn) onColumn(h.c); }} />
          {colTicks && (
            <div className="compare-col-ticks small muted" data-testid={`${testid}-cols`}>
              {colLabels.map((t, i) => <div key={i} style={{ width: cellW }} title={t}>{t}</div>)}
            </div>
          )}
        </div>
      </div>
      <div className="compare-legend small muted">
        <span className="compare-ramp" style={{ background: `linear-gradient(to right, ${divergingColor(-m, m)}, ${divergingColor(0, m)}, ${divergingColor(m, m)})` }} />{" "}
        −{fixed(m, 4)} … 0 … +{fixed(m, 4)} {unit}
      </div>
      {hover && (
        <div className="compare-tip tooltip" data-testid={`${testid}-tip`} data-row={rowLabels[hover.r]} data-col={hover.c}
          data-value={value === null || value === undefined ? "" : String(value)} style={{ left: hover.x + 12, top: hover.y + 12 }}>
          {rowLabels[hover.r]} · {colName} {colLabels[hover.c]}: {fixed(value, 6)}
        </div>
      )}
    </div>
  );
}
