// The Run panel's form (data/runForm.ts): the request body it makes, one line per wrong field, the
// API's limits, prompts one per line or as a JSON list, and refusals as one line.
import { describe, expect, it } from "vitest";
import { MAX_PROMPT_CHARS, MAX_PROMPTS, MAX_SEED, MAX_STRENGTH, MAX_TEMPERATURE, MAX_TOKENS, checkRunForm, defaultForm, parsePrompts, runErrorMessage, type RunForm } from "../src/data/runForm";

const form = (over: Partial<RunForm>): RunForm => ({ ...defaultForm, model: "tiny.gguf", prompts: "Hello", ...over });
const errorsOf = (f: RunForm) => {
  const c = checkRunForm(f);
  if (c.ok) throw new Error("expected errors");
  return c.errors;
};

describe("parsePrompts", () => {
  it("takes the non-blank lines, trimmed, whatever the line ends", () => {
    expect(parsePrompts("  one \r\n\ntwo\rthree\n   \n")).toEqual(["one", "two", "three"]);
  });
  it("takes a JSON list of strings as it is (prompts with line breaks)", () => {
    expect(parsePrompts('["a\\nb", "c", " "]')).toEqual(["a\nb", "c"]);
    expect(parsePrompts('["a", 3]')).toMatch(/strings only/);
    expect(parsePrompts("[not json")).toMatch(/not a JSON list/);
  });
});

describe("checkRunForm", () => {
  it("makes the request body of a valid form", () => {
    const c = checkRunForm(form({ prompts: "a\nb", preset: "full", chat: "raw", maxTokens: " 64 ", temperature: "0.7", seed: "42" }));
    expect(c).toEqual({ ok: true, body: { model: "tiny.gguf", prompts: ["a", "b"], preset: "full", chat: "raw", max_tokens: 64, temperature: 0.7, seed: 42 } });
    const noSeed = checkRunForm(form({}));
    expect(noSeed.ok && noSeed.body.seed).toBeNull();
  });

  it("says what is wrong with each field, and sends nothing", () => {
    const e = errorsOf(form({ model: "", prompts: " \n ", maxTokens: "ten", temperature: "-1", seed: "1.5" }));
    expect(Object.keys(e).sort()).toEqual(["maxTokens", "model", "prompts", "seed", "temperature"]);
    expect(e.model).toBe("choose a model");
    expect(e.prompts).toBe("type a prompt (one per line)");
    expect(e.maxTokens).toMatch(/whole number from 1 to 1024/);
    expect(e.temperature).toBe("temperature is -1: it cannot be negative");
    expect(e.seed).toMatch(/whole number, or empty/);
    expect(errorsOf(form({ temperature: "" })).temperature).toMatch(/must be a number/);
  });

  it("keeps the API's limits: prompts, their length, max tokens", () => {
    const many = Array.from({ length: MAX_PROMPTS + 1 }, (_, i) => `p${i}`).join("\n");
    expect(errorsOf(form({ prompts: many })).prompts).toBe(`${MAX_PROMPTS + 1} prompts: at most ${MAX_PROMPTS} per run`);
    expect(checkRunForm(form({ prompts: many.split("\n").slice(0, MAX_PROMPTS).join("\n") })).ok).toBe(true);
    const long = "x".repeat(MAX_PROMPT_CHARS + 1);
    expect(errorsOf(form({ prompts: `ok\n${long}` })).prompts).toBe(`prompt 2 has ${MAX_PROMPT_CHARS + 1} characters: at most ${MAX_PROMPT_CHARS}`);
    expect(checkRunForm(form({ prompts: "x".repeat(MAX_PROMPT_CHARS) })).ok).toBe(true);
    expect(errorsOf(form({ maxTokens: String(MAX_TOKENS + 1) })).maxTokens).toBe(`max tokens is ${MAX_TOKENS + 1}: choose 1 to ${MAX_TOKENS}`);
    expect(errorsOf(form({ maxTokens: "0" })).maxTokens).toBe(`max tokens is 0: choose 1 to ${MAX_TOKENS}`);
    expect(checkRunForm(form({ maxTokens: String(MAX_TOKENS) })).ok).toBe(true);
    expect(checkRunForm(form({ maxTokens: "1" })).ok).toBe(true);
    expect(errorsOf(form({ temperature: String(MAX_TEMPERATURE + 0.5) })).temperature).toBe(`temperature is ${MAX_TEMPERATURE + 0.5}: at most ${MAX_TEMPERATURE}`);
    expect(checkRunForm(form({ temperature: String(MAX_TEMPERATURE) })).ok).toBe(true);
    expect(errorsOf(form({ seed: "-1" })).seed).toBe(`seed is -1: choose 0 to ${MAX_SEED}, or empty for a random one`);
    expect(errorsOf(form({ seed: String(MAX_SEED + 1) })).seed).toMatch(/choose 0 to/);
    expect(checkRunForm(form({ seed: String(MAX_SEED) })).ok).toBe(true);
  });
});

describe("runErrorMessage", () => {
  it("one line: what the status means for a run, then the server's reason", () => {
    expect(runErrorMessage(403, "runs need --allow-runs and a token")).toBe("Runs are not allowed on this server: runs need --allow-runs and a token");
    expect(runErrorMessage(429, "8 runs are queued")).toBe("The run queue is full (wait for a run to end): 8 runs are queued");
    expect(runErrorMessage(404, "no model nope.gguf")).toBe("Not found: no model nope.gguf");
    expect(runErrorMessage(503, "")).toBe("The server failed (HTTP 503)");
    expect(runErrorMessage(0, "cannot reach the Spectra Vis server")).toBe("cannot reach the Spectra Vis server");
  });
});

describe("checkRunForm: a control vector (issue 16)", () => {
  it("sends no control when none is chosen, whatever strength and layers say", () => {
    const c = checkRunForm(form({ strength: "abc", layers: "x" }));
    expect(c.ok && "control" in c.body).toBe(false);
  });
  it("sends the vector, its strength and layer range", () => {
    const c = checkRunForm(form({ control: "sea.gguf", strength: " -2.5 ", layers: "4 - 14" }));
    expect(c.ok && c.body.control).toEqual({ file: "sea.gguf", strength: -2.5, layers: "4-14" });
    const own = checkRunForm(form({ control: "sea.gguf", strength: "0" }));
    expect(own.ok && own.body.control).toEqual({ file: "sea.gguf", strength: 0, layers: null });
    expect(checkRunForm(form({ control: "v.gguf", strength: String(MAX_STRENGTH) })).ok).toBe(true);
    expect(checkRunForm(form({ control: "v.gguf", strength: String(-MAX_STRENGTH) })).ok).toBe(true);
  });
  it("refuses a strength that is not a finite number in range, and a malformed layer range", () => {
    for (const s of ["", "abc", "Infinity", "NaN", "1e999"]) {
      expect(errorsOf(form({ control: "v.gguf", strength: s })).strength).toBe("strength must be a number (0: exactly the unsteered run)");
    }
    expect(errorsOf(form({ control: "v.gguf", strength: "100.5" })).strength).toBe(`strength is 100.5: choose -${MAX_STRENGTH} to ${MAX_STRENGTH}`);
    expect(errorsOf(form({ control: "v.gguf", strength: "-101" })).strength).toMatch(/choose -100 to 100/);
    for (const l of ["4", "4-", "a-b", "4-14-2", "-3-4", "12345-1"]) {
      expect(errorsOf(form({ control: "v.gguf", layers: l })).layers).toMatch(/range such as "4-14"/);
    }
    expect(errorsOf(form({ control: "v.gguf", layers: "9-3" })).layers).toBe("layers 9-3: the first layer must not be after the last");
    expect(Object.keys(errorsOf(form({ control: "v.gguf", strength: "x", layers: "y" }))).sort()).toEqual(["layers", "strength"]);
  });
});
