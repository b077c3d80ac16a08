/** Token Lens (issue 6): hover or pin a token to see what it attends to (arcs above the strip) and
 * what attends to it (arcs below), for one layer and one head or all heads; a layer × head grid of
 * attention entropies; the token strip coloured by zone with the zone distribution bar; the
 * cognitive-state label and the delta bar of the current step. The strip draws only the tokens in
 * its scrolled viewport (and a margin), and the arcs that cross it. Numbers come from /api/attention
 * and /api/trials/{id}/interpretation unchanged (docs/ATTENTION.md). */
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { AttentionOut, ColorsOut, StepState, TrialOut } from "../api/client";
import { useAttention, useInterpretation } from "../api/queries";
import { fmt, tokenLabel } from "../data/format";
import { boxesInView, evaluatedEnd, focusLinks, stripLayout, type Link } from "../data/lens";
import { rampColor } from "../data/colors";

interface TimelineExtra {
  zoneColor?: (pos: number) => string | undefined;
  onHoverToken?: (pos: number | null) => void;
  children?: ReactNode;
}

interface Props {
  captureId: string;
  trial: TrialOut;
  attentionLayers: number[];
  colors: ColorsOut | null;
  step: number;
  token: number | null;
  pinned: number | null;
  onPin: (pos: number | null) => void;
  timeline: (extra: TimelineExtra) => ReactNode;
}

export function TokenLens({ captureId, trial, attentionLayers, colors, step, token, pinned, onPin, timeline }: Props) {
  const [hover, setHover] = useState<number | null>(null);
  const [layer, setLayer] = useState<number | null>(attentionLayers[0] ?? null);
  const [head, setHead] = useState<number | null>(null);
  useEffect(() => setLayer(attentionLayers[0] ?? null), [attentionLayers]);
  const focus = hover ?? pinned ?? token;
  // What the lens draws, and no more: zones and states without delta bars, the current step's delta
  // bar, the focus token's edges and the edges pointing at it (not the whole trial's attention).
  const interp = useInterpretation(captureId, trial.id, { delta: false });
  const stepInterp = useInterpretation(captureId, trial.id, { start: step, stop: step + 1 });
  const ask = focus === null || layer === null ? null : { capture_id: captureId, trial_id: trial.id, layer };
  const end = useMemo(() => evaluatedEnd(trial.steps), [trial.steps]);
  const hasRow = focus !== null && focus < end; // the last sampled token was never evaluated: no row of its own
  const attOut = useAttention(ask && hasRow ? { ...ask, token: focus! } : null);
  const attIn = useAttention(ask && { ...ask, target: focus! });
  const focusAtt = useAttention(hasRow && layer !== null ? { capture_id: captureId, trial_id: trial.id, token: focus! } : null);
  const att = useMemo(() => mergeAttention(attOut.data, attIn.data, focus), [attOut.data, attIn.data, focus]);
  const zoneOf = useMemo(() => new Map((interp.data?.zones ?? []).map((z) => [z.pos, z.zone])), [interp.data]);
  const zoneColor = (pos: number) => {
    const z = zoneOf.get(pos);
    return z ? colors?.zones[z] : undefined;
  };
  const links = att && focus !== null ? focusLinks(att, focus, head) : null;
  const nHead = att?.n_head ?? focusAtt.data?.n_head ?? 0;
  const stepState = stepInterp.data?.states.find((s) => s.step === step) ?? null; // with its delta bar
  const state = stepState ?? interp.data?.states.find((s) => s.step === step) ?? null;

  const lens = (
    <div className="lens" data-testid="token-lens">
      <div className="lens-head">
        <StateChip state={state} colors={colors} />
        {interp.data && colors && <ZoneBar dist={interp.data.zone_distribution} colors={colors.zones} />}
        {attentionLayers.length > 0 && (
          <>
            <label>
              layer{" "}
              <select aria-label="lens layer" value={layer ?? ""} onChange={(e) => setLayer(Number(e.target.value))}>
                {attentionLayers.map((l) => <option key={l} value={l}>{l}</option>)}
              </select>
            </label>
            <label>
              head{" "}
              <select aria-label="lens head" value={head ?? "all"} onChange={(e) => setHead(e.target.value === "all" ? null : Number(e.target.value))}>
                <option value="all">all (mean)</option>
                {Array.from({ length: nHead }, (_, h) => <option key={h} value={h}>{h}</option>)}
              </select>
            </label>
            <span className="muted small">
              {focus === null ? "hover a token (click to pin)" : `token ${focus}${pinned === focus ? " (pinned)" : ""}: above, what it attends to; below, who attends to it`}
            </span>
          </>
        )}
      </div>
      {interp.error && <div className="error" role="alert">Could not load the interpretation: {interp.error}</div>}
      {(attOut.error ?? attIn.error) && <div className="error" role="alert">Could not load attention: {attOut.error ?? attIn.error}</div>}
      {attentionLayers.length === 0 ? (
        <p className="muted">This capture has no attention (observe preset or a version 1.0 file): capture with the standard or full preset to use the Token Lens.</p>
      ) : (
        <Strip trial={trial} links={links} focus={focus} pinned={pinned} zoneColor={zoneColor}
          onHover={setHover} onPin={(pos) => onPin(pinned === pos ? null : pos)} />
      )}
      <div className="lens-side">
        {focus !== null && focusAtt.data && (
          <EntropyGrid title={`entropy (nats) of token ${focus}, layer × head`}
            rows={focusAtt.data.tokens[0]?.layers.map((l) => ({ layer: l.layer, values: l.entropy })) ?? []}
            selLayer={layer} selHead={head} onPick={(l, h) => { setLayer(l); setHead(h); }} />
        )}
        {focusAtt.error && <div className="error" role="alert">Could not load attention of token {focus}: {focusAtt.error}</div>}
        {stepState && <DeltaBar state={stepState} />}
      </div>
    </div>
  );
  return (
    <>
      {lens}
      {timeline({ zoneColor, onHoverToken: setHover })}
    </>
  );
}

/** The focus token's own answer and the answer of who attends to it, as one AttentionOut. */
function mergeAttention(out: AttentionOut | null | undefined, inc: AttentionOut | null | undefined, focus: number | null): AttentionOut | null {
  if (!out || !inc || focus === null) return null;
  return { ...out, tokens: [...out.tokens.filter((t) => t.pos === focus), ...inc.tokens.filter((t) => t.pos !== focus)] };
}

function StateChip({ state, colors }: { state: StepState | null; colors: ColorsOut | null }) {
  if (!state) return <span className="state-chip muted" data-testid="state-label">state: —</span>;
  const c = colors?.states[state.label] ?? "#808080";
  return (
    <span className="state-chip" data-testid="state-label" data-label={state.label} style={{ borderColor: c, color: c }}
      title={`attention energy ${fmt(state.attention_energy)}, FFN energy ${fmt(state.ffn_energy)}, depth early/middle/deep ${state.depth_energy.map(fmt).join(" / ")}`}>
      {state.label} <span className="muted">{Math.round(state.confidence * 100)}%</span>
    </span>
  );
}

function ZoneBar({ dist, colors }: { dist: Record<string, number>; colors: Record<string, string> }) {
  const entries = Object.entries(dist);
  return (
    <span className="zone-bar" data-testid="zone-bar" title="zone distribution of the trial's tokens">
      <span className="zone-track">
      {entries.map(([z, f]) => f > 0 && (
        <span key={z} className="zone-seg" data-zone={z} data-fraction={f} style={{ width: `${f * 100}%`, background: colors[z] }}
          title={`${z}: ${Math.round(f * 100)}%`} />
      ))}
      </span>
      <span className="zone-legend">
        {entries.map(([z, f]) => (
          <span key={z} className="legend-item"><span className="swatch" style={{ background: colors[z] }} />{z.replaceAll("_", " ")} {Math.round(f * 100)}%</span>
        ))}
      </span>
    </span>
  );
}

const ARC_COLOR = { out: "#f0f921", in: "#38bdf8" }; // what the token attends to / what attends to it
const STRIP_Y = 80;
const TOKEN_H = 20;

const MARGIN = 400; // pixels drawn beyond each side of the strip's viewport

function Strip({ trial, links, focus, pinned, zoneColor, onHover, onPin }: {
  trial: TrialOut; links: { out: Link[]; in: Link[] } | null; focus: number | null; pinned: number | null;
  zoneColor: (pos: number) => string | undefined; onHover: (pos: number | null) => void; onPin: (pos: number) => void;
}) {
  const boxes = useMemo(() => stripLayout(trial.tokens.map((t) => tokenLabel(t.text))), [trial.tokens]);
  const width = (boxes.at(-1)?.x ?? 0) + (boxes.at(-1)?.w ?? 0) + 8;
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ left: 0, width: 1200 });
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setView({ left: el.scrollLeft, width: el.clientWidth || 1200 });
    measure();
    if (typeof ResizeObserver === "undefined") return; // jsdom
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const [lo, hi] = [view.left - MARGIN, view.left + view.width + MARGIN];
  const [first, last] = boxesInView(boxes, lo, hi);
  const cx = (pos: number) => (boxes[pos] ? boxes[pos].x + boxes[pos].w / 2 : 0);
  const crosses = (l: Link) => Math.max(cx(l.from), cx(l.to)) >= lo && Math.min(cx(l.from), cx(l.to)) <= hi;
  const arc = (l: Link, dir: "out" | "in") => {
    const a = cx(l.from);
    const b = cx(l.to);
    const y = dir === "out" ? STRIP_Y - 2 : STRIP_Y + TOKEN_H + 2;
    const h = Math.min(70, 14 + Math.abs(a - b) * 0.25) * (dir === "out" ? -1 : 1);
    return `M ${a} ${y} Q ${(a + b) / 2} ${y + h * 1.6} ${b} ${y}`;
  };
  return (
    <div className="lens-strip" ref={scroller} onScroll={(e) => setView({ left: e.currentTarget.scrollLeft, width: e.currentTarget.clientWidth || 1200 })}>
      <svg width={width} height={STRIP_Y * 2 + TOKEN_H} data-testid="lens-strip" data-count={trial.tokens.length} data-first={first} data-last={last}
        onMouseLeave={() => onHover(null)}>
        {(["out", "in"] as const).map((dir) =>
          links?.[dir].filter(crosses).map((l) => (
            <path key={`${dir}${dir === "out" ? l.to : l.from}`} className={`arc arc-${dir}`} d={arc(l, dir)}
              data-from={l.from} data-to={l.to} data-p={l.p} fill="none" stroke={ARC_COLOR[dir]}
              strokeOpacity={0.25 + 0.75 * l.p} strokeWidth={0.5 + 5 * l.p}>
              <title>{`${l.from} → ${l.to}: p ${fmt(l.p)}`}</title>
            </path>
          )),
        )}
        {trial.tokens.slice(first, last).map((t, k) => {
          const b = boxes[first + k];
          const zc = zoneColor(t.pos);
          return (
            <g key={t.pos} className={`lens-token${focus === t.pos ? " focus" : ""}${pinned === t.pos ? " pinned" : ""}`} data-pos={t.pos}
              transform={`translate(${b.x},${STRIP_Y})`} onMouseEnter={() => onHover(t.pos)} onClick={() => onPin(t.pos)} style={{ cursor: "pointer" }}>
              <rect width={b.w} height={TOKEN_H} rx={3} fill={focus === t.pos ? "#312e81" : "#111a2e"} stroke={pinned === t.pos ? "#f0f921" : "#334155"} />
              <rect y={TOKEN_H - 3} width={b.w} height={3} fill={zc ?? "transparent"} />
              <text x={b.w / 2} y={14} textAnchor="middle" fontSize={11} fontFamily="ui-monospace, monospace" fill={t.prompt ? "#cbd5e1" : "#fde68a"}>
                {tokenLabel(t.text).slice(0, 12)}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function EntropyGrid({ title, rows, selLayer, selHead, onPick }: {
  title: string; rows: { layer: number; values: number[] }[]; selLayer: number | null; selHead: number | null;
  onPick: (layer: number, head: number) => void;
}) {
  const all = rows.flatMap((r) => r.values);
  const hi = Math.max(1e-9, ...all);
  const scale = ["#f0f921", "#f89540", "#cc4778", "#7e03a8", "#0d0887"]; // bright = focused (low entropy)
  return (
    <div className="entropy-grid" data-testid="entropy-grid">
      <div className="muted small">{title}; click a cell to draw that layer and head</div>
      <table>
        <thead><tr><th />{rows[0]?.values.map((_, h) => <th key={h}>h{h}</th>)}</tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.layer}>
              <th>L{r.layer}</th>
              {r.values.map((v, h) => (
                <td key={h} data-layer={r.layer} data-head={h} data-value={v}
                  className={selLayer === r.layer && selHead === h ? "sel" : undefined}
                  style={{ background: rampColor(scale, v / hi) }} onClick={() => onPick(r.layer, h)} title={`layer ${r.layer} head ${h}: ${fmt(v)} nats`}>
                  {fmt(v)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function DeltaBar({ state }: { state: StepState }) {
  const d = state.delta;
  if (d.length === 0) return <div className="delta muted small" data-testid="delta-bar">Delta bar: no previous step at step {state.step}.</div>;
  const m = Math.max(1e-9, ...d.map((x) => Math.abs(x.value)));
  const W = 6, H = 60;
  return (
    <div className="delta" data-testid="delta-bar">
      <div className="muted small">change of each tensor's L2 from the previous step (relative; {d.length} tensors, catalogue order)</div>
      <svg width={Math.max(120, d.length * W)} height={H} className="delta-svg">
        <line x1={0} x2={d.length * W} y1={H / 2} y2={H / 2} stroke="#334155" />
        {d.map((x, i) => {
          const h = (Math.abs(x.value) / m) * (H / 2 - 2);
          return (
            <rect key={x.id} className="delta-cell" data-id={x.id} data-value={x.value} x={i * W} width={W - 1}
              y={x.value >= 0 ? H / 2 - h : H / 2} height={Math.max(0.5, h)} fill={x.value >= 0 ? "#f89540" : "#38bdf8"}>
              <title>{`${x.name}: ${x.value >= 0 ? "+" : ""}${fmt(x.value * 100)}%`}</title>
            </rect>
          );
        })}
      </svg>
    </div>
  );
}
