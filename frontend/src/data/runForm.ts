/** The Run panel's form, pure: its fields as typed, the request body they make (POST /api/runs) or
 * one line per field saying what is wrong and what to do, and the one-line message of a refused
 * request. The limits are the API's (docs/API.md); the server checks them again and its message is
 * shown when it refuses. */
import type { RunRequest } from "../api/client";

export const MAX_PROMPTS = 8;
export const MAX_PROMPT_CHARS = 4000;
export const MAX_TOKENS = 1024;
export const MAX_TEMPERATURE = 10;
export const MAX_SEED = 2 ** 31 - 1;
export const MAX_STRENGTH = 100;
/** The architecture GET /api/models/files gives a control vector GGUF (steer make writes them). */
export const CONTROL_VECTOR = "controlvector";

export const PRESETS = ["observe", "standard", "full"] as const satisfies readonly RunRequest["preset"][];
export const CHAT_MODES = ["auto", "chat", "raw"] as const satisfies readonly NonNullable<RunRequest["chat"]>[];

export interface RunForm {
  model: string;
  prompts: string; // one per line, or a JSON list of strings (for prompts with line breaks)
  preset: (typeof PRESETS)[number];
  chat: (typeof CHAT_MODES)[number];
  maxTokens: string;
  temperature: string;
  seed: string; // empty: a random seed
  control: string; // a control vector's file name in the models directory; empty: unsteered
  strength: string;
  layers: string; // empty: the vector's own layers; else "4-14" (inclusive)
}

export const defaultForm: RunForm = {
  model: "", prompts: "", preset: "standard", chat: "auto", maxTokens: "32", temperature: "0", seed: "",
  control: "", strength: "1", layers: "",
};

export type FormErrors = Partial<Record<keyof RunForm, string>>;
export type Checked = { ok: true; body: RunRequest } | { ok: false; errors: FormErrors };

/** The prompts of the text box: a JSON list of strings when it is one, else its non-blank lines. */
export function parsePrompts(text: string): string[] | string {
  const t = text.trim();
  if (t.startsWith("[")) {
    let list: unknown;
    try {
      list = JSON.parse(t);
    } catch {
      return 'the prompts start with "[" but are not a JSON list: write ["first", "second"] or one prompt per line';
    }
    if (!Array.isArray(list) || !list.every((p) => typeof p === "string")) return "a JSON list of prompts must hold strings only";
    return list.filter((p) => p.trim() !== "");
  }
  return t.split(/\r\n|\n|\r/).map((l) => l.trim()).filter((l) => l !== "");
}

const INT = /^[+-]?\d+$/;

function checkPrompts(text: string): string[] | string {
  const prompts = parsePrompts(text);
  if (typeof prompts === "string") return prompts;
  if (prompts.length === 0) return "type a prompt (one per line)";
  if (prompts.length > MAX_PROMPTS) return `${prompts.length} prompts: at most ${MAX_PROMPTS} per run`;
  const long = prompts.findIndex((p) => p.length > MAX_PROMPT_CHARS);
  if (long >= 0) return `prompt ${long + 1} has ${prompts[long].length} characters: at most ${MAX_PROMPT_CHARS}`;
  return prompts;
}

function checkMaxTokens(text: string): number | string {
  const t = text.trim();
  if (!INT.test(t)) return `max tokens must be a whole number from 1 to ${MAX_TOKENS}`;
  const n = Number(t);
  return n >= 1 && n <= MAX_TOKENS ? n : `max tokens is ${n}: choose 1 to ${MAX_TOKENS}`;
}

function checkTemperature(text: string): number | string {
  const t = text.trim();
  const v = t === "" ? NaN : Number(t);
  if (!Number.isFinite(v)) return "temperature must be a number (0: always the most likely token)";
  if (v < 0) return `temperature is ${v}: it cannot be negative`;
  return v <= MAX_TEMPERATURE ? v : `temperature is ${v}: at most ${MAX_TEMPERATURE}`;
}

function checkSeed(text: string): number | null | string {
  const t = text.trim();
  if (t === "") return null;
  const n = Number(t);
  if (!INT.test(t) || !Number.isSafeInteger(n)) return "seed must be a whole number, or empty for a random one";
  return n >= 0 && n <= MAX_SEED ? n : `seed is ${n}: choose 0 to ${MAX_SEED}, or empty for a random one`;
}

function checkStrength(text: string): number | string {
  const t = text.trim();
  const v = t === "" ? NaN : Number(t);
  if (!Number.isFinite(v)) return "strength must be a number (0: exactly the unsteered run)";
  return Math.abs(v) <= MAX_STRENGTH ? v : `strength is ${v}: choose -${MAX_STRENGTH} to ${MAX_STRENGTH}`;
}

function checkLayers(text: string): string | null | { error: string } {
  const t = text.trim();
  if (t === "") return null;
  const m = /^(\d{1,4})\s*-\s*(\d{1,4})$/.exec(t);
  if (!m) return { error: 'layers must be a range such as "4-14", or empty for the vector\'s own' };
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a <= b ? `${a}-${b}` : { error: `layers ${a}-${b}: the first layer must not be after the last` };
}

type Control = NonNullable<RunRequest["control"]>;

/** The control vector part of the request: null when unsteered (strength and layers unchecked). */
function checkControl(f: RunForm, errors: FormErrors): Control | null | undefined {
  if (f.control === "") return null;
  const strength = checkStrength(f.strength);
  const layers = checkLayers(f.layers);
  if (typeof strength === "string") errors.strength = strength;
  if (layers !== null && typeof layers === "object") errors.layers = layers.error;
  if (typeof strength === "string" || (layers !== null && typeof layers === "object")) return undefined;
  return { file: f.control, strength, layers };
}

/** The request the form makes, or what is wrong with each field. */
export function checkRunForm(f: RunForm): Checked {
  const errors: FormErrors = {};
  if (f.model === "") errors.model = "choose a model";
  const prompts = checkPrompts(f.prompts);
  const maxTokens = checkMaxTokens(f.maxTokens);
  const temperature = checkTemperature(f.temperature);
  const seed = checkSeed(f.seed);
  const control = checkControl(f, errors);
  if (typeof prompts === "string") errors.prompts = prompts;
  if (typeof maxTokens === "string") errors.maxTokens = maxTokens;
  if (typeof temperature === "string") errors.temperature = temperature;
  if (typeof seed === "string") errors.seed = seed;
  if (typeof prompts === "string" || typeof maxTokens === "string" || typeof temperature === "string" || typeof seed === "string" || errors.model || control === undefined) {
    return { ok: false, errors };
  }
  const body: RunRequest = { model: f.model, prompts, preset: f.preset, chat: f.chat, max_tokens: maxTokens, temperature, seed };
  return { ok: true, body: control ? { ...body, control } : body };
}

/** A refused run request as one line: what the status means here, then the server's reason. */
export function runErrorMessage(status: number, message: string): string {
  const what: Record<number, string> = {
    0: "The server cannot be reached",
    403: "Runs are not allowed on this server",
    404: "Not found",
    409: "Not possible now",
    422: "The server refused the run",
    429: "The run queue is full (wait for a run to end)",
  };
  const head = what[status] ?? (status >= 500 ? `The server failed (HTTP ${status})` : `Refused (HTTP ${status})`);
  if (status === 0) return message || head;
  return message ? `${head}: ${message}` : head;
}
