// The load progress bar (views/LoadProgress): shown while a capture query runs and until the views'
// requests have ended, with the elapsed seconds; an upload's bar follows the bytes reported.
import { QueryClientProvider } from "@tanstack/react-query";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { LIVE_PATH, makeQueryClient } from "../src/api/queries";
import { LoadProgress, progressText, reportUpload } from "../src/views/LoadProgress";

afterEach(() => {
  cleanup();
  reportUpload(null);
});

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
