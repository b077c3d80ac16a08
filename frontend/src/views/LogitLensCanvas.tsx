/** The logit-lens grid of a long trial drawn to one canvas as wide as the viewport (a grid of 4,000
 * tokens would be 224,000 pixels wide: too wide for one bitmap, and one element per cell is 140,000
 * elements). Only the columns in view are drawn (data/heatGeometry's windowing), again on scroll:
 * each cell's fill by probability and its top-1 text, the row labels (they stay at the left), the
 * column labels, the end of the prompt and the first-final-layer line. The selection marks are two
 * elements over it. Hover and click find the cell under the pointer (cellAtPoint); the hovered
 * cell's layer, position, text and probability are on the element (data-hover-*) for tests. */
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type MouseEvent } from "react";
import { shortLayer, tokenLabel } from "../data/format";
import { cellAtPoint, scrollToCol, visibleCols, type HeatGeometry } from "../data/heatGeometry";
import type { SpecialLayers } from "../data/layers";
import {
  LENS_LAYOUT as L, cellX, cellY, firstFinalLine, fitText, gridSize, lensColor, lensGeometry, textColorOn, type FinalMark, type LensModel,
} from "../data/logitLens";
import { LensLegend, type LogitLensProps } from "./LogitLens";
import { LensTooltip, type Hover } from "./LogitLensTooltip";

const BG = "#0f172a";
const LABEL = "#cbd5e1";
const GENERATED = "#f0f921";
const FINAL = "#22d3ee";
const MIN_TEXT_W = 24; // narrower cells show no text

interface Frame {
  m: LensModel;
  g: HeatGeometry;
  fills: string[][];
  marks: Map<number, FinalMark>;
  special: SpecialLayers | null;
  scroll: number;
  width: number;
  height: number;
}

function drawCells(ctx: CanvasRenderingContext2D, f: Frame, c0: number, c1: number) {
  const { m, g, fills, scroll } = f;
  const text = g.cellW >= MIN_TEXT_W;
  ctx.font = "11px ui-monospace, monospace";
  ctx.textBaseline = "middle";
  ctx.textAlign = "start";
  for (let i = 0; i < g.rows; i++) {
    const y = cellY(i, g);
    for (let j = c0; j < c1; j++) {
      const x = cellX(j, g) - scroll;
      const fill = fills[i][j];
      ctx.fillStyle = fill;
      ctx.fillRect(x, y, g.cellW - 1, g.cellH - 1);
      const t = m.rows[i][j].text;
      if (!text || t === null) continue;
      ctx.fillStyle = textColorOn(fill);
      ctx.fillText(fitText(tokenLabel(t), g.cellW - 6), x + 3, y + g.cellH / 2);
    }
  }
}

function drawColumnLabels(ctx: CanvasRenderingContext2D, f: Frame, c0: number, c1: number) {
  const { m, g, scroll } = f;
  ctx.font = "10px sans-serif";
  ctx.textBaseline = "alphabetic";
  for (let j = c0; j < c1; j++) {
    ctx.save();
    ctx.translate(cellX(j, g) + g.cellW / 2 - scroll, g.headH - 4);
    ctx.rotate(-Math.PI / 3);
    ctx.fillStyle = j >= m.nPrompt ? GENERATED : LABEL;
    ctx.fillText(tokenLabel(m.tokens[j]).slice(0, 12), 0, 0);
    ctx.restore();
  }
}

/** The marks of the columns in view and the dashed steps joining neighbouring ones (as the SVG path). */
function drawFinalLine(ctx: CanvasRenderingContext2D, f: Frame, c0: number, c1: number) {
  ctx.strokeStyle = FINAL;
  for (let j = c0; j < c1; j++) {
    const k = f.marks.get(j);
    if (!k) continue;
    ctx.lineWidth = 3;
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(k.x1 - f.scroll, k.y);
    ctx.lineTo(k.x2 - f.scroll, k.y);
    ctx.stroke();
    const prev = f.marks.get(j - 1);
    if (!prev || prev.y === k.y) continue;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 2]);
    ctx.beginPath();
    ctx.moveTo(k.x1 - f.scroll, prev.y);
    ctx.lineTo(k.x1 - f.scroll, k.y);
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function draw(ctx: CanvasRenderingContext2D, f: Frame) {
  const { m, g, scroll, width, height } = f;
  ctx.fillStyle = BG;
  ctx.fillRect(0, 0, width, height);
  const [c0, c1] = visibleCols(g, scroll, width);
  ctx.save();
  ctx.beginPath();
  ctx.rect(g.labelW, 0, width - g.labelW, height);
  ctx.clip();
  drawCells(ctx, f, c0, c1);
  drawColumnLabels(ctx, f, c0, c1);
  if (m.nPrompt > 0 && m.nPrompt < m.tokens.length) {
    ctx.fillStyle = "#94a3b8";
    ctx.fillRect(cellX(m.nPrompt, g) - 1 - scroll, g.headH, 2, g.rows * g.cellH);
  }
  drawFinalLine(ctx, f, Math.max(0, c0 - 1), c1);
  ctx.restore();
  ctx.fillStyle = LABEL;
  ctx.font = "11px sans-serif";
  ctx.textAlign = "end";
  ctx.textBaseline = "middle";
  for (let i = 0; i < g.rows; i++) ctx.fillText(shortLayer(m.layers[i], f.special), g.labelW - 4, cellY(i, g) + g.cellH / 2);
}

export function LogitLensCanvas({ model, ramp, captureId, trialId, special, selectedLayer, selectedToken, onCell }: LogitLensProps) {
  const g = useMemo(() => lensGeometry(model), [model]);
  const size = gridSize(model);
  const fills = useMemo(() => model.rows.map((row) => row.map((c) => lensColor(c.p, ramp))), [model, ramp]);
  const marks = useMemo(() => new Map(firstFinalLine(model).marks.map((k) => [k.pos, k])), [model]);
  const scroller = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [scroll, setScroll] = useState(0);
  const [viewW, setViewW] = useState(900);
  const [hover, setHover] = useState<Hover | null>(null);
  const width = Math.max(1, Math.min(size.width, viewW));
  const dpr = typeof window === "undefined" ? 1 : window.devicePixelRatio || 1;

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    setViewW(el.clientWidth || 900);
    if (typeof ResizeObserver === "undefined") return; // jsdom
    const ro = new ResizeObserver(() => setViewW(el.clientWidth || 900));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useEffect(() => { // keep the selected token's column in view
    const el = scroller.current;
    if (!el || selectedToken === null || selectedToken >= g.cols) return;
    const left = scrollToCol(g, selectedToken, el.scrollLeft, el.clientWidth);
    if (left !== el.scrollLeft) el.scrollLeft = left;
  }, [selectedToken, g]);

  useEffect(() => { // the columns in view, again on every scroll
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw(ctx, { m: model, g, fills, marks, special, scroll, width, height: size.height });
  }, [model, g, fills, marks, special, scroll, width, size.height, dpr]);

  const at = (e: MouseEvent<HTMLCanvasElement>): Hover | null => {
    const cell = cellAtPoint(g, e.nativeEvent.offsetX + scroll, e.nativeEvent.offsetY);
    if (!cell) return null;
    const r = e.currentTarget.getBoundingClientRect();
    const left = r.left + cellX(cell.c, g) - scroll;
    return { row: cell.r, pos: cell.c, at: { left, right: left + g.cellW, bottom: r.top + cellY(cell.r, g) + g.cellH } };
  };
  const selRow = selectedLayer === null ? -1 : model.layers.indexOf(selectedLayer);
  const hc = hover ? model.rows[hover.row][hover.pos] : null;
  return (
    <div className="logit-lens" data-testid="logit-lens" data-render="canvas" data-capture-id={captureId} data-trial-id={trialId}
      data-cell-w={g.cellW} data-cell-h={g.cellH} data-label-w={g.labelW} data-head-h={g.headH}
      data-hover-layer={hc?.layer ?? ""} data-hover-pos={hc?.pos ?? ""} data-hover-text={hc ? (hc.text ?? "null") : ""}
      data-hover-p={hc ? (hc.p ?? "null") : ""}>
      <div className="logit-lens-scroll" ref={scroller} onScroll={(e) => { setScroll(e.currentTarget.scrollLeft); setHover(null); }}>
        <div className="logit-lens-plane" style={{ position: "relative", width: size.width, height: size.height }}>
          <canvas ref={canvas} className="logit-lens-canvas" width={Math.round(width * dpr)} height={Math.round(size.height * dpr)}
            style={{ position: "sticky", left: 0, display: "block", width, height: size.height, cursor: "pointer" }}
            role="img" aria-label="logit lens: top-1 token by layer and token"
            onMouseMove={(e) => {
              const h = at(e);
              setHover((old) => (old?.row === h?.row && old?.pos === h?.pos ? old : h));
            }}
            onMouseLeave={() => setHover(null)}
            onClick={(e) => {
              const h = at(e);
              if (h) onCell(model.layers[h.row], h.pos);
            }} />
          {selectedToken !== null && selectedToken < model.tokens.length && (
            <div className="logit-lens-col-mark" data-testid="logit-lens-selected-token" data-pos={selectedToken}
              style={{ position: "absolute", left: cellX(selectedToken), top: L.headH, width: L.cellW, height: size.height - L.headH }} />
          )}
          {selRow >= 0 && (
            <div className="logit-lens-row-mark" data-testid="logit-lens-selected-layer" data-layer={selectedLayer ?? ""}
              style={{ position: "absolute", left: L.labelW, top: cellY(selRow), width: size.width - L.labelW, height: L.cellH }} />
          )}
          {hover && (
            <div className="logit-lens-hover" style={{ position: "absolute", left: cellX(hover.pos), top: cellY(hover.row), width: L.cellW - 1,
              height: L.cellH - 1, outline: "1.5px solid #fff", pointerEvents: "none" }} />
          )}
        </div>
        {hover && <LensTooltip model={model} hover={hover} captureId={captureId} trialId={trialId} special={special} />}
      </div>
      <LensLegend ramp={ramp} />
    </div>
  );
}
