/** The Run panel: run a capture on the server (POST /api/runs) and follow it. A model from the
 * server's models directory, prompts (one per line, or a JSON list), preset, chat template or raw
 * text, max tokens, temperature and seed; Run and Stop; the server's runs with state and progress
 * (GET /api/runs, read again every second while one is going). A refused request is shown on one
 * line (data/runForm's runErrorMessage); the run started here is watched by the live panel. */
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiError, type RunInfo } from "../api/client";
import { cancelRun, keys, loadCapture, startRun, useModelFiles, useRuns } from "../api/queries";
import { isActive } from "../data/live";
import { CHAT_MODES, CONTROL_VECTOR, MAX_STRENGTH, PRESETS, checkRunForm, defaultForm, runErrorMessage, type FormErrors, type RunForm } from "../data/runForm";
import { useLive } from "../state/live";
import { useViewer } from "../state/store";

const CHAT_LABELS: Record<RunForm["chat"], string> = { auto: "auto", chat: "chat template", raw: "raw text" };
const CHAT_HELP = "auto: in the model's chat template when its GGUF has one, else as raw text; chat: the template is required; raw: the text as typed";

const messageOf = (e: unknown) => (e instanceof ApiError ? runErrorMessage(e.status, e.message) : String((e as Error)?.message ?? e));

export function RunPanel() {
  const qc = useQueryClient();
  const { live, watch, token, setToken } = useLive();
  const models = useModelFiles();
  const runs = useRuns(token || null);
  const [form, setForm] = useState<RunForm>(defaultForm);
  const [errors, setErrors] = useState<FormErrors>({});
  const [tried, setTried] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const all = models.data?.files;
  const files = useMemo(() => all?.filter((f) => f.architecture !== CONTROL_VECTOR), [all]);
  const vectors = useMemo(() => all?.filter((f) => f.architecture === CONTROL_VECTOR) ?? [], [all]);
  useEffect(() => {
    if (files?.length && !files.some((f) => f.name === form.model)) setForm((f) => ({ ...f, model: files[0].name }));
  }, [files, form.model]);
  useEffect(() => {
    if (form.control !== "" && all && !vectors.some((v) => v.name === form.control)) setForm((f) => ({ ...f, control: "" }));
  }, [all, vectors, form.control]);
  useEffect(() => void qc.invalidateQueries({ queryKey: keys.runs }), [qc, token]);

  const set = <K extends keyof RunForm>(k: K, v: RunForm[K]) => {
    const next = { ...form, [k]: v };
    setForm(next);
    if (!tried) return;
    const c = checkRunForm(next);
    setErrors(c.ok ? {} : c.errors);
  };
  const act = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };
  const run = () => {
    setTried(true);
    const c = checkRunForm(form);
    setErrors(c.ok ? {} : c.errors);
    if (c.ok) void act(async () => watch(await startRun(qc, c.body, token || null)));
  };
  const stop = (id: string) => void act(async () => void (await cancelRun(qc, id, token || null)));
  const watched = live.info;
  const refused = runs.status === 403 ? runs.error : runs.data?.allowed === false ? "this server does not allow runs" : null;

  return (
    <section className="panel run-panel" data-testid="run-panel">
      <h2>Run</h2>
      <Field label="Model" error={errors.model}>
        <select aria-label="model" data-testid="run-model" value={form.model} onChange={(e) => set("model", e.target.value)}>
          {!files?.length && <option value="">{models.loading ? "reading the models…" : "no models"}</option>}
          {files?.map((f) => (
            <option key={f.name} value={f.name}>
              {f.demo ? `${f.name} (demo)` : f.name}{f.architecture ? ` · ${f.architecture}` : ""} · {(f.size / 1e6).toFixed(f.size < 1e7 ? 1 : 0)} MB
            </option>
          ))}
        </select>
      </Field>
      {models.error && <div className="error" role="alert">Cannot list the models: {models.error}</div>}
      {models.data && files?.length === 0 && (
        <p className="muted small" data-testid="run-no-models">Put a .gguf file into <code>{models.data.models_dir}</code> to run it here.</p>
      )}
      <Field label="Prompts (one per line)" error={errors.prompts}>
        <textarea aria-label="prompts" data-testid="run-prompts" rows={3} value={form.prompts} placeholder="The capital of France is"
          onChange={(e) => set("prompts", e.target.value)} />
      </Field>
      <div className="run-row">
        <Field label="Preset">
          <select aria-label="preset" data-testid="run-preset" value={form.preset} onChange={(e) => set("preset", e.target.value as RunForm["preset"])}>
            {PRESETS.map((p) => <option key={p} value={p}>{p}</option>)}
          </select>
        </Field>
        <Field label="Prompt as" title={CHAT_HELP}>
          <select aria-label="chat" data-testid="run-chat" value={form.chat} onChange={(e) => set("chat", e.target.value as RunForm["chat"])}>
            {CHAT_MODES.map((m) => <option key={m} value={m}>{CHAT_LABELS[m]}</option>)}
          </select>
        </Field>
      </div>
      <div className="run-row">
        <Field label="Max tokens" error={errors.maxTokens}>
          <input aria-label="max tokens" data-testid="run-max-tokens" inputMode="numeric" value={form.maxTokens} onChange={(e) => set("maxTokens", e.target.value)} />
        </Field>
        <Field label="Temperature" error={errors.temperature}>
          <input aria-label="temperature" data-testid="run-temperature" inputMode="decimal" value={form.temperature} onChange={(e) => set("temperature", e.target.value)} />
        </Field>
        <Field label="Seed" error={errors.seed}>
          <input aria-label="seed" data-testid="run-seed" inputMode="numeric" placeholder="random" value={form.seed} onChange={(e) => set("seed", e.target.value)} />
        </Field>
      </div>
      <div className="run-row">
        <Field label="Steer" title="apply a control vector of the models directory (spectra-vis steer make)">
          <select aria-label="control vector" data-testid="run-control" value={form.control} onChange={(e) => set("control", e.target.value)}>
            <option value="">none</option>
            {vectors.map((v) => <option key={v.name} value={v.name}>{v.name}</option>)}
          </select>
        </Field>
        <Field label="Strength" error={errors.strength} title={`-${MAX_STRENGTH} to ${MAX_STRENGTH}; 0 is exactly the unsteered run`}>
          <input aria-label="strength" data-testid="run-strength" inputMode="decimal" disabled={form.control === ""} value={form.strength} onChange={(e) => set("strength", e.target.value)} />
        </Field>
        <Field label="Layers" error={errors.layers} title="an inclusive block range such as 4-14; empty: the vector's own layers">
          <input aria-label="layers" data-testid="run-layers" placeholder="the vector's" disabled={form.control === ""} value={form.layers} onChange={(e) => set("layers", e.target.value)} />
        </Field>
      </div>
      {(runs.status === 403 || token !== "") && (
        <Field label="Run token (a server started with --allow-runs)">
          <input aria-label="run token" data-testid="run-token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value.trim())} />
        </Field>
      )}
      <div className="run-buttons">
        <button type="button" data-testid="run-start" disabled={busy || refused !== null} onClick={run}>▶ Run</button>
        <button type="button" data-testid="run-stop" disabled={busy || !watched || !isActive(watched)} onClick={() => watched && stop(watched.id)}>■ Stop</button>
      </div>
      {error && <div className="error" role="alert" data-testid="run-error">{error}</div>}
      {refused && <div className="error" role="alert" data-testid="runs-refused">{runErrorMessage(403, refused)}</div>}
      {runs.error && runs.status !== 403 && <div className="error" role="alert">Cannot list the runs: {runs.error}</div>}
      <RunList runs={runs.data?.runs ?? []} watchedId={live.runId} busy={busy} onStop={stop} onWatch={watch} />
    </section>
  );
}

/** A run's control vector on one line: "steered: sea.gguf × 2 · layers 4-14". */
export function controlText(c: NonNullable<RunInfo["control"]>): string {
  return `steered: ${c.file} × ${c.strength}${c.layers ? ` · layers ${c.layers}` : ""}`;
}

function Field({ label, error, title, children }: { label: string; error?: string; title?: string; children: ReactNode }) {
  return (
    <label className="run-field" title={title}>
      <span className="muted small">{label}</span>
      {children}
      {error && <span className="field-error" role="alert">{error}</span>}
    </label>
  );
}

function RunList({ runs, watchedId, busy, onStop, onWatch }: {
  runs: RunInfo[]; watchedId: string | null; busy: boolean; onStop: (id: string) => void; onWatch: (r: RunInfo) => void;
}) {
  const qc = useQueryClient();
  const { dispatch } = useViewer();
  const [error, setError] = useState<string | null>(null);
  const open = (file: string) => loadCapture(qc, file).then((c) => dispatch({ type: "loaded", path: c.path }), (e: Error) => setError(`Could not open ${file}: ${e.message}`));
  if (runs.length === 0) return <p className="muted small" data-testid="run-list-empty">No runs yet.</p>;
  return (
    <>
      <ul className="run-list" data-testid="run-list">
        {[...runs].reverse().map((r) => (
          <li key={r.id} data-run={r.id} data-state={r.state} data-step={r.step} className={r.id === watchedId ? "watched" : ""}>
            <div className="run-head">
              <span className={`run-state ${r.state}`}>{r.state}</span> <span className="run-model">{r.model}</span>
            </div>
            {r.control && <div className="muted small" data-testid="run-control-text">{controlText(r.control)}</div>}
            <div className="muted small" data-testid="run-progress-text">
              trial {Math.min(r.trial + 1, r.n_trials)}/{r.n_trials} · step {r.step} · {r.tokens} tokens
              {r.tokens_per_s !== null ? ` · ${r.tokens_per_s.toFixed(1)} tok/s` : ""}
            </div>
            <progress max={1} value={r.progress} aria-label="run progress" />
            {r.error && <div className="error small">{r.error}</div>}
            <div className="run-actions">
              {isActive(r) && <button type="button" disabled={busy} onClick={() => onStop(r.id)}>Stop</button>}
              {r.id !== watchedId && isActive(r) && <button type="button" onClick={() => onWatch(r)}>Watch</button>}
              {r.file && !isActive(r) && <button type="button" onClick={() => void open(r.file!)} title={r.file}>Open</button>}
            </div>
          </li>
        ))}
      </ul>
      {error && <div className="error" role="alert">{error}</div>}
    </>
  );
}
