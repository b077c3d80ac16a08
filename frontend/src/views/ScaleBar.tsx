/** The colour ramp of a value scale with real values at its ends and ticks (never scaled values),
 * shared by the heat maps' legend and the grid's legend in the top bar (small: only the middle tick
 * is labelled; every tick's real value is in its data-value and title). */
import { fmt } from "../data/format";
import type { ValueScale } from "../data/scale";

export function ScaleBar({ ramp, scale, small, testId }: { ramp: string[]; scale: ValueScale; small?: boolean; testId?: string }) {
  const ticks = scale.ticks();
  const inner = ticks.filter((k) => k.t > 0 && k.t < 1);
  return (
    <span className="scale-bar-wrap" data-testid={testId} data-scale={scale.kind} data-floor={scale.floor ?? ""}>
      <span className="scale-end" data-tick="min">{fmt(scale.min)}</span>
      <span className={`scale-bar ${small ? "small" : "wide"}`} style={{ background: `linear-gradient(to right, ${ramp.join(", ")})` }}>
        {inner.map((k) => (
          <span key={k.t} className="scale-tick" style={{ left: `${k.t * 100}%` }} data-t={k.t} data-value={k.value} title={`${fmt(k.value)} at ${Math.round(k.t * 100)}%`}>
            {(!small || k.t === 0.5) && <span className="scale-tick-label">{fmt(k.value)}</span>}
          </span>
        ))}
      </span>
      <span className="scale-end" data-tick="max">{fmt(scale.max)}</span>
      {scale.kind !== "linear" && (
        <span className="muted scale-kind">{scale.kind}{scale.kind === "log" && scale.floor !== null ? ` (floor ${fmt(scale.floor)})` : ""}</span>
      )}
    </span>
  );
}
