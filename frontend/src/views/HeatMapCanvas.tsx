/** A heat map drawn to one canvas (long trials: layers × thousands of tokens), in a horizontally
 * scrolling viewport: only the columns in view are drawn, again on scroll. Same readout, colours and
 * clicks as the SVG heat map (views/HeatMap); the hovered cell's row, column and real value are on
 * the element (data-hover-*) for tests, the geometry on the canvas (data-label-w, ...). */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { HeatmapOut } from "../api/client";
import { rampColor } from "../data/colors";
import { fmt, shortLayer, tokenLabel } from "../data/format";
import { cellAtPoint, scrollToCol, visibleCols, type HeatGeometry } from "../data/heatGeometry";
import type { SpecialLayers } from "../data/layers";
import type { ScaleKind, ValueScale } from "../data/scale";

interface Props {
  data: HeatmapOut;
  ramp: string[];
  vs: ValueScale;
  scaleKind: ScaleKind;
  highlightCol?: number | null;
  special: SpecialLayers | null;
  onCell: (row: number, colIndex: number) => void;
  testId: string;
  geometry: Omit<HeatGeometry, "rows" | "cols">;
  legend: React.ReactNode;
}

const EMPTY = "#1e2433";

export function HeatMapCanvas({ data, ramp, vs, scaleKind, highlightCol, special, onCell, testId, geometry, legend }: Props) {
  const { labelW, headH, cellW, cellH } = geometry;
  const [nRows, nCols] = [data.rows.length, data.cols.length];
  const g: HeatGeometry = useMemo(
    () => ({ labelW, headH, cellW, cellH, rows: nRows, cols: nCols }), [labelW, headH, cellW, cellH, nRows, nCols]);
  const scroller = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [scroll, setScroll] = useState(0);
  const [viewW, setViewW] = useState(900);
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  const fullW = g.labelW + g.cols * g.cellW + 4;
  const height = g.headH + g.rows * g.cellH + 4;
  const width = Math.min(fullW, viewW);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewW(el.clientWidth || 900));
    ro.observe(el);
    setViewW(el.clientWidth || 900);
    return () => ro.disconnect();
  }, []);

  useEffect(() => { // keep the chosen token's column in view
    const el = scroller.current;
    if (!el || highlightCol == null || data.axis !== "tokens") return;
    const left = scrollToCol(g, highlightCol, el.scrollLeft, el.clientWidth);
    if (left !== el.scrollLeft) el.scrollLeft = left;
  }, [highlightCol, g, data.axis]);

  // Every cell's colour, once per data and scale (not per frame: a frame only fills rectangles).
  const colors = useMemo(
    () => data.values.map((row) => row.map((v) => {
      const t = vs.position(v ?? null);
      return t === null ? EMPTY : rampColor(ramp, t);
    })),
    [data.values, vs, ramp],
  );

  useEffect(() => {
    const cv = canvas.current;
    const ctx = cv?.getContext("2d");
    if (!cv || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    const [w, h] = [Math.round(width * dpr), Math.round(height * dpr)];
    if (cv.width !== w || cv.height !== h) [cv.width, cv.height] = [w, h]; // a new size reallocates the bitmap
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const [c0, c1] = visibleCols(g, scroll, width);
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.labelW, 0, width - g.labelW, height);
    ctx.clip();
    for (let i = 0; i < g.rows; i++) {
      const row = colors[i] ?? [];
      for (let j = c0; j < c1; j++) {
        ctx.fillStyle = row[j] ?? EMPTY;
        ctx.fillRect(g.labelW + j * g.cellW - scroll, g.headH + i * g.cellH, g.cellW - (g.cellW > 3 ? 1 : 0), g.cellH - 1);
      }
    }
    ctx.fillStyle = "#cbd5e1";
    ctx.font = "10px sans-serif";
    const every = Math.max(1, Math.ceil(12 / g.cellW));
    for (let j = c0; j < c1; j++) {
      if (j % every) continue;
      const c = data.cols[j];
      ctx.save();
      ctx.translate(g.labelW + j * g.cellW + g.cellW / 2 + 3 - scroll, g.headH - 4);
      ctx.rotate(-Math.PI / 3);
      ctx.fillText(data.axis === "tokens" ? tokenLabel(c.text ?? c.label).slice(0, 10) : c.label, 0, 0);
      ctx.restore();
    }
    if (highlightCol != null && data.axis === "tokens" && highlightCol >= c0 && highlightCol < c1) {
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(g.labelW + highlightCol * g.cellW - scroll + 0.5, g.headH + 0.5, g.cellW - 1, g.rows * g.cellH - 1);
    }
    ctx.restore();
    ctx.textAlign = "end";
    for (let i = 0; i < g.rows; i++) ctx.fillText(shortLayer(data.rows[i], special), g.labelW - 4, g.headH + i * g.cellH + g.cellH * 0.72);
  }, [data, g, colors, scroll, width, height, highlightCol, special]);

  const at = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const x = e.clientX - box.left;
    return x < g.labelW ? null : cellAtPoint(g, x + scroll, e.clientY - box.top);
  };
  const hv = hover ? data.values[hover.r]?.[hover.c] ?? null : null;
  const hc = hover ? data.cols[hover.c] : undefined;
  return (
    <div className="heatmap" data-testid={testId} data-render="canvas" data-scale={scaleKind} data-capture-id={data.capture_id}
      data-step={data.step ?? ""} data-type={data.type ?? ""}
      data-hover-row={hover ? data.rows[hover.r] : ""} data-hover-col={hc ? (data.axis === "tokens" ? hc.index : hc.label) : ""}
      data-hover-value={hover ? (hv === null ? "null" : String(hv)) : ""}>
      <div className="heatmap-readout" data-testid={`${testId}-readout`}>
        {hover && hc
          ? `${shortLayer(data.rows[hover.r], special)} · ${data.axis === "tokens" ? `token ${hc.index} “${tokenLabel(hc.text ?? hc.label)}”` : hc.label} · ${data.metric} = ${fmt(hv)}`
          : "Hover a cell for its value; click to open that tensor."}
      </div>
      <div className="heatmap-scroll" ref={scroller} onScroll={(e) => setScroll(e.currentTarget.scrollLeft)}>
        <div style={{ width: fullW, height, position: "relative" }}>
          <canvas ref={canvas} className="heat-canvas" style={{ position: "sticky", left: 0, display: "block", width, height }}
            data-label-w={g.labelW} data-head-h={g.headH} data-cell-w={g.cellW} data-cell-h={g.cellH}
            role="img" aria-label={`heat map of ${data.metric} by layer and ${data.axis === "tokens" ? "token" : "tensor type"}`}
            onMouseMove={(e) => {
              const cell = at(e);
              setHover((h) => (h?.r === cell?.r && h?.c === cell?.c ? h : cell));
            }}
            onMouseLeave={() => setHover(null)}
            onClick={(e) => {
              const cell = at(e);
              if (cell) onCell(cell.r, cell.c);
            }} />
        </div>
      </div>
      {legend}
    </div>
  );
}
