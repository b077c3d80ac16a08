/** A heat map drawn to canvases (long trials: layers × thousands of tokens), in a horizontally
 * scrolling viewport. The cells are one bitmap of one pixel per cell, drawn once per data and scale
 * and shown scaled up (pixelated): scrolling moves a picture, nothing is redrawn. The row labels
 * stay at the left (sticky); the column labels, a strip as wide as the viewport, are redrawn on
 * scroll. Same readout, colours and clicks as the SVG heat map (views/HeatMap); the hovered cell's
 * row, column and real value are on the element (data-hover-*) for tests, the cell size on the
 * cells' canvas (data-cell-w, data-cell-h). */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { HeatmapOut } from "../api/client";
import { rampColor } from "../data/colors";
import { fmt, shortLayer, tokenLabel } from "../data/format";
import { scrollToCol, visibleCols, type HeatGeometry } from "../data/heatGeometry";
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
const BG = "#0f172a";

export function HeatMapCanvas({ data, ramp, vs, scaleKind, highlightCol, special, onCell, testId, geometry, legend }: Props) {
  const { labelW, headH, cellW, cellH } = geometry;
  const [nRows, nCols] = [data.rows.length, data.cols.length];
  const g: HeatGeometry = useMemo(
    () => ({ labelW, headH, cellW, cellH, rows: nRows, cols: nCols }), [labelW, headH, cellW, cellH, nRows, nCols]);
  const scroller = useRef<HTMLDivElement>(null);
  const cells = useRef<HTMLCanvasElement>(null);
  const rowLabels = useRef<HTMLCanvasElement>(null);
  const colLabels = useRef<HTMLCanvasElement>(null);
  const [scroll, setScroll] = useState(0);
  const [viewW, setViewW] = useState(900);
  const [hover, setHover] = useState<{ r: number; c: number } | null>(null);
  const plotW = g.cols * g.cellW;
  const plotH = g.rows * g.cellH;

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

  useEffect(() => { // the cells: one pixel each, once per data and scale
    const ctx = cells.current?.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(Math.max(1, g.cols), Math.max(1, g.rows));
    const rgb = new Map<string, number[]>();
    const parse = (c: string) => {
      let v = rgb.get(c);
      if (!v) {
        ctx.fillStyle = c; // the canvas normalises any CSS colour to #rrggbb
        const h = String(ctx.fillStyle);
        v = [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
        rgb.set(c, v);
      }
      return v;
    };
    for (let i = 0; i < g.rows; i++) {
      const row = data.values[i] ?? [];
      for (let j = 0; j < g.cols; j++) {
        const t = vs.position(row[j] ?? null);
        const [r, gg, b] = parse(t === null ? EMPTY : rampColor(ramp, t));
        const k = (i * g.cols + j) * 4;
        img.data[k] = r; img.data[k + 1] = gg; img.data[k + 2] = b; img.data[k + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }, [data, g, vs, ramp]);

  useEffect(() => { // the row labels, once per data
    const cv = rowLabels.current;
    const ctx = cv?.getContext("2d");
    if (!cv || !ctx) return;
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, g.labelW, plotH);
    ctx.fillStyle = "#cbd5e1";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "end";
    for (let i = 0; i < g.rows; i++) ctx.fillText(shortLayer(data.rows[i], special), g.labelW - 4, i * g.cellH + g.cellH * 0.72);
  }, [data, g, plotH, special]);

  const width = Math.min(g.labelW + plotW + 4, viewW);
  useEffect(() => { // the column labels in view, again on scroll (a strip headH tall)
    const cv = colLabels.current;
    const ctx = cv?.getContext("2d");
    if (!cv || !ctx) return;
    if (cv.width !== width) cv.width = width;
    ctx.clearRect(0, 0, width, g.headH);
    ctx.fillStyle = "#cbd5e1";
    ctx.font = "10px sans-serif";
    const [c0, c1] = visibleCols(g, scroll, width);
    const every = Math.max(1, Math.ceil(12 / g.cellW));
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.labelW, 0, width - g.labelW, g.headH);
    ctx.clip();
    for (let j = c0; j < c1; j++) {
      if (j % every) continue;
      const c = data.cols[j];
      ctx.save();
      ctx.translate(g.labelW + j * g.cellW + g.cellW / 2 + 3 - scroll, g.headH - 4);
      ctx.rotate(-Math.PI / 3);
      ctx.fillText(data.axis === "tokens" ? tokenLabel(c.text ?? c.label).slice(0, 10) : c.label, 0, 0);
      ctx.restore();
    }
    ctx.restore();
  }, [data, g, scroll, width]);

  const at = (e: React.MouseEvent<HTMLCanvasElement>) => {
    const c = Math.floor(e.nativeEvent.offsetX / g.cellW);
    const r = Math.floor(e.nativeEvent.offsetY / g.cellH);
    return r >= 0 && c >= 0 && r < g.rows && c < g.cols ? { r, c } : null;
  };
  const hv = hover ? data.values[hover.r]?.[hover.c] ?? null : null;
  const hc = hover ? data.cols[hover.c] : undefined;
  const showHighlight = highlightCol != null && data.axis === "tokens" && highlightCol >= 0 && highlightCol < g.cols;
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
        <div style={{ width: g.labelW + plotW + 4, height: g.headH + plotH + 4 }}>
          <canvas ref={colLabels} height={g.headH} style={{ position: "sticky", left: 0, display: "block", width, height: g.headH }} />
          <div style={{ display: "flex", position: "relative" }}>
            <canvas ref={rowLabels} width={g.labelW} height={plotH}
              style={{ position: "sticky", left: 0, zIndex: 1, display: "block", width: g.labelW, height: plotH, flex: "none" }} />
            <div style={{ position: "relative", flex: "none" }}>
              <canvas ref={cells} className="heat-canvas" width={Math.max(1, g.cols)} height={Math.max(1, g.rows)}
                data-cell-w={g.cellW} data-cell-h={g.cellH}
                style={{ display: "block", width: plotW, height: plotH, imageRendering: "pixelated" }}
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
              {showHighlight && (
                <div className="heat-highlight" style={{ position: "absolute", top: 0, left: highlightCol! * g.cellW, width: g.cellW, height: plotH,
                  outline: "1px solid #ffffff", pointerEvents: "none" }} />
              )}
            </div>
          </div>
        </div>
      </div>
      {legend}
    </div>
  );
}
