/** The compare panel: any two trials of any captures compared (/api/compare; a: the reference). Each
 * side picks a capture (the server's loaded ones, or a file of the data directory, loaded when
 * chosen) and a trial. The viewer's capture opens compared when it holds a pair: a `spectra-vis
 * compare` pair as reference vs candidate, a steering sweep as its strength-0 baseline vs a steered
 * trial (with a strength picker). What the comparison shows: views/CompareView.tsx. */
import { useEffect, useRef, useState } from "react";
import { useCapture, useCaptures, useCompare, useFiles, useTrial } from "../api/queries";
import type { LoadOut, TrialBrief } from "../api/client";
import { trialRef } from "../data/compare";
import { captureChoices, cursorTarget, defaultPair, pairKind, strengthLabel, sweepOf, trialLabel, type CaptureChoice, type Side } from "../data/comparePick";
import { CompareView } from "./CompareView";
import { ProjectionChart } from "./ProjectionChart";
import { useCurrent } from "./current";
import { ErrorBox, Loading } from "./Status";
import { tokenStep } from "./TokenTimeline";

export function ComparePanel() {
  const { capture, state } = useCurrent();
  if (!capture || !state.capturePath) return null;
  // Keyed by capture: another capture starts from its own default pair.
  return <CompareBody key={state.capturePath} path={state.capturePath} trials={capture.trial_list} />;
}

function CompareBody({ path, trials }: { path: string; trials: TrialBrief[] }) {
  const initial = defaultPair(trials);
  const kind = pairKind(trials);
  const section = useRef<HTMLElement>(null);
  // A pair or a sweep opens in this view: brought into sight once, when its first comparison arrives.
  const [shown, setShown] = useState(false);
  const [a, setA] = useState<Side | null>({ path, trial: initial?.a ?? trials[0]?.id ?? 0 });
  const [b, setB] = useState<Side | null>(initial ? { path, trial: initial.b } : null);
  const capA = useCapture(a?.path ?? null), capB = useCapture(b?.path ?? null);
  const choices = captureChoices(useCaptures().data, useFiles().data, path, [capA.data?.path ?? null, capB.data?.path ?? null]);
  const refA = a && capA.data ? trialRef(capA.data.capture_id, a.trial) : null;
  const refB = b && capB.data ? trialRef(capB.data.capture_id, b.trial) : null;
  const ready = refA !== null && refB !== null && refA !== refB;
  const cmp = useCompare(ready ? refA : null, ready ? refB : null);
  const arrived = cmp.data !== null;
  useEffect(() => {
    if (kind === null || shown || !arrived) return;
    section.current?.scrollIntoView({ block: "start" });
    setShown(true);
  }, [kind, shown, arrived]);
  const briefA = capA.data?.trial_list.find((t) => t.id === a?.trial) ?? null;
  const briefB = capB.data?.trial_list.find((t) => t.id === b?.trial) ?? null;
  const { onPos, cursor } = useCursorFollow(ready && capA.data && capB.data
    ? [{ captureId: capA.data.capture_id, trial: a!.trial }, { captureId: capB.data.capture_id, trial: b!.trial }] : []);
  return (
    <section ref={section} className="panel view-compare" id="view-compare" data-testid="compare-panel" data-kind={kind ?? ""}>
      <h2>Compare{kind && <span className="muted small"> · {kind === "pair" ? "a pair made by spectra-vis compare" : "a steering sweep"}</span>}</h2>
      <div className="compare-pick">
        <SidePicker name="a" label="a (reference)" side={a} capture={capA.data} choices={choices} onChange={setA} />
        <SidePicker name="b" label="b" side={b} capture={capB.data} choices={choices} onChange={setB} />
      </div>
      {a && b && a.path === b.path && capA.data && <SweepPicker trials={capA.data.trial_list} a={a} b={b} onB={setB} />}
      <ErrorBox error={capA.error ?? capB.error} what="a capture to compare" />
      {!ready && <p className="muted" data-testid="compare-hint">Pick two different trials to compare.</p>}
      <ErrorBox error={cmp.error} what="the comparison" />
      {cmp.loading && <Loading what="the comparison" />}
      {ready && cmp.data && <CompareView key={`${refA}|${refB}`} data={cmp.data} briefA={briefA} briefB={briefB} onPos={onPos} cursor={cursor} />}
      {!ready && briefA?.control && capA.data && (
        <ProjectionChart a={{ captureId: capA.data.capture_id, trial: briefA.id }} b={null}
          pos={Math.max(0, briefA.n_prompt - 1)} posNote="the last prompt token" />
      )}
    </section>
  );
}

interface SideProps {
  name: "a" | "b";
  label: string;
  side: Side | null;
  capture: LoadOut | null;
  choices: CaptureChoice[];
  onChange: (s: Side | null) => void;
}

/** One side's capture and trial. Choosing a capture file loads it (POST /api/load) and takes its trial 0. */
function SidePicker({ name, label, side, capture, choices, onChange }: SideProps) {
  const trials = capture?.path === side?.path ? (capture?.trial_list ?? []) : [];
  return (
    <div className="compare-side" data-testid={`compare-side-${name}`}>
      <span className="compare-side-label">{label}</span>{" "}
      <select data-testid={`compare-${name}-capture`} aria-label={`${label}: capture`} value={side?.path ?? ""}
        onChange={(e) => onChange(e.target.value === "" ? null : { path: e.target.value, trial: 0 })}>
        <option value="">—</option>
        {choices.map((c) => <option key={c.path} value={c.path}>{c.label}{c.loaded ? "" : " (not loaded)"}</option>)}
      </select>{" "}
      <select data-testid={`compare-${name}`} aria-label={`${label}: trial`} value={side && trials.length > 0 ? side.trial : ""}
        disabled={!side || trials.length === 0}
        onChange={(e) => side && onChange({ path: side.path, trial: Number(e.target.value) })}>
        {trials.length === 0 && <option value="">—</option>}
        {trials.map((t) => <option key={t.id} value={t.id}>{trialLabel(t)}</option>)}
      </select>
    </div>
  );
}

/** A sweep compared with its baseline: the steered trial by strength. */
function SweepPicker({ trials, a, b, onB }: { trials: TrialBrief[]; a: Side; b: Side; onB: (s: Side) => void }) {
  const sweep = sweepOf(trials);
  if (!sweep || a.trial !== sweep.baseline || sweep.others.length === 0) return null;
  return (
    <div className="compare-sweep" data-testid="compare-sweep" data-sweep={sweep.id}>
      <span className="muted small">sweep {sweep.id}: baseline strength 0 (a) against strength</span>{" "}
      {sweep.others.map((s) => (
        <button key={s.trial} type="button" data-testid="compare-strength" data-trial={s.trial} data-strength={s.strength}
          className={s.trial === b.trial ? "active" : ""} aria-pressed={s.trial === b.trial} onClick={() => onB({ path: b.path, trial: s.trial })}>
          {strengthLabel(s.strength)}
        </button>
      ))}
    </div>
  );
}

/** The scrubber's position moves the viewer's cursor too when a compared trial is in the viewer's
 * capture (data/comparePick.ts: cursorTarget); and `cursor`, the viewer's chosen token while the
 * viewer shows one of the compared trials (null otherwise), moves the scrubber. */
function useCursorFollow(sides: { captureId: string; trial: number }[]) {
  const { state, dispatch, cid } = useCurrent();
  const target = cursorTarget(sides, { captureId: cid, trial: state.trialId });
  const trial = useTrial(target ? cid : null, target?.trial ?? 0);
  const onPos = (pos: number) => {
    if (!target || !trial.data || trial.data.id !== target.trial) return;
    if (target.switchTrial) dispatch({ type: "trial", trialId: target.trial });
    dispatch({ type: "token", pos, step: tokenStep(trial.data, pos) });
  };
  return { onPos, cursor: target && !target.switchTrial ? state.token : null };
}
