/** The live views of the watched run, built from its events as they arrive (state/live): a layers ×
 * steps heat strip of the residual stream's L2, the token stream, and at the shown step its token,
 * the logits' top-k, the logit lens's top-1 per layer (when the capture keeps vectors) and the mean
 * attention entropy per layer. They follow the newest step until the user moves the live scrubber
 * (or clicks a step); "Follow newest" goes back. When the run ends, the viewer opens the saved file
 * at the step shown here. The top bar's badge shows a run going: tokens per second and progress. */
import { useCallback, useEffect, useMemo, useRef, useState, type MouseEvent } from "react";
import type { StepEvent } from "../api/client";
import { useColors } from "../api/queries";
import type { StreamStatus } from "../api/runStream";
import { rampColor } from "../data/colors";
import { fmt, shortLayer, tokenLabel } from "../data/format";
import { generatedTokens, heatStrip, isActive, missingSteps, shownStep, stepCount, totalSteps, type Cursor, type HeatStrip } from "../data/live";
import { makeScale, type ScaleKind } from "../data/scale";
import { useLive } from "../state/live";
import { useCurrent } from "./current";

export function LiveBadge() {
  const { live } = useLive();
  const info = live.info;
  if (!isActive(info) || !info) return null;
  return (
    <span className="live-badge" data-testid="live-badge" data-state={info.state}>
      <span className="live-dot" /> live · {info.state}
      {info.tokens_per_s !== null && <span data-testid="live-tps"> · {info.tokens_per_s.toFixed(1)} tok/s</span>}
      <progress max={1} value={info.progress} aria-label="live run progress" />
    </span>
  );
}

export function LivePanel() {
  const { live, cursor, setCursor, stream, opened, openError, close } = useLive();
  const { state, special } = useCurrent();
  const colors = useColors();
  const shown = shownStep(live, cursor);
  const trialIndex = shown?.trial ?? Math.max(live.trials.length - 1, 0);
  const trial = live.trials[trialIndex];
  const strip = useMemo(() => heatStrip(trial), [trial]);
  const label = useCallback((l: number) => shortLayer(l, special.data), [special.data]);
  if (live.runId === null) return null;
  const info = live.info;
  const step = shown ? trial?.steps[shown.step] ?? null : null;
  const nSteps = trial?.steps.length ?? 0;
  const missing = missingSteps(live);
  const following = cursor === null;
  const goTo = (c: Cursor) => setCursor(c);
  return (
    <section className="panel view-live" id="view-live" data-testid="live-panel" data-run={live.runId} data-state={info?.state ?? ""}
      data-steps={totalSteps(live)} data-missing={missingSteps(live)} data-following={String(following)} data-trial={trialIndex} data-step={shown?.step ?? ""}>
      <h2>
        Live run <span className="muted small">{info ? `${info.model} · ${info.preset}` : live.runId}</span>{" "}
        {!isActive(info) && <button type="button" className="small" data-testid="live-close" onClick={close}>Close</button>}
      </h2>
      <div className="live-summary small">
        <span data-testid="live-state">{info?.state ?? "connecting"}</span>
        {" · "}trial {trialIndex + 1}/{info?.n_trials ?? live.trials.length}
        {" · "}<span data-testid="live-steps" data-count={totalSteps(live)}>{totalSteps(live)} steps received</span>
        {info?.tokens_per_s != null && ` · ${info.tokens_per_s.toFixed(1)} tok/s`}
        {info && <progress max={1} value={info.progress} aria-label="run progress" />}
      </div>
      <StreamLine stream={stream} />
      {live.dropped > 0 && (
        <div className="warning" data-testid="live-dropped" data-dropped={live.dropped} data-missing={missing}>
          This page fell behind the run: the server dropped {live.dropped} step event{live.dropped === 1 ? "" : "s"} for it;{" "}
          {missing > 0 ? `${missing} step${missing === 1 ? " is" : "s are"} missing here, read again when the run ends.` : "read again since."}
        </div>
      )}
      {info?.error && <div className="error" role="alert">The run failed: {info.error}</div>}
      {openError && <div className="error" role="alert">{openError}</div>}
      {opened?.runId === live.runId && (
        <div className="notice" data-testid="live-opened" data-path={opened.path}>Saved as {opened.path}: the views below show it now.</div>
      )}
      {live.trials.length > 1 && (
        <label className="small">
          Trial{" "}
          <select aria-label="live trial" value={trialIndex} onChange={(e) => {
            const t = Number(e.target.value);
            goTo({ trial: t, step: Math.max((live.trials[t]?.steps.length ?? 1) - 1, 0) });
          }}>
            {live.trials.map((t) => <option key={t.trial} value={t.trial}>#{t.trial}: {t.prompt.slice(0, 40)}</option>)}
          </select>
        </label>
      )}
      <div className="timeline live-scrubber">
        <div className="scrubber">
          <input type="range" min={0} max={Math.max(nSteps - 1, 0)} value={shown?.step ?? 0} aria-label="live step" data-testid="live-slider"
            disabled={nSteps === 0} onChange={(e) => goTo({ trial: trialIndex, step: Number(e.target.value) })} />
          <button type="button" data-testid="live-follow" disabled={following} onClick={() => setCursor(null)}>Follow newest</button>
          <span className="step-label" data-testid="live-step-label">
            {shown ? `step ${shown.step} / ${Math.max(nSteps - 1, 0)}` : "waiting for the first step"}
            {following ? " · following the newest step" : " · paused here (the run goes on)"}
          </span>
        </div>
      </div>
      {colors.data && strip.layers.length > 0 && (
        <LiveHeatStrip strip={strip} ramp={colors.data.scale} scaleKind={state.scale} shownStep={shown?.step ?? null} following={following}
          label={label} onStep={(s) => goTo({ trial: trialIndex, step: s })} />
      )}
      {trial && <TokenStream promptTokens={trial.promptTokens} generated={generatedTokens(trial)} shown={shown?.step ?? null}
        onStep={(s) => goTo({ trial: trialIndex, step: s })} />}
      {step && <StepDetail step={step} label={label} />}
      {trial && stepCount(trial) < nSteps && <p className="muted small">Grey columns: steps not received (yet).</p>}
    </section>
  );
}

function StreamLine({ stream }: { stream: StreamStatus | null }) {
  if (!stream || stream.kind === "open" || stream.kind === "ended") return null;
  if (stream.kind === "connecting") return stream.attempt === 0 ? <div className="loading small">Connecting to the run…</div> : null;
  if (stream.kind === "retrying") {
    return <div className="warning" data-testid="live-retrying">Connection lost ({stream.reason}); reconnecting, attempt {stream.attempt}…</div>;
  }
  return <div className="error" role="alert" data-testid="live-stream-failed">Cannot follow the run: {stream.reason}</div>;
}

const LABEL_W = 40;

/** Layers × steps of L2 on a canvas (one run may have a thousand steps); the shown step outlined.
 * Hover for a cell's value; click a column to show that step. */
function LiveHeatStrip({ strip, ramp, scaleKind, shownStep: shownAt, following, label, onStep }: {
  strip: HeatStrip; ramp: string[]; scaleKind: ScaleKind; shownStep: number | null; following: boolean;
  label: (layer: number) => string; onStep: (step: number) => void;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const box = useRef<HTMLDivElement>(null);
  const [hover, setHover] = useState<{ r: number; s: number } | null>(null);
  const scale = useMemo(() => makeScale(scaleKind, strip.values.flat()), [scaleKind, strip.values]);
  const cw = Math.max(3, Math.min(14, Math.floor(880 / Math.max(1, strip.steps))));
  const rowH = Math.max(10, Math.min(16, Math.floor(200 / Math.max(1, strip.layers.length)))); // labels stay legible
  const width = LABEL_W + strip.steps * cw + 2;
  const height = strip.layers.length * rowH + 2;
  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    ctx.font = "9px ui-monospace, monospace";
    ctx.textBaseline = "middle";
    strip.layers.forEach((layer, r) => {
      ctx.fillStyle = "#cbd5e1";
      ctx.fillText(label(layer), 2, r * rowH + rowH / 2);
      strip.values[r].forEach((v, s) => {
        const t = scale.position(v);
        ctx.fillStyle = t === null ? "#1e2433" : rampColor(ramp, t);
        ctx.fillRect(LABEL_W + s * cw, r * rowH, cw - 1, rowH - 1);
      });
    });
    if (shownAt !== null) {
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(LABEL_W + shownAt * cw - 0.5, 0.5, cw, height - 1);
    }
  }, [strip, scale, ramp, cw, rowH, width, height, shownAt, label]);
  useEffect(() => {
    if (following && box.current) box.current.scrollLeft = box.current.scrollWidth; // keep the newest step in sight
  }, [following, strip.steps]);
  const at = (e: MouseEvent<HTMLCanvasElement>) => {
    const rect = e.currentTarget.getBoundingClientRect();
    const s = Math.floor((e.clientX - rect.left - LABEL_W) / cw);
    const r = Math.floor((e.clientY - rect.top) / rowH);
    return s >= 0 && s < strip.steps && r >= 0 && r < strip.layers.length ? { r, s } : null;
  };
  const hv = hover ? strip.values[hover.r][hover.s] : null;
  return (
    <div className="live-strip" data-testid="live-strip" data-rows={strip.layers.length} data-cols={strip.steps} data-cell-w={cw} data-row-h={rowH}
      data-label-w={LABEL_W}>
      <h3>Residual stream L2, layers × steps</h3>
      <div className="heatmap-readout" data-testid="live-strip-readout">
        {hover ? `${label(strip.layers[hover.r])} · step ${hover.s} · L2 = ${fmt(hv)}` : "Hover for a value; click a column to show that step."}
      </div>
      <div className="live-strip-scroll" ref={box}>
        <canvas ref={canvas} width={width} height={height} onMouseMove={(e) => setHover(at(e))} onMouseLeave={() => setHover(null)}
          onClick={(e) => { const a = at(e); if (a) onStep(a.s); }} />
      </div>
    </div>
  );
}

function TokenStream({ promptTokens, generated, shown, onStep }: {
  promptTokens: string[]; generated: (string | null)[]; shown: number | null; onStep: (step: number) => void;
}) {
  return (
    <div className="tokens live-tokens" data-testid="live-tokens">
      {promptTokens.map((t, i) => <span key={`p${i}`} className="token prompt">{tokenLabel(t)}</span>)}
      {generated.map((t, s) => (
        <button type="button" key={`g${s}`} className={`token generated${s === shown ? " active" : ""}`} data-step={s} onClick={() => onStep(s)}
          title={`step ${s}`}>
          {t === null ? "…" : tokenLabel(t)}
        </button>
      ))}
    </div>
  );
}

function StepDetail({ step, label }: { step: StepEvent; label: (layer: number) => string }) {
  return (
    <div className="live-step" data-testid="live-step" data-step={step.index} data-kind={step.kind} data-pos={step.pos ?? ""}>
      <div>
        <h3>Step {step.index} ({step.kind}): next token {step.token === null ? "—" : <code>{tokenLabel(step.token)}</code>}</h3>
        <table className="stats" data-testid="live-top">
          <thead><tr><th>top logits</th><th>id</th><th>logit</th></tr></thead>
          <tbody>
            {step.top.map((t) => <tr key={t.id}><td><code>{tokenLabel(t.text)}</code></td><td>{t.id}</td><td>{fmt(t.logit)}</td></tr>)}
          </tbody>
        </table>
      </div>
      {step.lens_top1 && (
        <div>
          <h3>Logit lens top-1</h3>
          <table className="stats" data-testid="live-lens">
            <thead><tr><th>layer</th><th>token</th><th>p</th></tr></thead>
            <tbody>
              {step.lens_top1.map((l) => (
                <tr key={l.layer} data-layer={l.layer}><td>{label(l.layer)}</td><td><code>{tokenLabel(l.text)}</code></td><td>{fmt(l.p)}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {step.attn_entropy && (
        <div>
          <h3>Attention entropy</h3>
          <table className="stats" data-testid="live-entropy">
            <thead><tr><th>layer</th><th>mean entropy</th></tr></thead>
            <tbody>
              {step.attn_entropy.map((h, i) => <tr key={i}><td>{label(step.layers[i] ?? i)}</td><td>{fmt(h)}</td></tr>)}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
