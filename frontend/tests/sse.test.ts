// The SSE parser (data/sse.ts): the HTML standard's event-stream rules, and the same events whatever
// the chunking (every cut point of a stream, including between "\r" and "\n").
import { describe, expect, it } from "vitest";
import { endSse, feedSse, initialSse, parseSse, type SseEvent } from "../src/data/sse";

/** Feed `text` cut at the given offsets; every event, and the final state's retry. */
function chunked(text: string, cuts: number[]): SseEvent[] {
  let state = initialSse;
  const out: SseEvent[] = [];
  let at = 0;
  for (const c of [...cuts, text.length]) {
    const r = feedSse(state, text.slice(at, c));
    state = r.state;
    out.push(...r.events);
    at = c;
  }
  return [...out, ...endSse(state)];
}

/** A deterministic pseudo-random generator (tests must not depend on Math.random). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe("parseSse", () => {
  it("reads ids, types, multi-line data and comments", () => {
    const text = ": keep-alive\n\nid: 1\nevent: state\ndata: {\"a\":1}\n\nid: 2\nevent: step\ndata: line one\ndata: line two\n\n";
    expect(parseSse(text)).toEqual([
      { id: "1", event: "state", data: '{"a":1}' },
      { id: "2", event: "step", data: "line one\nline two" },
    ]);
  });

  it("defaults the type to message, keeps the last id, ignores an id with NUL and unknown fields", () => {
    const text = "id: 7\ndata: a\n\ndata: b\n\nid: 8\u0000\nfoo: bar\ndata: c\n\n";
    expect(parseSse(text)).toEqual([
      { id: "7", event: "message", data: "a" },
      { id: "7", event: "message", data: "b" },
      { id: "7", event: "message", data: "c" },
    ]);
  });

  it("accepts \\r\\n and \\r line ends, a field without a colon, no space after the colon, and a leading BOM", () => {
    const text = "\ufeffid:3\r\nevent:done\r\ndata\r\n\r\nid: 4\rdata:  two spaces\r\r";
    expect(parseSse(text)).toEqual([
      { id: "3", event: "done", data: "" },
      { id: "4", event: "message", data: " two spaces" },
    ]);
  });

  it("dispatches nothing for an event without data, and drops an unfinished event at the end", () => {
    expect(parseSse("event: state\nid: 1\n\n")).toEqual([]);
    expect(parseSse("id: 1\ndata: complete\n\nid: 2\ndata: cut")).toEqual([{ id: "1", event: "message", data: "complete" }]);
    // The id of the event without data still counts, as in the standard.
    expect(parseSse("id: 5\n\ndata: x\n\n")).toEqual([{ id: "5", event: "message", data: "x" }]);
  });

  it("reads retry only when it is digits", () => {
    expect(feedSse(initialSse, "retry: 1500\n\n").state.retry).toBe(1500);
    expect(feedSse(initialSse, "retry: 1.5s\n\n").state.retry).toBeNull();
  });
});

describe("feedSse in chunks", () => {
  const text = "\ufeff: hello\r\nid: 1\r\nevent: state\r\ndata: {\"x\": \"é✓\"}\r\n\r\nid: 2\revent: step\rdata: a\rdata: b\r\rid: 3\nevent: done\ndata: {}\n\n";

  it("gives the same events at every single cut point", () => {
    const whole = parseSse(text);
    expect(whole.map((e) => e.id)).toEqual(["1", "2", "3"]);
    for (let i = 0; i <= text.length; i++) expect(chunked(text, [i]), `cut at ${i}`).toEqual(whole);
  });

  it("gives the same events one character at a time and at random cuts", () => {
    const whole = parseSse(text);
    expect(chunked(text, Array.from({ length: text.length }, (_, i) => i))).toEqual(whole);
    const r = rng(42);
    for (let n = 0; n < 200; n++) {
      const cuts = Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * text.length)).sort((a, b) => a - b);
      expect(chunked(text, cuts)).toEqual(whole);
    }
  });

  it("round-trips random events written with random line ends", () => {
    const r = rng(7);
    const ends = ["\n", "\r", "\r\n"];
    const events: SseEvent[] = [];
    let text = "";
    for (let i = 1; i <= 60; i++) {
      const nl = ends[Math.floor(r() * 3)];
      const lines = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, k) => `v${i}.${k}:${"x".repeat(Math.floor(r() * 5))}`);
      const type = ["state", "step", "dropped"][Math.floor(r() * 3)];
      events.push({ id: String(i), event: type, data: lines.join("\n") });
      text += `id: ${i}${nl}event: ${type}${nl}${lines.map((l) => `data: ${l}${nl}`).join("")}${nl}`;
      if (r() < 0.3) text += `: ping${nl}`;
    }
    const cuts = Array.from({ length: 40 }, () => Math.floor(r() * text.length)).sort((a, b) => a - b);
    expect(chunked(text, cuts)).toEqual(events);
  });
});
