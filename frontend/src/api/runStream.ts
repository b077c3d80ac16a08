/** Reading a run's events (GET /api/runs/{id}/events, Server-Sent Events) with fetch() and a stream
 * reader: EventSource cannot send the X-Spectra-Token header. A dropped connection is opened again
 * with ?after=<the last event id>, so the server replays only what was missed (the reducer of
 * data/live.ts ignores any overlap); the stream is over after the "done" event. A refusal (4xx)
 * is final: it is reported, not retried. */
import { decodeRunEvent, type RunEvent } from "../data/live";
import { endSse, feedSse, initialSse, type SseEvent } from "../data/sse";
import { tokenHeaders } from "./client";

export type StreamStatus =
  | { kind: "connecting"; attempt: number }
  | { kind: "open" }
  | { kind: "retrying"; attempt: number; reason: string }
  | { kind: "ended" } // "done" arrived
  | { kind: "failed"; status: number; reason: string }; // refused or gave up

export interface WatchOptions {
  token: string | null;
  after: number | null; // the last event already applied (null: from the start)
  signal: AbortSignal;
  onEvent: (seq: number | null, event: RunEvent) => void;
  onStatus: (s: StreamStatus) => void;
  maxAttempts?: number; // reconnections in a row without an event before giving up
}

export const eventsUrl = (id: string, after: number | null) =>
  `/api/runs/${encodeURIComponent(id)}/events${after === null ? "" : `?after=${after}`}`;

/** Backoff before reconnection n (1-based): 0.5 s, 1 s, 2 s, then 4 s. */
export const retryDelay = (attempt: number) => Math.min(500 * 2 ** (attempt - 1), 4000);

/** Follow a run's events until "done", a refusal, too many failed reconnections or the signal. */
export async function watchRun(id: string, o: WatchOptions): Promise<void> {
  let after = o.after;
  const maxAttempts = o.maxAttempts ?? 20;
  for (let attempt = 0; !o.signal.aborted; ) {
    o.onStatus({ kind: "connecting", attempt });
    let reason: string;
    try {
      const resp = await fetch(eventsUrl(id, after), { headers: { Accept: "text/event-stream", ...tokenHeaders(o.token) }, signal: o.signal });
      if (!resp.ok || !resp.body) {
        const why = await refusal(resp);
        if (resp.status >= 400 && resp.status < 500) return o.onStatus({ kind: "failed", status: resp.status, reason: why });
        reason = why;
      } else {
        o.onStatus({ kind: "open" });
        const r = await readEvents(resp.body, (e) => {
          const d = decodeRunEvent(e);
          if (!d) return;
          if (d.seq !== null) after = d.seq;
          attempt = 0; // an event arrived: the connection works
          o.onEvent(d.seq, d.event);
        });
        if (r.done) return o.onStatus({ kind: "ended" });
        reason = "the connection closed before the run ended";
      }
    } catch (e) {
      if (o.signal.aborted) return;
      reason = (e as Error).message;
    }
    attempt++;
    if (attempt > maxAttempts) return o.onStatus({ kind: "failed", status: 0, reason: `gave up after ${maxAttempts} reconnections: ${reason}` });
    o.onStatus({ kind: "retrying", attempt, reason });
    await sleep(retryDelay(attempt), o.signal);
  }
}

/** Feed a response body through the SSE parser; done: a "done" event arrived. */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (e: SseEvent) => void): Promise<{ done: boolean }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let state = initialSse;
  let done = false;
  const take = (events: SseEvent[]) => {
    for (const e of events) {
      onEvent(e);
      if (e.event === "done") done = true;
    }
  };
  try {
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      const r = feedSse(state, decoder.decode(value, { stream: true }));
      state = r.state;
      take(r.events);
      if (done) break;
    }
    if (!done) {
      const r = feedSse(state, decoder.decode());
      take([...r.events, ...endSse(r.state)]);
    }
  } finally {
    void reader.cancel().catch(() => {}); // after "done", or an error: this connection is finished
  }
  return { done };
}

async function refusal(resp: Response): Promise<string> {
  const text = await resp.text().catch(() => "");
  try {
    return (JSON.parse(text) as { error?: string }).error ?? `HTTP ${resp.status}`;
  } catch {
    return `HTTP ${resp.status}${resp.body ? "" : " without a body"}`;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(res, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); res(); }, { once: true });
  });
}
