// The logit-lens panel over a stub of fetch (the HTTP seam): it draws the API's grid, hovering a
// cell asks for that cell's top-5, a click selects that layer's residual stream and that token, and
// a 404 shows the API's reason instead of the grid.
import { QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { LensCellOut, LensGridOut, LoadOut, TrialOut } from "../src/api/client";
import { keys, makeQueryClient } from "../src/api/queries";
import { LENS_LAYOUT } from "../src/data/logitLens";
import { ViewerProvider, useViewer } from "../src/state/store";
import { LogitLensPanel } from "../src/views/LogitLensPanel";

const LAYERS = [-1, 0, 1, 998, 999];
const capture = { capture_id: "c1", path: "a.json", layers: LAYERS, attention_layers: [0, 1] } as unknown as LoadOut;
const models = {
  models: ["llama"], profiles: {}, metrics: ["l2"], depth_levels: ["outputs", "everything"],
  special_layers: { embedding: -1, final_norm: 998, output: 999 },
};
const cellOf = (id: number, layer: number, type: string) => ({
  id, key: `${layer}:${type}`, name: `${type}-${layer}`, layer, layer_index: LAYERS.indexOf(layer), type, type_index: 0,
  category: "residual", depth: 0, op: "ADD", shape: [4], captured: true, value: 1, intensity: 0.5, color: "#fff",
});
const grid = {
  capture_id: "c1", trial_id: 0, step: 0, metric: "l2", depth: 1, phase: "prompt", n_tokens: 3, layers: LAYERS,
  types: ["attn_norm", "l_out"], min: 1, max: 1, cells: [cellOf(10, 0, "attn_norm"), cellOf(11, 0, "l_out"), cellOf(12, 1, "l_out")],
};
const trial = {
  capture_id: "c1", id: 0, n_prompt: 3, steps: [{ index: 0 }, { index: 1 }],
  tokens: [
    { pos: 0, id: 1, text: "<s>", prompt: true, template: true, step: 0 },
    { pos: 1, id: 5, text: "Hi", prompt: true, template: false, step: 0 },
    { pos: 2, id: 6, text: " there", prompt: true, template: false, step: 0 },
    { pos: 3, id: 9, text: "!", prompt: false, template: false, step: 1 },
  ],
} as unknown as TrialOut;
const lens: LensGridOut = {
  capture_id: "c1", trial_id: 0, layers: [0, 1], tokens: ["<s>", "Hi", " there", "!"], n_prompt: 3,
  top_ids: [[5, 6, 9, null], [null, null, 9, null]], top_texts: [["Hi", " ok", "!", null], [null, null, "!", null]],
  top_p: [[0.1, 0.5, 0.25, null], [null, null, 0.9, null]], entropy: [[3, 2, 1, null], [null, null, 0.5, null]],
  next_rank: [[0, 3, 0, null], [null, null, 0, null]], first_final_layer: [null, null, 0, null],
};
const cell = (layer: number, pos: number): LensCellOut => ({
  capture_id: "c1", trial_id: 0, layer, pos, entropy: 1,
  top: [{ id: 9, text: "!", p: 0.25 }, { id: 7, text: " you", p: 0.2 }, { id: 8, text: ".", p: 0.1 }, { id: 3, text: "a", p: 0.05 }, { id: 4, text: "b", p: 0.01 }],
  next_id: 9, next_text: "!", next_rank: 0, next_p: 0.25,
});

let calls: string[];
let lensMissing: boolean;
let longLens: LensGridOut | null;
function answer(url: string): [number, unknown] {
  const u = new URL(url, "http://viewer");
  if (u.pathname === "/api/models") return [200, models];
  if (u.pathname === "/api/colors") return [200, { scale: ["#000000", "#ffffff"], categories: {}, flows: {}, zones: {}, states: {} }];
  if (u.pathname === "/api/tensor-grid") return [200, grid];
  if (u.pathname === "/api/trials/0") return [200, trial];
  if (u.pathname === "/api/trials/0/lens") {
    if (lensMissing) return [404, { ok: false, status: 404, error: "no logit lens for trial 0: the capture kept no residual-stream vectors" }];
    const layer = u.searchParams.get("layer");
    return [200, layer === null ? (longLens ?? lens) : cell(Number(layer), Number(u.searchParams.get("token")))];
  }
  throw new Error(`unexpected request ${u.pathname}`);
}
beforeEach(() => {
  calls = [];
  lensMissing = false;
  longLens = null;
  vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => {
    calls.push(`${init?.method ?? "GET"} ${url}`);
    const [status, body] = answer(url);
    const text = JSON.stringify(body);
    return { ok: status < 400, status, text: async () => text } as Response;
  }));
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function Probe() {
  const { state } = useViewer();
  return <div data-testid="probe" data-selected={state.selected ?? ""} data-token={state.token ?? ""} data-step={state.step} />;
}
function renderPanel() {
  const qc = makeQueryClient();
  qc.setQueryData(keys.capture("a.json"), capture);
  return render(
    <QueryClientProvider client={qc}>
      <ViewerProvider init={{ capturePath: "a.json" }}><LogitLensPanel /><Probe /></ViewerProvider>
    </QueryClientProvider>,
  );
}

describe("LogitLensPanel", () => {
  it("draws the grid's top-1 texts, empty cells where there is no row, and the first-final marks", async () => {
    const { container } = renderPanel();
    await screen.findByTestId("logit-lens");
    expect(container.querySelectorAll(".logit-lens-cell")).toHaveLength(8);
    const c = container.querySelector('.logit-lens-cell[data-layer="0"][data-pos="1"]')!;
    expect(c.textContent).toBe("·ok"); // tokenLabel makes the space visible
    expect(c.getAttribute("data-text")).toBe(" ok");
    expect(container.querySelector('.logit-lens-cell[data-layer="1"][data-pos="2"]')!.textContent).toBe("!");
    const empty = container.querySelector('.logit-lens-cell[data-layer="1"][data-pos="0"]')!;
    expect(empty.textContent).toBe("");
    expect(empty.className).toContain("empty");
    const marks = [...container.querySelectorAll(".logit-lens-final-mark")].map((m) => [m.getAttribute("data-pos"), m.getAttribute("data-layer")]);
    expect(marks).toEqual([["2", "0"]]);
    expect(calls.filter((x) => x.startsWith("GET /api/trials/0/lens"))).toHaveLength(1);
  });

  it("hover shows the cell's top-5 and the next token; a click selects the layer's l_out and the token", async () => {
    const { container } = renderPanel();
    await screen.findByTestId("logit-lens");
    fireEvent.mouseOver(container.querySelector('.logit-lens-cell[data-layer="0"][data-pos="2"]')!);
    const tip = await screen.findByTestId("logit-lens-tooltip");
    await waitFor(() => expect(tip.getAttribute("data-ready")).toBe("true"));
    const top = [...tip.querySelectorAll("[data-testid=logit-lens-top] li")].map((li) => li.getAttribute("data-text"));
    expect(top).toEqual(["!", " you", ".", "a", "b"]);
    expect(screen.getByTestId("logit-lens-next").textContent).toContain("rank 1");
    expect(calls).toContain("GET /api/trials/0/lens?capture_id=c1&layer=0&token=2&k=5");
    // A cell without a row asks for nothing.
    fireEvent.mouseOver(container.querySelector('.logit-lens-cell[data-layer="1"][data-pos="0"]')!);
    expect(screen.getByTestId("logit-lens-tooltip").textContent).toContain("No lens row");
    expect(calls.filter((x) => x.includes("layer=1&token=0"))).toHaveLength(0);
    const probe = screen.getByTestId("probe");
    // Clicked again until the full grid and the trial (which the selection reads) have answered.
    await waitFor(() => {
      fireEvent.click(container.querySelector('.logit-lens-cell[data-layer="1"][data-pos="3"]')!);
      expect(probe.getAttribute("data-selected")).toBe("12");
    });
    expect(probe.getAttribute("data-token")).toBe("3");
    expect(probe.getAttribute("data-step")).toBe("1");
    expect(screen.getByTestId("logit-lens-selected-layer").getAttribute("data-layer")).toBe("1");
    expect(screen.getByTestId("logit-lens-selected-token").getAttribute("data-pos")).toBe("3");
  });

  it("a long trial's grid is one canvas: no element per cell, hover and click find the cell under the pointer", async () => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = (() => null) as typeof getContext; // jsdom draws nothing
    try {
      const n = 400; // more columns than the element grid takes (COLS_CANVAS)
      const row = (f: (pos: number) => unknown) => Array.from({ length: n }, (_, pos) => f(pos));
      longLens = {
        ...lens, tokens: row((p) => `t${p}`) as string[], n_prompt: 3,
        top_ids: [row((p) => p), row((p) => p + 1)] as number[][], top_texts: [row((p) => `a${p}`), row((p) => `b${p}`)] as string[][],
        top_p: [row(() => 0.5), row(() => 0.75)] as number[][], entropy: [row(() => 1), row(() => 1)] as number[][],
        next_rank: [row(() => 0), row(() => 0)] as number[][], first_final_layer: row(() => null) as null[],
      };
      const { container } = renderPanel();
      const panel = await screen.findByTestId("logit-lens");
      expect(panel.getAttribute("data-render")).toBe("canvas");
      expect(container.querySelectorAll(".logit-lens-cell")).toHaveLength(0);
      const canvas = container.querySelector("canvas.logit-lens-canvas")!;
      const at = (type: string, pos: number, r: number) => {
        const e = new MouseEvent(type, { bubbles: true });
        Object.defineProperty(e, "offsetX", { value: LENS_LAYOUT.labelW + pos * LENS_LAYOUT.cellW + 5 });
        Object.defineProperty(e, "offsetY", { value: LENS_LAYOUT.headH + r * LENS_LAYOUT.cellH + 5 });
        act(() => { canvas.dispatchEvent(e); });
      };
      at("mousemove", 7, 1);
      expect(panel.getAttribute("data-hover-layer")).toBe("1");
      expect(panel.getAttribute("data-hover-pos")).toBe("7");
      expect(panel.getAttribute("data-hover-text")).toBe("b7");
      expect(panel.getAttribute("data-hover-p")).toBe("0.75");
      const tip = await screen.findByTestId("logit-lens-tooltip");
      await waitFor(() => expect(tip.getAttribute("data-ready")).toBe("true"));
      expect(calls).toContain("GET /api/trials/0/lens?capture_id=c1&layer=1&token=7&k=5");
      const probe = screen.getByTestId("probe");
      await waitFor(() => {
        at("click", 2, 1);
        expect(probe.getAttribute("data-selected")).toBe("12");
      });
      expect(probe.getAttribute("data-token")).toBe("2");
    } finally {
      HTMLCanvasElement.prototype.getContext = getContext;
    }
  });

  it("a 404 shows the API's reason instead of the grid", async () => {
    lensMissing = true;
    renderPanel();
    const msg = await screen.findByTestId("logit-lens-unavailable");
    expect(msg.textContent).toContain("the capture kept no residual-stream vectors");
    expect(screen.queryByTestId("logit-lens")).toBeNull();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
