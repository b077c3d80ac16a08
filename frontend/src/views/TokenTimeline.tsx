/** Token timeline: the trial's prompt and response as tokens, and a step scrubber with play/pause
 * and speed. Choosing a token moves every view to the step that evaluated it. Tokens can carry a
 * zone colour (Token Lens) and report hover for the attention arcs. */
import { useEffect, useState, type ReactNode } from "react";
import type { TrialOut } from "../api/client";
import { tokenLabel } from "../data/format";
import { roleLabel, tokenClasses, tokenRole } from "../data/tokens";

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
      <div className="tokens" data-testid="token-strip">
        {trial.tokens.map((t) => {
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
        })}
      </div>
    </div>
  );
}
