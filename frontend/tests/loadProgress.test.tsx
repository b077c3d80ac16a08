// The load progress bar (views/LoadProgress): shown while a capture query runs and until the views'
// requests have ended, with the elapsed seconds; an upload's bar follows the bytes reported; an
// index build the server reports (GET /api/loading) makes the bar determinate.
import { QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LIVE_PATH, LOADING_POLL_MS, makeQueryClient } from "../src/api/queries";
import { LoadProgress, percent, progressText, reportUpload, serverLoading, shownBuild } from "../src/views/LoadProgress";

afterEach(() => {
  cleanup();
  reportUpload(null);
  vi.unstubAllGlobals();
});

const build = (done: number, total: number, name = "long.json") => ({ path: `runs/${name}`, name, done, total });

describe("progressText", () => {
  it("says the phase and the seconds; an upload's fraction is its bytes sent", () => {
    expect(progressText("load", 3.2, null)).toEqual({ text: "Loading the capture · 3 s", fraction: null });
    expect(progressText("views", 0, null).fraction).toBeNull();
    const up = progressText("upload", 1, { name: "a.json", sent: 3 * 2 ** 20, total: 12 * 2 ** 20 });
    expect(up.fraction).toBe(0.25);
    expect(up.text).toContain("25% of 12.0 MiB");
    // All sent: the server is still saving and loading it, which it does not measure.
    expect(progressText("upload", 1, { name: "a.json", sent: 5, total: 5 }).fraction).toBeNull();
  });
});

describe("an index build", () => {
  it("makes the bar determinate while the server loads: the steps read of the capture's", () => {
    const b = build(1791, 3980);
    const out = progressText("load", 12.4, null, b);
    expect(out.fraction).toBeCloseTo(1791 / 3980, 12);
    expect(out.text).toBe(`Building the index of long.json: ${Math.floor((100 * 1791) / 3980)}% of 3980 steps · 12 s`);
    expect(out.text).toContain(": 45% of");
    // An upload whose bytes are all sent is the server loading it; one still sending is not.
    expect(progressText("upload", 1, { name: "a.json", sent: 5, total: 5 }, b).fraction).toBeCloseTo(1791 / 3980, 12);
    expect(progressText("upload", 1, { name: "a.json", sent: 2, total: 5 }, b)).toEqual(progressText("upload", 1, { name: "a.json", sent: 2, total: 5 }));
    // The views phase: the load has answered, a build reported late is not shown.
    expect(progressText("views", 1, null, b)).toEqual(progressText("views", 1, null));
  });

  it("says 100% only once every step is read", () => {
    expect(percent(3979 / 3980)).toBe(99);
    expect(percent(1)).toBe(100);
    expect(progressText("load", 0, null, build(3980, 3980)).text).toContain(": 100% of 3980 steps");
    expect(progressText("load", 0, null, build(0, 3980)).text).toContain(": 0% of");
  });

  it("shows the first build with steps; none when the server reports none", () => {
    expect(shownBuild(null)).toBeNull();
    expect(shownBuild([])).toBeNull();
    expect(shownBuild([build(0, 0, "empty.json"), build(3, 9, "b.json"), build(1, 2, "c.json")])?.name).toBe("b.json");
    expect(serverLoading("load", null)).toBe(true);
    expect(serverLoading("views", null)).toBe(false);
    expect(serverLoading("upload", { name: "a", sent: 0, total: 0 })).toBe(false);
  });
});

describe("LoadProgress", () => {
  it("appears while a capture loads, then while the views fetch, and goes when all have answered", async () => {
    const qc = makeQueryClient();
    render(<QueryClientProvider client={qc}><LoadProgress /></QueryClientProvider>);
    expect(screen.queryByTestId("load-progress")).toBeNull();
    let finishLoad!: () => void, finishView!: () => void;
    let view: Promise<unknown> = Promise.resolve();
    const load = qc.fetchQuery({ queryKey: ["capture", "a.json"], queryFn: () => new Promise<number>((r) => { finishLoad = () => r(1); }) });
    await waitFor(() => expect(screen.getByTestId("load-progress").getAttribute("data-phase")).toBe("load"));
    await act(async () => {
      view = qc.fetchQuery({ queryKey: ["grid"], queryFn: () => new Promise<number>((r) => { finishView = () => r(2); }) });
      finishLoad();
      await load;
    });
    await waitFor(() => expect(screen.getByTestId("load-progress").getAttribute("data-phase")).toBe("views"));
    await act(async () => {
      finishView();
      await view;
    });
    await waitFor(() => expect(screen.queryByTestId("load-progress")).toBeNull());
  });

  it("a running run's capture read again is not a load", async () => {
    const qc = makeQueryClient();
    render(<QueryClientProvider client={qc}><LoadProgress /></QueryClientProvider>);
    let finish!: () => void;
    const live = qc.fetchQuery({ queryKey: ["capture", `${LIVE_PATH}r1`], queryFn: () => new Promise<number>((r) => { finish = () => r(1); }) });
    await new Promise((r) => setTimeout(r, 100));
    expect(qc.isFetching({ queryKey: ["capture"] })).toBe(1);
    expect(screen.queryByTestId("load-progress")).toBeNull();
    await act(async () => {
      finish();
      await live;
    });
  });

  it("asks GET /api/loading while a capture loads, and draws the build it reports; not after", async () => {
    const asked: number[] = [];
    let answer = { loading: [build(40, 160)] };
    vi.stubGlobal("fetch", async (url: string) => {
      expect(url).toBe("/api/loading");
      asked.push(Date.now());
      return new Response(JSON.stringify(answer), { status: 200 });
    });
    const qc = makeQueryClient();
    render(<QueryClientProvider client={qc}><LoadProgress /></QueryClientProvider>);
    let finishLoad!: () => void;
    const load = qc.fetchQuery({ queryKey: ["capture", "runs/long.json"], queryFn: () => new Promise<number>((r) => { finishLoad = () => r(1); }) });
    await waitFor(() => expect(screen.getByTestId("load-progress").getAttribute("data-building")).toBe("runs/long.json"), { timeout: 3000 });
    const bar = screen.getByTestId("load-progress");
    expect(bar.getAttribute("aria-valuenow")).toBe("25");
    expect(bar.textContent).toContain("Building the index of long.json: 25% of 160 steps");
    answer = { loading: [build(120, 160)] };
    await waitFor(() => expect(screen.getByTestId("load-progress").getAttribute("aria-valuenow")).toBe("75"), { timeout: 3000 });
    expect(asked.length).toBeGreaterThanOrEqual(2);
    await act(async () => {
      finishLoad();
      await load;
    });
    await waitFor(() => expect(screen.queryByTestId("load-progress")).toBeNull());
    const after = asked.length;
    await new Promise((r) => setTimeout(r, 2.5 * LOADING_POLL_MS));
    expect(asked.length).toBe(after); // no load in flight: not asked
  });

  it("a quick load asks nothing, and an answer with no build leaves the bar indeterminate", async () => {
    let asked = 0;
    vi.stubGlobal("fetch", async () => { asked += 1; return new Response(JSON.stringify({ loading: [] }), { status: 200 }); });
    const qc = makeQueryClient();
    render(<QueryClientProvider client={qc}><LoadProgress /></QueryClientProvider>);
    await act(async () => { await qc.fetchQuery({ queryKey: ["capture", "quick.json"], queryFn: async () => 1 }); });
    expect(asked).toBe(0);
    let finish!: () => void;
    const slow = qc.fetchQuery({ queryKey: ["capture", "slow.json"], queryFn: () => new Promise<number>((r) => { finish = () => r(1); }) });
    await waitFor(() => expect(asked).toBeGreaterThan(0), { timeout: 3000 });
    const bar = screen.getByTestId("load-progress");
    expect(bar.getAttribute("data-building")).toBeNull();
    expect(bar.getAttribute("aria-valuenow")).toBeNull();
    expect(bar.textContent).toContain("Loading the capture");
    await act(async () => {
      finish();
      await slow;
    });
  });

  it("an upload's bar is determinate from the bytes reported", async () => {
    render(<QueryClientProvider client={makeQueryClient()}><LoadProgress /></QueryClientProvider>);
    act(() => reportUpload({ name: "big.json", sent: 50, total: 200 }));
    const bar = await screen.findByTestId("load-progress");
    expect(bar.getAttribute("data-phase")).toBe("upload");
    expect(bar.getAttribute("aria-valuenow")).toBe("25");
    act(() => reportUpload(null));
    await waitFor(() => expect(screen.queryByTestId("load-progress")).toBeNull());
  });
});
