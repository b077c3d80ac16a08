/** Token timeline: the trial's prompt and response as tokens, and a step scrubber with play/pause
 * and speed. Choosing a token moves every view to the step that evaluated it. Tokens can carry a
 * zone colour (Token Lens) and report hover for the attention arcs. */
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { TrialOut } from "../api/client";
import { tokenLabel } from "../data/format";
import { packRows, roleLabel, tokenClasses, tokenRole, tokenWidth } from "../data/tokens";

interface Props {
  trial: TrialOut;
  step: number;
  token: number | null;
  onStep: (step: number) => void;
  onToken: (pos: number, step: number) => void;
  zoneColor?: (pos: number) => string | undefined;
  onHoverToken?: (pos: number | null) => void;
  children?: ReactNode; // drawn above the strip (attention arcs)
}

export function tokenStep(trial: TrialOut, pos: number): number {
  const t = trial.tokens.find((x) => x.pos === pos);
  return t?.step ?? trial.steps.length - 1;
}

const SPEEDS = [0.5, 1, 2, 4];
const VIRTUAL_FROM = 400; // tokens from which the strip draws only the rows in view
const ROW_H = 26;
const GAP = 3;
const STRIP_H = 240;
// Each row is its own compositor layer (will-change): it is rasterised once when it mounts, and
// scrolling moves the layers. Without it, every row mounted or dropped while scrolling re-rasterised
// the strip's tiles: three display frames per scroll frame at 4,000 tokens in headless chromium
// (benchmarks/bench_backend.py --scale --viewer).
const ROW_STYLE = { position: "absolute", top: 0, left: 0, right: 0, height: ROW_H, display: "flex", gap: GAP, alignItems: "center", willChange: "transform" } as const;

export function TokenTimeline({ trial, step, token, onStep, onToken, zoneColor, onHoverToken, children }: Props) {
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const last = trial.steps.length - 1;
  useEffect(() => {
    if (!playing) return;
    const id = window.setInterval(() => {
      onStep(step >= last ? 0 : step + 1);
    }, 1000 / speed);
    return () => window.clearInterval(id);
  }, [playing, speed, step, last, onStep]);
  const cur = trial.steps[step];
  const button = (t: TrialOut["tokens"][number]) => {
    const s = t.step ?? last;
    const active = s === step;
    const zc = zoneColor?.(t.pos);
    const role = tokenRole(t);
    return (
      <button
        type="button"
        key={t.pos}
        className={["token", ...tokenClasses(t), active ? "active" : "", token === t.pos ? "chosen" : ""].filter(Boolean).join(" ")}
        data-pos={t.pos}
        data-step={s}
        data-role={role}
        title={`pos ${t.pos} · id ${t.id} · ${roleLabel(role, trial.chat)} · step ${s}`}
        style={zc ? { borderBottom: `3px solid ${zc}` } : undefined}
        onClick={() => onToken(t.pos, s)}
        onMouseEnter={() => onHoverToken?.(t.pos)}
        onMouseLeave={() => onHoverToken?.(null)}
      >
        {tokenLabel(t.text)}
      </button>
    );
  };
  return (
    <div className="timeline" data-testid="token-timeline">
      <div className="scrubber">
        <button type="button" onClick={() => setPlaying((p) => !p)} aria-label={playing ? "pause" : "play"} data-testid="play">
          {playing ? "❚❚ Pause" : "▶ Play"}
        </button>
        <label>
          speed{" "}
          <select value={speed} onChange={(e) => setSpeed(Number(e.target.value))} aria-label="playback speed">
            {SPEEDS.map((s) => <option key={s} value={s}>{s}×</option>)}
          </select>
        </label>
        <input type="range" min={0} max={last} value={step} aria-label="step" data-testid="step-slider"
          onChange={(e) => onStep(Number(e.target.value))} />
        <span className="step-label" data-testid="step-label">
          step {step} / {last} · {cur?.phase}
          {cur ? ` · ${cur.n_tokens} token${cur.n_tokens === 1 ? "" : "s"} at pos ${cur.pos}` : ""}
          {cur?.ms != null ? ` · ${cur.ms.toFixed(1)} ms` : ""}
        </span>
      </div>
      {children}
      {trial.tokens.length >= VIRTUAL_FROM ? (
        <VirtualStrip tokens={trial.tokens} render={button} focus={token ?? trial.tokens.find((t) => t.step === step)?.pos ?? null} />
      ) : (
        <div className="tokens" data-testid="token-strip">
          {trial.tokens.map(button)}
        </div>
      )}
    </div>
  );
}

/** The strip of a long trial: tokens packed into rows, only the rows in view in the page
 * (@tanstack/react-virtual); the chosen (or current step's) token is scrolled into view. */
function VirtualStrip({ tokens, render, focus }: {
  tokens: TrialOut["tokens"]; render: (t: TrialOut["tokens"][number]) => ReactNode; focus: number | null;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => setWidth(Math.max(200, el.clientWidth - 24));
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    measure();
    return () => ro.disconnect();
  }, []);
  const rows = useMemo(() => packRows(tokens.map((t) => tokenWidth(tokenLabel(t.text))), width, GAP), [tokens, width]);
  const rowOf = useMemo(() => {
    const m = new Map<number, number>();
    rows.forEach((r, i) => r.forEach((k) => m.set(tokens[k].pos, i)));
    return m;
  }, [rows, tokens]);
  const v = useVirtualizer({ count: rows.length, getScrollElement: () => ref.current, estimateSize: () => ROW_H, overscan: 6 });
  useEffect(() => {
    const r = focus === null ? undefined : rowOf.get(focus);
    if (r !== undefined) v.scrollToIndex(r, { align: "auto" });
  }, [focus, rowOf, v]);
  return (
    <div className="tokens virtual" data-testid="token-strip" data-virtual="true" data-count={tokens.length} data-rows={rows.length} ref={ref}
      style={{ height: STRIP_H, overflowY: "auto", display: "block" }}>
      <div style={{ height: v.getTotalSize(), position: "relative" }}>
        {v.getVirtualItems().map((item) => (
          <div key={item.key} className="token-row" data-row={item.index} style={{ ...ROW_STYLE, transform: `translateY(${item.start}px)` }}>
            {rows[item.index].map((k) => render(tokens[k]))}
          </div>
        ))}
      </div>
    </div>
  );
}
