import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { GridCell, HeatmapOut, StepOut, TrialOut } from "../src/api/client";
import { EmptyState } from "../src/views/CapturesPanel";
import { HeatMap } from "../src/views/HeatMap";
import { InfoPanel } from "../src/views/InfoPanel";
import { TensorDetail, rowAt } from "../src/views/TensorDetail";
import { TokenTimeline } from "../src/views/TokenTimeline";

afterEach(cleanup);
const scale = ["#0d0887", "#7e03a8", "#cc4778", "#f89540", "#f0f921"];

const heat: HeatmapOut = {
  capture_id: "c1", trial_id: 0, metric: "l2", axis: "types", step: 0, type: null, rows: [0, 1],
  cols: [{ index: 0, label: "attn_out", type: "attn_out", category: "attention" }, { index: 1, label: "l_out", type: "l_out", category: "residual" }],
  values: [[1.5, null], [2.25, 4]], min: 1.5, max: 4,
};

describe("HeatMap", () => {
  it("draws one cell per value with its number, hover shows it, click reports the cell", () => {
    const onCell = vi.fn();
    const { container } = render(<HeatMap data={heat} scale={scale} onCell={onCell} testId="hm" />);
    const cells = container.querySelectorAll("rect.heat-cell");
    expect(cells).toHaveLength(4);
    const c = container.querySelector('rect[data-row="1"][data-col="attn_out"]')!;
    expect(c.getAttribute("data-value")).toBe("2.25");
    expect(container.querySelector('rect[data-row="0"][data-col="l_out"]')!.getAttribute("data-value")).toBe("null");
    fireEvent.mouseEnter(c);
    expect(screen.getByTestId("hm-readout").textContent).toContain("l2 = 2.25");
    fireEvent.click(c);
    expect(onCell).toHaveBeenCalledWith(1, 0);
    expect(screen.getByTestId("scale-legend").textContent).toContain("1.5");
  });
});

describe("HeatMap scales", () => {
  const wide: HeatmapOut = { ...heat, values: [[4, 30], [200, 29000]], min: 4, max: 29000 };
  const cells = (c: HTMLElement) => [...c.querySelectorAll("rect.heat-cell")].map((r) => [r.getAttribute("data-value"), r.getAttribute("fill")]);
  it("log and rank recolour the cells; data-value, hover and legend ends stay real values", () => {
    const lin = cells(render(<HeatMap data={wide} scale={scale} onCell={() => {}} testId="lin" />).container);
    cleanup();
    for (const kind of ["log", "rank"] as const) {
      const { container } = render(<HeatMap data={wide} scale={scale} scaleKind={kind} onCell={() => {}} testId="hm" />);
      const got = cells(container);
      expect(got.map((c) => c[0])).toEqual(["4", "30", "200", "29000"]);
      expect(got[0][1]).toBe(lin[0][1]); // min and max keep their colours
      expect(got[3][1]).toBe(lin[3][1]);
      expect(got[1][1]).not.toBe(lin[1][1]);
      expect(got[2][1]).not.toBe(lin[2][1]);
      fireEvent.mouseEnter(container.querySelector('rect[data-value="200"]')!);
      expect(screen.getByTestId("hm-readout").textContent).toContain("l2 = 200");
      const legend = screen.getByTestId("scale-legend");
      expect(legend.querySelector("[data-tick=min]")!.textContent).toBe("4");
      expect(legend.querySelector("[data-tick=max]")!.textContent).toBe("29000");
      expect(legend.textContent).toContain(kind);
      cleanup();
    }
  });
});

describe("EmptyState and InfoPanel", () => {
  it("shows the capture command", () => {
    render(<EmptyState dataDir="/data" />);
    expect(screen.getByText("python capture_tensors.py")).toBeTruthy();
    expect(screen.getByText("/data")).toBeTruthy();
  });
  it("explains a derived type through its base", () => {
    render(<InfoPanel type="kq_soft_max" metric="l2" />);
    expect(screen.getByTestId("info-current").textContent).toContain("Attention weights");
  });
});

const trial = {
  capture_id: "c1", id: 0, prompt: "Hi", chat: false, prompt_text: "Hi", response: "!", n_prompt: 2, interrupted: false,
  errors: [], timings: {},
  tokens: [
    { pos: 0, id: 1, text: "<s>", prompt: true, template: true, step: 0 },
    { pos: 1, id: 5, text: "Hi", prompt: true, template: false, step: 0 },
    { pos: 2, id: 9, text: "!", prompt: false, template: false, step: 1 },
  ],
  steps: [
    { index: 0, phase: "prefill", pos: 0, n_tokens: 2, positions: [0, 1], token_texts: ["<s>", "Hi"], ms: 1, n_stats: 1, n_attention: 0, next_token: null },
    { index: 1, phase: "decode", pos: 2, n_tokens: 1, positions: [2], token_texts: ["!"], ms: 1, n_stats: 1, n_attention: 0, next_token: null },
  ],
} as TrialOut;

describe("TokenTimeline", () => {
  it("choosing a token reports its step", () => {
    const onToken = vi.fn();
    const { container } = render(<TokenTimeline trial={trial} step={0} token={null} onStep={() => {}} onToken={onToken} />);
    fireEvent.click(container.querySelector('.token[data-pos="2"]')!);
    expect(onToken).toHaveBeenCalledWith(2, 1);
    expect(container.querySelectorAll(".token.active")).toHaveLength(2);
  });
  it("greys the template's tokens, not the user's or the generated ones", () => {
    const { container } = render(<TokenTimeline trial={trial} step={0} token={null} onStep={() => {}} onToken={() => {}} />);
    const greyed = [...container.querySelectorAll(".token.template")].map((e) => Number(e.getAttribute("data-pos")));
    expect(greyed).toEqual(trial.tokens.filter((t) => t.template).map((t) => t.pos));
    expect(container.querySelector('.token[data-pos="1"]')!.className).not.toContain("template");
  });
});

describe("TensorDetail", () => {
  const mk = (index: number, stats: number[], rows: number[][] | null): StepOut => ({
    capture_id: "c1", trial_id: 0, index, phase: index ? "decode" : "prefill", pos: index ? 2 : 0, n_tokens: index ? 1 : 2,
    positions: index ? [2] : [0, 1], token_ids: [], token_texts: [], ms: 1,
    stat_names: ["l2", "mean"], tensors: [{ id: 7, name: "l_out-0", layer: 0, type: "l_out", category: "residual", stats, rows }],
    attention: [], logits: null,
  });
  const steps = [mk(0, [3, 0.1], [[1, 0.2], [2, 0.3]]), mk(1, [5, 0.4], null)];
  const cell = { id: 7, name: "l_out-0", layer: 0, type: "l_out", category: "residual", op: "ADD", shape: [2, 64], captured: true } as GridCell;

  it("charts every step and shows the chosen token's row", () => {
    const { container } = render(<TensorDetail cell={cell} trial={trial} steps={steps} step={0} token={1} metric="l2" onStep={() => {}} />);
    const pts = container.querySelectorAll(".chart-point");
    expect([...pts].map((p) => p.getAttribute("data-value"))).toEqual(["3", "5"]);
    expect(screen.getByTestId("stat-step-l2").textContent).toBe("3");
    expect(screen.getByTestId("stat-token-l2").textContent).toBe("2");
    expect(rowAt(steps[1], 7, 2)).toEqual([5, 0.4]);
    expect(rowAt(steps[0], 7, 5)).toBeNull();
  });
});
