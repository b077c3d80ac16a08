// The data layer (api/queries.ts) over a counting stub of fetch, the HTTP seam: views that ask for
// the same resource share one request, keys are built in one place, the flow diagram labels the
// special layers the API sends (here not 998/999, so nothing can be retyped), and the selectors offer
// the metrics and depth levels the API sends.
import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FlowsOut, GridOut, HeatmapOut, LoadOut, ModelsOut, StepOut } from "../src/api/client";
import { keys, loadCapture, makeQueryClient, uploadCapture, useAllSteps, useFiles, useHeatmap, useStep } from "../src/api/queries";
import { blockLayers, specialLayers } from "../src/data/layers";
import { selectCell, startupPath } from "../src/state/selection";
import { ViewerProvider, type ViewerState } from "../src/state/store";
import { Toolbar } from "../src/views/Controls";
import { FlowPanel } from "../src/views/FlowPanel";
import { HeatMapsPanel } from "../src/views/HeatMapsPanel";

const SPECIAL = { embedding: -1, final_norm: 500, output: 501 };
const LAYERS = [-1, 0, 1, 500, 501];

const capture = {
  capture_id: "c1", name: "a.json", path: "a.json", version: "3.0", legacy: false, model: { family: "llama" }, preset: "standard",
  trials: 1, unique_tensors: 5, captured_tensors: 5, steps: 3, tokens: 4, trial_list: [], layers: LAYERS, attention_layers: [0, 1],
} as unknown as LoadOut;

const METRICS = ["l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite", "count"];
const DEPTHS = ["Layer outputs only", "+ attention and FFN", "+ projections", "+ norms", "Everything"];
// The profile carries no special layers: the viewer reads the top-level ones.
const apiModels: ModelsOut = { models: ["llama"], profiles: { llama: {} }, metrics: METRICS, depth_levels: DEPTHS, special_layers: SPECIAL };
let models: ModelsOut; // what GET /api/models answers (a test may send other lists)

const cellOf = (id: number, layer: number, type: string) => ({
  id, key: `${layer}:${type}`, name: `${type}-${layer}`, layer, layer_index: LAYERS.indexOf(layer), type, type_index: 0, category: "residual",
  depth: 0, op: "ADD", shape: [4], captured: true, value: id + 1, intensity: 0.5, color: "#fff",
});
const grid = (depth: number): GridOut => ({
  capture_id: "c1", trial_id: 0, step: 0, metric: "l2", depth, phase: "prompt", n_tokens: 4, layers: LAYERS,
  types: ["embd", "attn_norm", "l_out", "result_norm", "result_output"], min: 1, max: 6,
  cells: [cellOf(0, -1, "embd"), cellOf(1, 0, "attn_norm"), cellOf(2, 0, "l_out"), cellOf(3, 1, "l_out"), cellOf(4, 500, "result_norm"), cellOf(5, 501, "result_output")],
});
const flows: FlowsOut = { family: "llama", flows: { attention_flow: [["l_out.prev", "attn_norm"]], ffn_flow: [["attn_norm", "l_out"]] }, colors: {} };
const heatmap = (axis: "types" | "tokens"): HeatmapOut => ({
  capture_id: "c1", trial_id: 0, metric: "l2", axis, step: 0, type: axis === "tokens" ? "l_out" : null, rows: LAYERS,
  cols: [{ index: 0, label: "l_out", type: "l_out", category: "residual" }], values: LAYERS.map(() => [1]), min: 1, max: 1,
});
const colors = { scale: ["#000", "#fff"], categories: {}, flows: {}, zones: {}, states: {} };
const step = (index: number) => ({ capture_id: "c1", trial_id: 0, index, stat_names: ["l2"], tensors: [] }) as unknown as StepOut;

/** Answers like the backend and counts every request as "METHOD path?query body". */
let calls: string[];
function answer(url: string, init?: RequestInit): unknown {
  const u = new URL(url, "http://viewer");
  const body = typeof init?.body === "string" ? JSON.parse(init.body) : null;
  if (u.pathname === "/api/models") return models;
  if (u.pathname === "/api/colors") return colors;
  if (u.pathname === "/api/flows") return flows;
  if (u.pathname === "/api/tensor-grid") return grid(body.depth);
  if (u.pathname === "/api/heatmap") return heatmap(u.searchParams.get("axis") as "types" | "tokens");
  if (u.pathname === "/api/load") return capture;
  if (u.pathname === "/api/upload") return { ...capture, path: "up.json", saved_as: "up.json" };
  if (u.pathname === "/api/files") return { data_dir: "/data", files: [] };
  const m = u.pathname.match(/^\/api\/trials\/0\/steps\/(\d+)$/);
  if (m) return step(Number(m[1]));
  throw new Error(`unexpected request ${u.pathname}`);
}
beforeEach(() => {
  calls = [];
  models = apiModels;
  vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => {
    calls.push(`${init?.method ?? "GET"} ${url}${typeof init?.body === "string" ? ` ${init.body}` : ""}`);
    const text = JSON.stringify(answer(url, init));
    return { ok: true, status: 200, text: async () => text } as Response;
  }));
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});
const count = (prefix: string) => calls.filter((c) => c.startsWith(prefix)).length;

function Viewer({ qc, init, children }: { qc: QueryClient; init?: Partial<ViewerState>; children: ReactNode }) {
  return (
    <QueryClientProvider client={qc}>
      <ViewerProvider init={{ capturePath: "a.json", ...init }}>{children}</ViewerProvider>
    </QueryClientProvider>
  );
}
function seeded(): QueryClient {
  const qc = makeQueryClient();
  qc.setQueryData(keys.capture("a.json"), capture); // as the captures panel or startup leave it
  return qc;
}

describe("api/queries", () => {
  it("the heat-map and flow panels and the top bar share one request per resource", async () => {
    render(<Viewer qc={seeded()}><Toolbar /><HeatMapsPanel /><FlowPanel /></Viewer>);
    await screen.findByTestId("flow-diagram");
    await screen.findByTestId("heatmap-types");
    await screen.findByTestId("heatmap-tokens");
    await screen.findByTestId("legend");
    const full = JSON.stringify({ capture_id: "c1", trial_id: 0, step: 0, metric: "l2", depth: 4 });
    expect(calls.filter((c) => c === `POST /api/tensor-grid ${full}`)).toHaveLength(1); // heat maps and flow
    expect(count("POST /api/tensor-grid")).toBe(2); // and the top bar's legend, at the chosen depth (1)
    expect(count("GET /api/models")).toBe(1); // the special layers of three views
    expect(count("GET /api/colors")).toBe(1);
    expect(count("GET /api/flows")).toBe(1);
    expect(count("GET /api/heatmap")).toBe(2); // types and tokens: two resources
    expect(count("POST /api/load")).toBe(0); // the capture came from the cache
  });

  it("the flow diagram places and labels the special layers the API sends", async () => {
    const { container } = render(<Viewer qc={seeded()}><FlowPanel /></Viewer>);
    await screen.findByTestId("flow-diagram");
    const overview = [...container.querySelectorAll(".flow-overview .flow-node")].map((n) => [n.getAttribute("data-type"), n.getAttribute("data-layer")]);
    expect(overview).toEqual([
      ["overview:embd", "-1"], ["overview:l_out", "0"], ["overview:l_out", "1"], ["overview:result_norm", "500"], ["overview:result_output", "501"],
    ]);
    const blocks = [...screen.getByLabelText<HTMLSelectElement>("flow layer").options].map((o) => o.value);
    expect(blocks).toEqual(["0", "1"]); // 500 and 501 are not blocks
    expect(screen.getByTestId("flow-block").getAttribute("data-layer")).toBe("0"); // the first block opens
    expect(container.querySelector('.flow-block .flow-node[data-type="l_out.prev"]')!.getAttribute("data-layer")).toBe("-1");
  });

  it("the heat map labels the API's special layers by their role", async () => {
    const { container } = render(<Viewer qc={seeded()}><HeatMapsPanel /></Viewer>);
    await screen.findByTestId("heatmap-types");
    await waitFor(() => expect(container.querySelector("[data-testid=heatmap-types]")!.textContent).toContain("logits"));
    const text = container.querySelector("[data-testid=heatmap-types]")!.textContent!;
    for (const label of ["emb", "L0", "L1", "norm", "logits"]) expect(text).toContain(label);
    expect(text).not.toContain("L500");
  });

  it("keys are built once: equal queries share an entry whatever their field order, and every step has one entry", async () => {
    const a = { capture_id: "c1", trial_id: 0, metric: "l2", axis: "types", step: 2 } as const;
    const b = { step: 2, axis: "types", metric: "l2", trial_id: 0, capture_id: "c1" } as const;
    function Two() {
      const x = useHeatmap(a);
      const y = useHeatmap(b);
      const one = useStep("c1", 0, 1);
      const all = useAllSteps("c1", 0, 3);
      return <div data-testid="two">{x.data && y.data && one.data && all.data ? `${all.data.map((s) => s.index).join(",")}` : "…"}</div>;
    }
    render(<Viewer qc={makeQueryClient()}><Two /></Viewer>);
    await waitFor(() => expect(screen.getByTestId("two").textContent).toBe("0,1,2"));
    expect(count("GET /api/heatmap")).toBe(1);
    expect(calls.filter((c) => c.startsWith("GET /api/trials/0/steps/")).sort()).toEqual([
      "GET /api/trials/0/steps/0?capture_id=c1", "GET /api/trials/0/steps/1?capture_id=c1", "GET /api/trials/0/steps/2?capture_id=c1",
    ]);
  });

  it("loading always asks the server (it makes the capture current); an upload seeds the capture and reads the file list again", async () => {
    const qc = makeQueryClient();
    await loadCapture(qc, "a.json");
    await loadCapture(qc, "a.json");
    expect(count("POST /api/load")).toBe(2);
    function FileList() {
      const files = useFiles();
      return <div data-testid="files">{files.data ? files.data.data_dir : "…"}</div>;
    }
    render(<Viewer qc={qc}><FileList /></Viewer>); // the captures panel's file list
    await waitFor(() => expect(screen.getByTestId("files").textContent).toBe("/data"));
    expect(count("GET /api/files")).toBe(1);
    const out = await uploadCapture(qc, new File(["{}"], "up.json"));
    expect(qc.getQueryData(keys.capture("up.json"))).toEqual(out);
    expect(count("POST /api/upload")).toBe(1);
    await waitFor(() => expect(count("GET /api/files")).toBe(2));
  });
});

describe("selectors", () => {
  const options = (label: string) => [...screen.getByLabelText<HTMLSelectElement>(label).options].map((o) => [o.value, o.textContent]);

  it("offer every metric and depth level the API sends, absmax as abs-max", async () => {
    render(<Viewer qc={seeded()}><Toolbar /></Viewer>);
    await waitFor(() => expect(screen.getByLabelText<HTMLSelectElement>("metric").disabled).toBe(false));
    expect(options("metric")).toEqual(METRICS.map((m) => [m, m === "absmax" ? "abs-max" : m]));
    expect(options("depth")).toEqual(DEPTHS.map((d, i) => [String(i), d]));
    expect(screen.getByLabelText<HTMLSelectElement>("depth").value).toBe("1");
  });

  it("show exactly other lists when the API sends them; every tensor is its last depth level", async () => {
    models = { ...apiModels, metrics: ["mean", "absmax", "nonfinite"], depth_levels: ["outputs", "all"] };
    render(<Viewer qc={seeded()} init={{ metric: "mean" }}><Toolbar /><FlowPanel /></Viewer>);
    await screen.findByTestId("flow-diagram");
    expect(options("metric")).toEqual([["mean", "mean"], ["absmax", "abs-max"], ["nonfinite", "nonfinite"]]);
    expect(options("depth")).toEqual([["0", "outputs"], ["1", "all"]]);
    const full = JSON.stringify({ capture_id: "c1", trial_id: 0, step: 0, metric: "mean", depth: 1 });
    expect(calls.filter((c) => c.startsWith("POST /api/tensor-grid"))).toEqual([`POST /api/tensor-grid ${full}`]); // the flow's and the top bar's
    expect(count("GET /api/models")).toBe(1);
  });

  it("until the lists arrive, show only the current choice, disabled; a failed request is shown", async () => {
    let fail: (e: Error) => void = () => {};
    const pending = new Promise<never>((_, reject) => { fail = reject; });
    const real = globalThis.fetch;
    vi.stubGlobal("fetch", vi.fn((url: string, init?: RequestInit) => (url === "/api/models" ? pending : real(url, init))));
    render(<Viewer qc={seeded()} init={{ metric: "std", depth: 3 }}><Toolbar /></Viewer>);
    expect(options("metric")).toEqual([["std", "std"]]);
    expect(options("depth")).toEqual([["3", "3"]]);
    expect(screen.getByLabelText<HTMLSelectElement>("metric").disabled).toBe(true);
    expect(screen.getByLabelText<HTMLSelectElement>("depth").disabled).toBe(true);
    fail(new Error("the server is down"));
    const alert = (await screen.findByRole("alert")).textContent!;
    expect(alert).toContain("Could not load the metrics and depth levels");
    expect(alert).toContain("the server is down");
  });
});

describe("special layers and selection", () => {
  it("come from the API's special_layers (one set for every family); an incomplete set is none", () => {
    expect(specialLayers(apiModels)).toEqual(SPECIAL);
    expect(specialLayers({ ...apiModels, models: [], profiles: {} })).toEqual(SPECIAL);
    expect(specialLayers({ ...apiModels, special_layers: { embedding: -1 } })).toBeNull();
    expect(blockLayers(LAYERS, SPECIAL)).toEqual([0, 1]);
  });

  it("selecting a block's cell opens that block in the flow diagram; a special layer's does not", () => {
    const g = grid(4);
    expect(selectCell(g.cells[3], SPECIAL)).toEqual({ type: "select", id: 3, tensorType: "l_out", flowLayer: 1 });
    expect(selectCell(g.cells[4], SPECIAL)).toEqual({ type: "select", id: 4, tensorType: "result_norm" });
    expect(selectCell(g.cells[3], null)).toEqual({ type: "select", id: 3, tensorType: "l_out" });
  });

  it("startup opens the server's current capture, else the first valid file", () => {
    const files = { data_dir: "/d", files: [{ path: "bad.json", valid: false }, { path: "ok.json", valid: true }] } as never;
    expect(startupPath({ current: "c2", captures: [{ capture_id: "c2", path: "cur.json" }] } as never, files)).toBe("cur.json");
    expect(startupPath({ current: null, captures: [] } as never, files)).toBe("ok.json");
    expect(startupPath({ current: null, captures: [] } as never, { data_dir: "/d", files: [] } as never)).toBeNull();
  });
});
