// The run events reader (api/runStream.ts) over a stub of fetch, the HTTP seam: the events arrive in
// chunks cut anywhere; a connection that closes before "done" is opened again with ?after=<the last
// event id> and the run goes on where it was; a refusal is reported once, not retried.
import { afterEach, describe, expect, it, vi } from "vitest";
import { eventsUrl, retryDelay, watchRun, type StreamStatus } from "../src/api/runStream";
import type { RunEvent } from "../src/data/live";

const enc = new TextEncoder();
const sse = (seq: number, type: string, data: unknown) => `id: ${seq}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

/** A streaming response whose body is `text` in chunks of `size` bytes (cut inside lines and characters). */
function streamed(text: string, size: number): Response {
  const bytes = enc.encode(text);
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (at >= bytes.length) return ctl.close();
      ctl.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
}

const steps = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, k) => sse(from + k, "step", { trial: 0, index: from + k, token: "é✓" })).join("");

afterEach(() => vi.unstubAllGlobals());

describe("watchRun", () => {
  it("reconnects with ?after=<last id> when the connection drops, and stops after done", async () => {
    const urls: string[] = [];
    const headers: (string | null)[] = [];
    const replies = [
      // Closes after event 3, in the middle of event 4 (an unfinished event is dropped).
      () => streamed(steps(1, 3) + "id: 4\nevent: step\ndata: {\"tri", 5),
      () => streamed(steps(4, 6) + sse(7, "done", { id: "r1", state: "done", file: "x.json" }), 7),
    ];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit) => {
      urls.push(url);
      headers.push(new Headers(init.headers).get("X-Spectra-Token"));
      return replies[urls.length - 1]();
    }));
    const got: [number | null, RunEvent][] = [];
    const statuses: StreamStatus["kind"][] = [];
    await watchRun("r1", {
      token: "secret", after: null, signal: new AbortController().signal,
      onEvent: (seq, e) => got.push([seq, e]), onStatus: (s) => statuses.push(s.kind),
    });
    expect(urls).toEqual([eventsUrl("r1", null), "/api/runs/r1/events?after=3"]);
    expect(headers).toEqual(["secret", "secret"]);
    expect(got.map(([seq]) => seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(got.slice(0, 6).map(([, e]) => (e.data as { token: string }).token)).toEqual(Array(6).fill("é✓"));
    expect(got[6][1]).toEqual({ type: "done", data: { id: "r1", state: "done", file: "x.json" } });
    expect(statuses).toEqual(["connecting", "open", "retrying", "connecting", "open", "ended"]);
  });

  it("reports a refusal with the server's reason and does not retry it", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ ok: false, status: 403, error: "runs need a token" }), { status: 403 }));
    vi.stubGlobal("fetch", fetch);
    const statuses: StreamStatus[] = [];
    await watchRun("r1", { token: null, after: 5, signal: new AbortController().signal, onEvent: () => {}, onStatus: (s) => statuses.push(s) });
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(fetch.mock.calls[0]).toEqual(["/api/runs/r1/events?after=5", expect.anything()]);
    expect(statuses.at(-1)).toEqual({ kind: "failed", status: 403, reason: "runs need a token" });
  });

  it("gives up after the allowed reconnections in a row when the server is unreachable", async () => {
    const fetch = vi.fn(async () => { throw new TypeError("Failed to fetch"); });
    vi.stubGlobal("fetch", fetch);
    const statuses: StreamStatus[] = [];
    await watchRun("r1", { token: null, after: null, signal: new AbortController().signal, onEvent: () => {}, onStatus: (s) => statuses.push(s), maxAttempts: 1 });
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(statuses.at(-1)).toEqual({ kind: "failed", status: 0, reason: "gave up after 1 reconnections: Failed to fetch" });
  });

  it("backs off 0.5 s, 1 s, 2 s, then 4 s at most", () => {
    expect([1, 2, 3, 4, 5, 9].map(retryDelay)).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
  });
});
