/** One comparison (/api/compare) shown: the summary, the two responses side by side, the residual
 * drift per layer, two diverging heat maps (the residual L2 change per layer and token; the relative
 * change of a chosen statistic per layer and tensor type), the shared tokens with where the two top-1
 * next tokens differ and the KL per token, and a scrubber that shows both runs at one token (and
 * moves the viewer's cursor through `onPos`, and follows it through `cursor`). While the server still
 * computes the next-token block (`next_token_progress`; useCompare polls), its progress shows where the
 * KL bars and the scrubber's values go, and they fill when it is done. Data shaping: data/compare.ts. */
import { useEffect, useMemo, useState } from "react";
import type { ComparisonOut, TrialBrief } from "../api/client";
import { useTrial } from "../api/queries";
import {
  disagreesAt, driftPoints, firstScored, fixed, klFractions, pendingFraction, pendingLine, positionLine, statChoices, summaryLine, tokenTitle,
  topChanges, typeHeat, vocabOf,
} from "../data/compare";
import { strengthLabel } from "../data/comparePick";
import { tokenLabel } from "../data/format";
import { DivergingHeat } from "./DivergingHeat";
import { ProjectionChart } from "./ProjectionChart";

interface Props {
  data: ComparisonOut;
  briefA: TrialBrief | null;
  briefB: TrialBrief | null;
  onPos: (pos: number) => void;
  /** The viewer's chosen token, when the viewer shows a compared trial: the scrubber follows it. */
  cursor: number | null;
}

export function CompareView({ data, briefA, briefB, onPos, cursor }: Props) {
  const next = data.next_token;
  const [pos, setPos] = useState(() => firstScored(next));
  useEffect(() => {
    if (cursor !== null && cursor >= 0 && cursor < data.n_shared) setPos(cursor);
  }, [cursor, data.n_shared]);
  const move = (p: number) => {
    setPos(p);
    onPos(p);
  };
  const trialA = useTrial(data.a.capture_id ?? null, data.a.trial), trialB = useTrial(data.b.capture_id ?? null, data.b.trial);
  const vocab = useMemo(() => vocabOf(trialA.data?.tokens, trialB.data?.tokens), [trialA.data, trialB.data]);
  const n = data.n_shared;
  const layerLabels = useMemo(() => data.layers.map((l) => `layer ${l}`), [data.layers]);
  const layerTicks = useMemo(() => data.layers.map((l) => `L${l}`), [data.layers]);
  const tokenLabels = useMemo(() => data.tokens.slice(0, n).map((t, i) => `${i} “${tokenLabel(t)}”`), [data.tokens, n]);
  return (
    <div data-testid="compare-view" data-a={`${data.a.capture_id}:${data.a.trial}`} data-b={`${data.b.capture_id}:${data.b.trial}`}>
      <p className="small" data-testid="compare-models">
        a: {data.a.model ?? "?"} ({data.a.n_tokens} tokens) · b: {data.b.model ?? "?"} ({data.b.n_tokens} tokens)
      </p>
      <p data-testid="compare-summary">{summaryLine(data.summary)}</p>
      {data.notices.length > 0 && (
        <ul className="compare-notices muted small" data-testid="compare-notices">
          {data.notices.map((m, i) => <li key={i}>{m}</li>)}
        </ul>
      )}
      {briefA && briefB && <Responses a={briefA} b={briefB} />}
      <div className="compare-row">
        <div>
          <h3>Residual drift (mean cosine per layer)</h3>
          <DriftCurve data={data} />
        </div>
        <div>
          <h3>Residual L2 change, layers × tokens</h3>
          <DivergingHeat testid="compare-heat" rows={data.resid_l2_change} rowLabels={layerLabels} rowTicks={layerTicks} colLabels={tokenLabels}
            colName="token" unit="(b − a) / |a|" marker={pos} onColumn={move} />
        </div>
        <TypesHeat data={data} layerLabels={layerLabels} layerTicks={layerTicks} />
      </div>
      <h3>Tokens <span className="muted small">(red underline: the two top-1 next tokens differ; bar: KL(a‖b) at that token)</span></h3>
      <Pending progress={data.next_token_progress} testid="compare-pending" />
      <TokenStrip data={data} pos={pos} onPos={move} vocab={vocab} />
      <Changes data={data} vocab={vocab} onPos={move} />
      {n > 0 && (
        <div className="compare-scrubber">
          <input type="range" data-testid="compare-scrub" aria-label="token position" min={0} max={n - 1} step={1} value={pos}
            onChange={(e) => move(Number(e.target.value))} />{" "}
          <span className="muted small">token {pos} “{tokenLabel(data.tokens[pos] ?? "")}”</span>{" "}
          <span data-testid="compare-pos" data-pos={pos}>{pendingLine(data.next_token_progress) ?? positionLine(next, pos, vocab)}</span>
        </div>
      )}
      {(briefA?.control || briefB?.control) && (
        <ProjectionChart a={{ captureId: data.a.capture_id ?? null, trial: data.a.trial }} b={{ captureId: data.b.capture_id ?? null, trial: data.b.trial }} pos={pos} />
      )}
    </div>
  );
}

/** Where the top-1 next tokens change (click: scrub there), and where the two token sequences part. */
function Changes({ data, vocab, onPos }: { data: ComparisonOut; vocab: ReadonlyMap<number, string>; onPos: (p: number) => void }) {
  const changes = useMemo(() => topChanges(data.next_token, vocab), [data.next_token, vocab]);
  return (
    <p className="small compare-changes" data-testid="compare-changes">
      {data.next_token === null
        ? <span className="muted">{data.next_token_progress ? "The next-token comparison is being computed." : "No next-token comparison (see the notices)."}</span>
        : changes.length === 0
          ? <span className="muted">The top-1 next token is the same at every compared token.</span>
          : <>Top-1 changes at: {changes.map((c) => (
            <button type="button" key={c.pos} className="linklike" data-testid="compare-change" data-pos={c.pos} onClick={() => onPos(c.pos)}>
              {c.pos} (a {c.a} / b {c.b})
            </button>
          ))}</>}
      {data.diverge_at !== null && (
        <span data-testid="compare-diverge" data-pos={data.diverge_at}> · the two token sequences part at token {data.diverge_at} (the responses above)</span>
      )}
    </p>
  );
}

/** The server's pass over the output heads while it computes the next-token block: a bar and its percentage. */
function Pending({ progress, testid }: { progress: ComparisonOut["next_token_progress"]; testid: string }) {
  const f = pendingFraction(progress);
  if (f === null || !progress) return null;
  return (
    <p className="compare-pending small" data-testid={testid} data-done={progress.done} data-total={progress.total}>
      <progress max={1} value={f} aria-label="next-token comparison" /> {pendingLine(progress)}
    </p>
  );
}

/** The relative change of one statistic's mean per layer and tensor type (stat selector). */
function TypesHeat({ data, layerLabels, layerTicks }: { data: ComparisonOut; layerLabels: string[]; layerTicks: string[] }) {
  const stats = useMemo(() => statChoices(data.stats), [data.stats]);
  const [stat, setStat] = useState(stats[0] ?? "");
  const heat = useMemo(() => typeHeat(data, stat), [data, stat]);
  if (stats.length === 0) return null;
  return (
    <div data-testid="compare-types" data-stat={stat}>
      <h3>
        Statistic change, layers × tensor types{" "}
        <select data-testid="compare-stat" aria-label="statistic" value={stat} onChange={(e) => setStat(e.target.value)}>
          {stats.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </h3>
      <DivergingHeat testid="compare-types-heat" rows={heat.rows} rowLabels={layerLabels} rowTicks={layerTicks} colLabels={heat.types}
        colName="type" unit={`(mean b − mean a) / |mean a| of ${stat}`} maxWidth={420} maxCell={36} colTicks />
    </div>
  );
}

function TokenStrip({ data, pos, onPos, vocab }: { data: ComparisonOut; pos: number; onPos: (p: number) => void; vocab: ReadonlyMap<number, string> }) {
  const next = data.next_token, n = data.n_shared;
  const kl = useMemo(() => klFractions(next, n), [next, n]);
  return (
    <div className="compare-strip" data-testid="compare-strip">
      {data.tokens.slice(0, n).map((t, i) => (
        <span key={i} data-pos={i} title={tokenTitle(t, next, i, vocab)} onClick={() => onPos(i)}
          className={["compare-tok", i >= data.n_prompt ? "generated" : "", disagreesAt(next, i) ? "disagree" : "", i === pos ? "current" : ""]
            .filter(Boolean).join(" ")}>
          {tokenLabel(t)}
          <i className="compare-kl" data-kl={next?.kl[i] ?? ""} style={{ width: `${Math.round((kl[i] ?? 0) * 100)}%`, opacity: kl[i] === null ? 0 : 1 }} />
        </span>
      ))}
    </div>
  );
}

function Responses({ a, b }: { a: TrialBrief; b: TrialBrief }) {
  const head = (side: string, t: TrialBrief) => {
    const strength = t.sweep?.strength ?? t.control?.strength;
    return `${side} · #${t.id}${strength === undefined ? "" : ` · strength ${strengthLabel(strength)}`}`;
  };
  return (
    <div className="compare-responses" data-testid="compare-responses">
      <div><span className="muted small">{head("a", a)}</span><pre data-testid="compare-response-a">{a.response}</pre></div>
      <div><span className="muted small">{head("b", b)}</span><pre data-testid="compare-response-b">{b.response}</pre></div>
    </div>
  );
}

const DRIFT_W = 220, DRIFT_H = 90;

function DriftCurve({ data }: { data: ComparisonOut }) {
  const pts = useMemo(() => driftPoints(data.layers, data.drift, DRIFT_W, DRIFT_H), [data]);
  if (pts.length === 0) return <p className="muted small" data-testid="compare-drift-none">No residual drift (no residual vectors in both trials).</p>;
  return (
    <svg className="compare-drift" data-testid="compare-drift" width={DRIFT_W} height={DRIFT_H} viewBox={`0 0 ${DRIFT_W} ${DRIFT_H}`}>
      <polyline points={pts.map((p) => `${p.x},${p.y}`).join(" ")} />
      {pts.map((p) => (
        <circle key={p.layer} cx={p.x} cy={p.y} r={3} data-layer={p.layer} data-value={p.value.toFixed(6)}>
          <title>layer {p.layer}: {fixed(p.value, 6)}</title>
        </circle>
      ))}
    </svg>
  );
}
