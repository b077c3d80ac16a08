// Uploading a capture with its vectors companion (format 2.1): which of the chosen files make the pair
// (data/uploadPair.ts) and what the upload request sends (api/queries.ts uploadCapture: the capture as
// `file`, the companion as `vectors`, the form fields POST /api/upload reads).
import { afterEach, describe, expect, it, vi } from "vitest";
import { keys, makeQueryClient, uploadCapture } from "../src/api/queries";
import { companionName, pickUploadPair } from "../src/data/uploadPair";

const f = (name: string) => ({ name });
const fail = (names: string[]) => {
  const r = pickUploadPair(names.map(f));
  if (r.ok) throw new Error(`${names.join(", ")} was accepted`);
  return r.error;
};

describe("pickUploadPair", () => {
  it("a capture alone, or a trace alone: no companion", () => {
    expect(pickUploadPair([f("capture_a.json")])).toEqual({ ok: true, capture: f("capture_a.json"), vectors: null });
    expect(pickUploadPair([f("run_trial0.jsonl")])).toEqual({ ok: true, capture: f("run_trial0.jsonl"), vectors: null });
  });

  it("a capture and its companion, in either order", () => {
    const want = { ok: true, capture: f("capture_a.json"), vectors: f("capture_a.vectors.safetensors") };
    expect(pickUploadPair([f("capture_a.json"), f("capture_a.vectors.safetensors")])).toEqual(want);
    expect(pickUploadPair([f("capture_a.vectors.safetensors"), f("capture_a.json")])).toEqual(want);
    // Extensions in capitals too (the server lists *.json case-insensitively).
    expect(pickUploadPair([f("A.JSON"), f("A.VECTORS.SAFETENSORS")])).toMatchObject({ ok: true, capture: f("A.JSON") });
  });

  it("a companion whose name does not match the capture's is still taken (the server checks its content)", () => {
    expect(pickUploadPair([f("capture_a.json"), f("capture_a (1).vectors.safetensors")])).toEqual({
      ok: true, capture: f("capture_a.json"), vectors: f("capture_a (1).vectors.safetensors"),
    });
  });

  it("the files themselves are returned (File objects, not copies)", () => {
    const files = [new File(["{}"], "a.json"), new File(["x"], "a.vectors.safetensors")];
    const r = pickUploadPair(files);
    expect(r.ok && r.capture).toBe(files[0]);
    expect(r.ok && r.vectors).toBe(files[1]);
  });

  it("a companion alone: says to drop the capture with it", () => {
    expect(fail(["capture_a.vectors.safetensors"])).toBe(
      "capture_a.vectors.safetensors: a vectors file alone cannot be uploaded; drop the capture .json together with its .vectors.safetensors file",
    );
  });

  it("two captures, or a trace and a capture: one at a time", () => {
    expect(fail(["a.json", "b.json"])).toBe(
      "2 captures chosen (a.json, b.json): upload one at a time; drop the capture .json together with its .vectors.safetensors file",
    );
    expect(fail(["a.json", "a.vectors.safetensors", "t.jsonl"])).toMatch(/^2 captures chosen \(a\.json, t\.jsonl\): upload one at a time/);
  });

  it("two companions: a capture has one", () => {
    expect(fail(["a.json", "a.vectors.safetensors", "b.vectors.safetensors"])).toMatch(
      /^2 vectors files chosen \(a\.vectors\.safetensors, b\.vectors\.safetensors\): a capture has one; drop the capture \.json/,
    );
  });

  it("a trace with a companion: a trace keeps no vectors", () => {
    expect(fail(["t.jsonl", "t.vectors.safetensors"])).toBe("t.jsonl is a trial trace, which keeps no vectors: drop the trace alone");
  });

  it("any other file type, alone or with a capture, names the file", () => {
    expect(fail(["notes.txt"])).toBe(
      "notes.txt: not a capture or its vectors file; drop a capture .json or a trace .jsonl (with its .vectors.safetensors file, if it has one)",
    );
    expect(fail(["a.json", "picture.png"])).toMatch(/^picture\.png: not a capture or its vectors file;/);
    // A .safetensors that is not a companion: the error says what a companion's name ends with.
    expect(fail(["a.json", "a.safetensors"])).toMatch(/^a\.safetensors: not a capture or its vectors file \(a vectors file's name ends \.vectors\.safetensors\);/);
  });

  it("nothing chosen", () => {
    expect(fail([])).toMatch(/^No file chosen: drop a capture \.json/);
  });

  it("every error is one line", () => {
    for (const names of [["a.vectors.safetensors"], ["a.json", "b.json"], ["x.bin"], []]) expect(fail(names)).not.toMatch(/\n/);
  });
});

describe("companionName", () => {
  it("is the server's companion name beside a saved capture", () => {
    expect(companionName("capture_a-1.json")).toBe("capture_a-1.vectors.safetensors");
    expect(companionName("run")).toBe("run.vectors.safetensors");
  });
});

describe("uploadCapture", () => {
  let forms: FormData[];
  const answer = { capture_id: "c2", name: "a-1.json", path: "a-1.json", notices: [], saved_as: "a-1.json" };
  const stub = () => {
    forms = [];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => {
      if (url === "/api/upload") forms.push(init?.body as FormData);
      const text = JSON.stringify(url === "/api/upload" ? answer : { data_dir: "/data", files: [] });
      return { ok: true, status: 200, text: async () => text } as Response;
    }));
  };
  afterEach(() => vi.unstubAllGlobals());

  it("sends the companion as the `vectors` field beside the capture's `file`", async () => {
    stub();
    const qc = makeQueryClient();
    const cap = new File(['{"format": "spectra-vis-capture"}'], "a.json", { type: "application/json" });
    const vec = new File([new Uint8Array([1, 2, 3])], "a.vectors.safetensors");
    const out = await uploadCapture(qc, cap, vec);
    expect(forms).toHaveLength(1);
    expect([...forms[0].keys()]).toEqual(["file", "vectors"]);
    expect((forms[0].get("file") as File).name).toBe("a.json");
    expect((forms[0].get("vectors") as File).name).toBe("a.vectors.safetensors");
    expect(new Uint8Array(await (forms[0].get("vectors") as File).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    expect(qc.getQueryData(keys.capture("a-1.json"))).toEqual(out);
  });

  it("without a companion, only the `file` field", async () => {
    stub();
    await uploadCapture(makeQueryClient(), new File(["{}"], "a.json"));
    await uploadCapture(makeQueryClient(), new File(["{}"], "b.json"), null);
    expect(forms.map((form) => [...form.keys()])).toEqual([["file"], ["file"]]);
  });
});
