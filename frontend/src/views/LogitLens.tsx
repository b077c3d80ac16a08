/** The logit-lens grid: layers × token positions (layer 0 at the top), each cell the top-1 token
 * that layer's residual stream predicts, filled by its probability (data/logitLens); a line on the
 * first layer where each token's final prediction is top-1. Cells are plain positioned divs built
 * once per payload (no state or handler per cell): one hover and one click handler on the grid read
 * the cell from its data-layer/data-pos. A long trial's grid (thousands of cells) is drawn to a
 * canvas instead (views/LogitLensCanvas), with the same fill, texts, line, hover and click. Hover shows the cell's top-5 (/api/trials/{id}/lens with
 * layer and token) and the token that actually came next. */
import { memo, useMemo, useState, type MouseEvent } from "react";
import { shortLayer, tokenLabel } from "../data/format";
import type { SpecialLayers } from "../data/layers";
import {
  LENS_LAYOUT as L, cellX, cellY, firstFinalLine, gridSize, lensColor, lensDrawsToCanvas, textColorOn, type LensModel,
} from "../data/logitLens";
import { LogitLensCanvas } from "./LogitLensCanvas";
import { LensTooltip, type Hover } from "./LogitLensTooltip";

export interface LogitLensProps {
  model: LensModel;
  ramp: string[];
  captureId: string;
  trialId: number;
  special: SpecialLayers | null;
  selectedLayer: number | null; // the selected tensor's layer, when it is a lens row
  selectedToken: number | null;
  onCell: (layer: number, pos: number) => void;
}

function cellOf(e: MouseEvent, m: LensModel): Hover | null {
  const el = (e.target as HTMLElement).closest?.(".logit-lens-cell");
  if (!el) return null;
  const row = m.layers.indexOf(Number(el.getAttribute("data-layer")));
  const pos = Number(el.getAttribute("data-pos"));
  const r = el.getBoundingClientRect();
  return row < 0 || !Number.isInteger(pos) ? null : { row, pos, at: { left: r.left, right: r.right, bottom: r.bottom } };
}

/** The grid: one element per cell for a short trial, one canvas for a long one (lensDrawsToCanvas). */
export function LogitLens(props: LogitLensProps) {
  const { model } = props;
  return lensDrawsToCanvas(model) ? <LogitLensCanvas {...props} /> : <LogitLensElements {...props} />;
}

function LogitLensElements({ model, ramp, captureId, trialId, special, selectedLayer, selectedToken, onCell }: LogitLensProps) {
  const [hover, setHover] = useState<Hover | null>(null);
  const size = gridSize(model);
  const selRow = selectedLayer === null ? -1 : model.layers.indexOf(selectedLayer);
  const move = (e: MouseEvent) => {
    const h = cellOf(e, model);
    if (h?.row !== hover?.row || h?.pos !== hover?.pos) setHover(h);
  };
  const click = (e: MouseEvent) => {
    const h = cellOf(e, model);
    if (h) onCell(model.layers[h.row], h.pos);
  };
  return (
    <div className="logit-lens" data-testid="logit-lens" data-render="elements" data-capture-id={captureId} data-trial-id={trialId}>
      <div className="logit-lens-scroll" onScroll={() => setHover(null)}>
        <div className="logit-lens-grid" style={{ width: size.width, height: size.height }} onMouseOver={move} onMouseLeave={() => setHover(null)} onClick={click}>
          <Cells model={model} ramp={ramp} special={special} />
          {selectedToken !== null && selectedToken < model.tokens.length && (
            <div className="logit-lens-col-mark" data-testid="logit-lens-selected-token" data-pos={selectedToken}
              style={{ left: cellX(selectedToken), top: L.headH, width: L.cellW, height: size.height - L.headH }} />
          )}
          {selRow >= 0 && (
            <div className="logit-lens-row-mark" data-testid="logit-lens-selected-layer" data-layer={selectedLayer ?? ""}
              style={{ left: L.labelW, top: cellY(selRow), width: size.width - L.labelW, height: L.cellH }} />
          )}
          <FinalLine model={model} width={size.width} height={size.height} />
          {hover && <LensTooltip model={model} hover={hover} captureId={captureId} trialId={trialId} special={special} />}
        </div>
      </div>
      <LensLegend ramp={ramp} />
    </div>
  );
}

export function LensLegend({ ramp }: { ramp: string[] }) {
  return (
    <div className="muted small logit-lens-legend">
      Fill: probability of the top-1 token, 0 <span className="logit-lens-ramp" style={{ background: `linear-gradient(to right, ${ramp.join(", ")})` }} /> 1
      (grey: no row). <span className="logit-lens-final-key" /> first layer whose top-1 is the final prediction. Layer 0 at the top.
    </div>
  );
}

/** Every label and cell, rendered once per payload and colour ramp (hover does not re-render them). */
const Cells = memo(function Cells({ model, ramp, special }: { model: LensModel; ramp: string[]; special: SpecialLayers | null }) {
  return useMemo(() => (
    <>
      {model.tokens.map((t, pos) => (
        <div key={`t${pos}`} className={`logit-lens-col-label${pos >= model.nPrompt ? " generated" : ""}`} style={{ left: cellX(pos) + L.cellW / 2, top: L.headH - 4 }}>
          <span>{tokenLabel(t).slice(0, 12)}</span>
        </div>
      ))}
      {model.nPrompt > 0 && model.nPrompt < model.tokens.length && (
        <div className="logit-lens-prompt-end" style={{ left: cellX(model.nPrompt) - 1, top: L.headH, height: model.layers.length * L.cellH }} />
      )}
      {model.rows.map((row, i) => (
        <div key={`r${model.layers[i]}`} className="logit-lens-row">
          <div className="logit-lens-row-label" style={{ top: cellY(i), width: L.labelW - 4, height: L.cellH }}>{shortLayer(model.layers[i], special)}</div>
          {row.map((c) => {
            const fill = lensColor(c.p, ramp);
            return (
              <div key={c.pos} className={`logit-lens-cell${c.text === null ? " empty" : ""}`} data-layer={c.layer} data-pos={c.pos}
                data-text={c.text ?? ""} data-p={c.p ?? ""}
                style={{ left: cellX(c.pos), top: cellY(i), width: L.cellW - 1, height: L.cellH - 1, background: fill, color: textColorOn(fill) }}>
                {c.text === null ? "" : tokenLabel(c.text)}
              </div>
            );
          })}
        </div>
      ))}
    </>
  ), [model, ramp, special]);
});

function FinalLine({ model, width, height }: { model: LensModel; width: number; height: number }) {
  const line = useMemo(() => firstFinalLine(model), [model]);
  return (
    <svg className="logit-lens-final" width={width} height={height} aria-hidden="true">
      <path d={line.d} data-testid="logit-lens-final-line" />
      {line.marks.map((k) => <line key={k.pos} className="logit-lens-final-mark" data-pos={k.pos} data-layer={k.layer} x1={k.x1} x2={k.x2} y1={k.y} y2={k.y} />)}
    </svg>
  );
}
