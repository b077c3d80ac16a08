/** The logit-lens tooltip: the hovered cell's top-5 (/api/trials/{id}/lens with layer and token),
 * the token that actually came next and the entropy; fixed to the viewport beside the cell's box.
 * Shared by the element grid (views/LogitLens) and the canvas grid (views/LogitLensCanvas). */
import { useLensCell } from "../api/queries";
import { fmt, shortLayer, tokenLabel } from "../data/format";
import type { SpecialLayers } from "../data/layers";
import type { LensModel } from "../data/logitLens";

export interface Hover {
  row: number;
  pos: number;
  at: { left: number; right: number; bottom: number }; // the cell's box in the viewport
}

const TOOLTIP_W = 240;

export function LensTooltip({ model, hover, captureId, trialId, special }: { model: LensModel; hover: Hover; captureId: string; trialId: number; special: SpecialLayers | null }) {
  const c = model.rows[hover.row][hover.pos];
  const cell = useLensCell(c.text === null ? null : { capture_id: captureId, trial_id: trialId, layer: c.layer, token: c.pos, k: 5 });
  // Fixed to the viewport, so the grid's scroll box does not clip it; left of the cell near the right edge.
  const flip = hover.at.right + TOOLTIP_W > window.innerWidth;
  const style = { position: "fixed" as const, top: hover.at.bottom + 2, left: flip ? Math.max(0, hover.at.left - TOOLTIP_W) : hover.at.right + 2 };
  const d = cell.data;
  return (
    <div className="tooltip logit-lens-tooltip" data-testid="logit-lens-tooltip" data-layer={c.layer} data-pos={c.pos} data-ready={d ? "true" : "false"} style={style}>
      <div className="tooltip-name">{shortLayer(c.layer, special)} · token {c.pos} “{tokenLabel(model.tokens[c.pos] ?? "")}”</div>
      {c.text === null && <div className="muted">No lens row here: llama.cpp computed none.</div>}
      {cell.error && <div className="error">{cell.error}</div>}
      {cell.loading && !d && <div className="muted">Loading…</div>}
      {d && (
        <>
          <ol className="logit-lens-top" data-testid="logit-lens-top">
            {d.top.map((t) => (
              <li key={t.id} data-text={t.text} data-p={t.p}><span className="logit-lens-tok">{tokenLabel(t.text)}</span> <span className="muted">{fmt(t.p)}</span></li>
            ))}
          </ol>
          {/* The API's rank counts the tokens above it (0: top-1); shown from 1. */}
          <div data-testid="logit-lens-next" data-rank={d.next_rank ?? ""}>
            {d.next_text === null
              ? "next: none (the last token)"
              : `next: “${tokenLabel(d.next_text)}”, rank ${d.next_rank === null ? "—" : d.next_rank + 1} (p ${fmt(d.next_p)})`}
          </div>
          <div className="muted">entropy {fmt(d.entropy)} nats</div>
        </>
      )}
    </div>
  );
}
