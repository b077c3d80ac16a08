/** Colour legend (categories and the intensity ramp) and the info panel: what the hovered or
 * selected component type is, in plain words, and the whole guide on demand. */
import type { ColorsOut } from "../api/client";
import { explainType, explanations } from "../data/explain";
import type { ValueScale } from "../data/scale";
import { cellById } from "../state/selection";
import { useHoverType } from "../state/store";
import { useCurrent, useFullGrid } from "./current";
import { ScaleBar } from "./ScaleBar";

export function Legend({ colors, scale, metric }: { colors: ColorsOut; scale: ValueScale; metric: string }) {
  return (
    <div className="legend" data-testid="legend">
      {Object.entries(colors.categories).map(([cat, c]) => (
        <span key={cat} className="legend-item" title={explanations.categories[cat]}>
          <span className="swatch" style={{ background: c }} /> {cat}
        </span>
      ))}
      <span className="legend-item">
        height/glow: {metric} <ScaleBar ramp={colors.scale} scale={scale} small testId="grid-scale" />
      </span>
    </div>
  );
}

export function InfoPanel({ type, metric }: { type: string | null; metric: string }) {
  const e = type ? explainType(type) : null;
  return (
    <section className="panel info" data-testid="info-panel">
      <h2>Info</h2>
      {e?.info ? (
        <div data-testid="info-current">
          <h3>
            <code>{type}</code> · {e.info.title}
          </h3>
          {e.derived && (
            <p className="muted">
              A <code>{e.derived}</code> step llama.cpp applied to <code>{e.base}</code> (a view or reshaping of the same numbers).
            </p>
          )}
          <p>{e.info.text}</p>
          <p className="muted">
            Category <b>{e.info.category}</b>: {explanations.categories[e.info.category]}
          </p>
        </div>
      ) : (
        <p className="muted">{type ? `No explanation for ${type}.` : "Hover or select a tensor to see what it is."}</p>
      )}
      <p className="muted small">
        <b>{metric}</b>: {explanations.metrics[metric] ?? ""}
      </p>
      <details>
        <summary>All component types</summary>
        <dl className="guide">
          {Object.entries(explanations.types).map(([t, x]) => (
            <div key={t} data-type={t}>
              <dt><code>{t}</code> · {x.title}</dt>
              <dd>{x.text}</dd>
            </div>
          ))}
        </dl>
      </details>
    </section>
  );
}

/** The info panel for the tensor type under the pointer, else the selected tensor's. */
export function Info() {
  const { state } = useCurrent();
  const [hovered] = useHoverType();
  const full = useFullGrid();
  const selected = cellById(full.data, state.selected);
  return <InfoPanel type={hovered ?? selected?.type ?? null} metric={state.metric} />;
}
