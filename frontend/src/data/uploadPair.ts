/** What an upload sends, from the files chosen or dropped together: the capture (`.json`, or a trial
 * trace `.jsonl`) and, for a format 2.1 capture, at most one `.vectors.safetensors` companion (its
 * activation vectors). Pure: names in, the pair or one line saying what was wrong and what to do out. */

export const VECTORS_SUFFIX = ".vectors.safetensors";

const WITH_VECTORS = "drop the capture .json together with its .vectors.safetensors file";
const CAPTURE_ONLY = "drop a capture .json or a trace .jsonl (with its .vectors.safetensors file, if it has one)";

export type UploadPair<F> = { capture: F; vectors: F | null };
export type PickedUpload<F> = ({ ok: true } & UploadPair<F>) | { ok: false; error: string };

type Kind = "capture" | "trace" | "vectors" | "other";

function kindOf(name: string): Kind {
  const n = name.toLowerCase();
  if (n.endsWith(VECTORS_SUFFIX)) return "vectors";
  if (n.endsWith(".json")) return "capture";
  if (n.endsWith(".jsonl")) return "trace";
  return "other";
}

const list = (files: readonly { name: string }[]) => files.map((f) => f.name).join(", ");

/** The capture and its companion among `files`: exactly one capture, at most one companion, nothing
 * else. A companion whose name does not match the capture's stem (capture_X.json with
 * other.vectors.safetensors) is still taken: the file's name proves nothing either way (a browser
 * saves a second download as "capture_X (1).vectors.safetensors"), while the server checks the file
 * itself against the capture's `vectors` index (its sha256, every array's shape), refuses a wrong one
 * with its reason and nothing left behind, and saves a right one under the capture's new name.
 * Refusing by name here would only turn away right pairs. */
export function pickUploadPair<F extends { name: string }>(files: readonly F[]): PickedUpload<F> {
  if (files.length === 0) return { ok: false, error: `No file chosen: ${CAPTURE_ONLY}` };
  const of = (k: Kind) => files.filter((f) => kindOf(f.name) === k);
  const [captures, traces, vectors, other] = [of("capture"), of("trace"), of("vectors"), of("other")];
  if (other.length > 0) {
    const what = other.some((f) => f.name.toLowerCase().endsWith(".safetensors"))
      ? `not a capture or its vectors file (a vectors file's name ends ${VECTORS_SUFFIX})`
      : "not a capture or its vectors file";
    return { ok: false, error: `${list(other)}: ${what}; ${CAPTURE_ONLY}` };
  }
  const all = [...captures, ...traces];
  if (all.length === 0) return { ok: false, error: `${list(vectors)}: a vectors file alone cannot be uploaded; ${WITH_VECTORS}` };
  if (all.length > 1) return { ok: false, error: `${all.length} captures chosen (${list(all)}): upload one at a time; ${WITH_VECTORS}` };
  if (vectors.length > 1) {
    return { ok: false, error: `${vectors.length} vectors files chosen (${list(vectors)}): a capture has one; ${WITH_VECTORS}` };
  }
  if (traces.length === 1 && vectors.length === 1) {
    return { ok: false, error: `${traces[0].name} is a trial trace, which keeps no vectors: drop the trace alone` };
  }
  return { ok: true, capture: all[0], vectors: vectors[0] ?? null };
}

/** The companion's name beside a capture saved as `saved` (the server's
 * spectra_vis.store.vectors.companion_name: run.json -> run.vectors.safetensors). */
export function companionName(saved: string): string {
  return (saved.endsWith(".json") ? saved.slice(0, -".json".length) : saved) + VECTORS_SUFFIX;
}
