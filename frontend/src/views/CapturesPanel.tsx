/** Captures panel: the capture files in the data directory, upload by drag-and-drop (or a file
 * picker) of a capture with its vectors companion if it has one, load; what loading could not give
 * (the server's notices), the loaded capture's model card and a trial picker with prompt and response. */
import { useState, type DragEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import type { FileInfo, LoadOut } from "../api/client";
import { loadCapture, uploadCapture, useFiles } from "../api/queries";
import { reportUpload } from "./LoadProgress";
import { fmt } from "../data/format";
import { companionName, pickUploadPair } from "../data/uploadPair";
import { useCurrent } from "./current";

export const CAPTURE_COMMAND = "python capture_tensors.py";

export function EmptyState({ dataDir }: { dataDir?: string }) {
  return (
    <div className="empty" data-testid="empty-state">
      <h2>No captures yet</h2>
      <p>
        A capture records what llama.cpp computed inside a GGUF model while it answered your prompts: every
        tensor's statistics at every step, and the attention of each token. Make one first:
      </p>
      <pre><code>{CAPTURE_COMMAND}</code></pre>
      <p>
        It asks for a model and prompts and saves a <code>capture_*.json</code> file into the data directory
        {dataDir ? <> (<code>{dataDir}</code>)</> : null}. Then reload this page, or drop the file on the panel on the left.
      </p>
    </div>
  );
}

export function CapturesPanel() {
  const { state, dispatch, capture } = useCurrent();
  const trialId = state.trialId;
  const qc = useQueryClient();
  const files = useFiles();
  const onLoaded = (c: LoadOut) => dispatch({ type: "loaded", path: c.path });
  const onTrial = (id: number) => dispatch({ type: "trial", trialId: id });
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [over, setOver] = useState(false);

  /** One request at a time: a progress line while it runs, its error shown (never swallowed). */
  const attempt = async (progress: string, failure: string, work: () => Promise<void>) => {
    setBusy(progress);
    setError(null);
    setNotice(null);
    try {
      await work();
    } catch (e) {
      setError(`${failure}: ${(e as Error).message}`);
    } finally {
      setBusy(null);
    }
  };

  const load = (f: FileInfo) =>
    attempt(`Loading ${f.name}…`, `Could not load ${f.name}`, async () => onLoaded(await loadCapture(qc, f.path)));

  /** The files chosen or dropped together: the capture and its companion, or why not (nothing sent). */
  const upload = async (chosen: readonly File[]) => {
    const pick = pickUploadPair(chosen);
    if (!pick.ok) {
      setNotice(null);
      setError(pick.error);
      return;
    }
    const { capture: file, vectors } = pick;
    const what = vectors ? `${file.name} with ${vectors.name}` : file.name;
    await attempt(`Uploading ${what}…`, `Upload of ${what} failed`, async () => {
      reportUpload({ name: what, sent: 0, total: 0 }); // the bar under the top bar (views/LoadProgress)
      const out = await uploadCapture(qc, file, vectors, (sent, total) => reportUpload({ name: what, sent, total }))
        .finally(() => reportUpload(null)); // the file list is read again
      setNotice(vectors
        ? `Uploaded ${file.name} as ${out.saved_as} and its vectors ${vectors.name} as ${companionName(out.saved_as)}`
        : `Uploaded ${file.name} as ${out.saved_as}`);
      onLoaded(out);
    });
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    const chosen = Array.from(e.dataTransfer.files ?? []);
    if (chosen.length > 0) void upload(chosen);
  };

  return (
    <section className="panel captures" data-testid="captures-panel">
      <h2>Captures</h2>
      <div
        className={`dropzone${over ? " over" : ""}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        Drop a capture <code>.json</code> with its <code>.vectors.safetensors</code> file if it has one (or a
        trial trace <code>.jsonl</code>) here, or{" "}
        <label className="linklike">
          choose the files
          <input type="file" multiple accept=".json,.jsonl,.safetensors,application/json" data-testid="upload-input" hidden
            onChange={(e) => {
              const chosen = Array.from(e.target.files ?? []); // before the reset below empties the list
              e.target.value = "";
              if (chosen.length > 0) void upload(chosen);
            }} />
        </label>
      </div>
      {busy && <div className="loading" role="status">{busy}</div>}
      {error && <div className="error" role="alert" data-testid="captures-error">{error}</div>}
      {notice && <div className="notice" role="status" data-testid="captures-notice">{notice}</div>}
      {capture && capture.notices.length > 0 && (
        <ul className="capture-notices" data-testid="capture-notices" data-path={capture.path}>
          {capture.notices.map((n) => <li key={n} className="warning">{n}</li>)}
        </ul>
      )}
      {files.loading && !files.data && <div className="loading" role="status">Reading the data directory…</div>}
      {files.error && <div className="error" role="alert">Cannot list captures: {files.error}</div>}
      {files.data && (
        <ul className="files" data-testid="file-list">
          {files.data.files.length === 0 && <li className="muted">No capture files in {files.data.data_dir}</li>}
          {files.data.files.map((f) => (
            <li key={f.path} className={`${f.valid ? "" : "invalid"}${capture?.path === f.path ? " current" : ""}`} data-path={f.path}>
              <button type="button" disabled={!f.valid || busy !== null} onClick={() => void load(f)} title={f.error ?? f.path}>
                {capture?.path === f.path ? "✓ " : ""}{f.name}
              </button>
              <div className="muted small">
                {f.valid ? `${f.model ?? "?"} · ${f.preset} · ${f.trials} trial(s) · ${(f.size / 1024).toFixed(0)} KB` : `not a capture: ${f.error}`}
              </div>
            </li>
          ))}
        </ul>
      )}
      {capture && <ModelCard capture={capture} />}
      {capture && (
        <div className="trials" data-testid="trial-picker">
          <h3>Trial</h3>
          <select aria-label="trial" value={trialId} onChange={(e) => onTrial(Number(e.target.value))}>
            {capture.trial_list.map((t) => (
              <option key={t.id} value={t.id}>#{t.id}: {t.prompt.slice(0, 40)}</option>
            ))}
          </select>
          {capture.trial_list[trialId] && (
            <div className="trial-text">
              <div><span className="muted">Prompt</span><p data-testid="trial-prompt">{capture.trial_list[trialId].prompt}</p></div>
              <div><span className="muted">Response</span><p data-testid="trial-response">{capture.trial_list[trialId].response}</p></div>
              <div className="muted small">{capture.trial_list[trialId].n_tokens} tokens ({capture.trial_list[trialId].n_prompt} prompt), {capture.trial_list[trialId].n_steps} steps</div>
              {!capture.legacy && (
                <a className="linklike small" data-testid="trace-link" href={`/api/trials/${trialId}/trace?capture_id=${encodeURIComponent(capture.capture_id)}`} download>
                  Export this trial as a JSONL trace
                </a>
              )}
            </div>
          )}
        </div>
      )}
    </section>
  );
}

const CARD_FIELDS: [string, string][] = [
  ["name", "model"], ["architecture", "architecture"], ["family", "family"], ["n_layer", "layers"], ["n_head", "heads"],
  ["n_head_kv", "KV heads"], ["n_embd", "width"], ["n_vocab", "vocabulary"], ["n_ctx_train", "trained context"],
  ["file_type", "weights"], ["file_name", "file"],
];

function ModelCard({ capture }: { capture: LoadOut }) {
  const m = capture.model as Record<string, unknown>;
  return (
    <div className="model-card" data-testid="model-card">
      <h3>Model</h3>
      <dl>
        {CARD_FIELDS.filter(([k]) => m[k] !== undefined && m[k] !== null).map(([k, label]) => (
          <div key={k}><dt>{label}</dt><dd data-field={k}>{String(m[k])}</dd></div>
        ))}
        <div><dt>size</dt><dd>{fmt(Number(m.file_size) / 1e6)} MB</dd></div>
        <div><dt>preset</dt><dd>{capture.preset}</dd></div>
        <div><dt>tensors</dt><dd>{capture.unique_tensors} ({capture.captured_tensors} with values)</dd></div>
        <div><dt>format</dt><dd>{capture.version}{capture.legacy ? " (legacy, counts only)" : ""}</dd></div>
      </dl>
      {typeof m.family_warning === "string" && <div className="warning">{m.family_warning}</div>}
    </div>
  );
}
