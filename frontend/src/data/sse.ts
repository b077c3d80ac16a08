/** A Server-Sent Events parser (the text/event-stream format of the HTML standard), pure and
 * incremental: feed it the decoded text as it arrives, in chunks cut anywhere (inside a line, between
 * "\r" and "\n"), and it returns the events completed so far. The viewer reads a run's events with
 * fetch() and a stream reader, not EventSource, because EventSource cannot send the token header.
 *
 * Rules kept from the standard: lines end with "\r\n", "\n" or "\r"; a blank line dispatches the
 * event; "data" lines are joined with "\n"; a line starting with ":" is a comment (keep-alive); a
 * field without ":" has an empty value; one space after ":" is dropped; an event without data is not
 * dispatched; the last event id carries over to the following events; an id containing NUL is
 * ignored; "retry" must be digits; a byte-order mark at the start is skipped; unknown fields are
 * ignored; an unfinished event at the end of the stream is dropped. */

export interface SseEvent {
  /** The last event id seen (this event's, or an earlier one's); null before any. */
  id: string | null;
  /** The event type; "message" when the event did not name one. */
  event: string;
  data: string;
}

export interface SseState {
  rest: string; // text after the last complete line
  data: string[] | null; // data lines of the event being read
  event: string;
  lastId: string | null;
  retry: number | null; // the reconnection time the server asked for, in ms
  started: boolean; // the first chunk was seen (its BOM skipped)
}

export const initialSse: SseState = { rest: "", data: null, event: "", lastId: null, retry: null, started: false };

/** The events completed by `chunk`, and the parser's next state. */
export function feedSse(state: SseState, chunk: string): { state: SseState; events: SseEvent[] } {
  let text = state.rest + chunk;
  if (!state.started && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const s: SseState = { ...state, started: state.started || text.length > 0 };
  const events: SseEvent[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\n" && c !== "\r") continue;
    if (c === "\r" && i === text.length - 1) break; // maybe "\r\n" cut in two: wait for the next chunk
    line(s, text.slice(start, i), events);
    if (c === "\r" && text[i + 1] === "\n") i++;
    start = i + 1;
  }
  s.rest = text.slice(start);
  return { state: s, events };
}

/** The end of the stream: a pending "\r" still ends its line; an unfinished event is dropped. */
export function endSse(state: SseState): SseEvent[] {
  if (!state.rest.endsWith("\r")) return [];
  const events: SseEvent[] = [];
  line({ ...state }, state.rest.slice(0, -1), events);
  return events;
}

/** Parse a whole stream at once (tests, and replies read in one piece). */
export function parseSse(text: string): SseEvent[] {
  const { state, events } = feedSse(initialSse, text);
  return [...events, ...endSse(state)];
}

function line(s: SseState, text: string, out: SseEvent[]): void {
  if (text === "") {
    if (s.data !== null) out.push({ id: s.lastId, event: s.event || "message", data: s.data.join("\n") });
    s.data = null;
    s.event = "";
    return;
  }
  if (text.startsWith(":")) return;
  const colon = text.indexOf(":");
  const field = colon < 0 ? text : text.slice(0, colon);
  let value = colon < 0 ? "" : text.slice(colon + 1);
  if (value.startsWith(" ")) value = value.slice(1);
  if (field === "data") s.data = [...(s.data ?? []), value];
  else if (field === "event") s.event = value;
  else if (field === "id" && !value.includes("\0")) s.lastId = value;
  else if (field === "retry" && /^\d+$/.test(value)) s.retry = Number(value);
}
