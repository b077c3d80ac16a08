"""Live stage: one run's events, numbered, kept as its backlog, and read by subscribers.

An ``EventLog`` is append-only: each event gets the run's next sequence number and is encoded once,
as a Server-Sent-Events frame (``id: N / event: type / data: json``). The log is the backlog: a
subscriber that joins late or reconnects reads from any sequence number, then follows live.

Per subscriber the publisher does one thing only, and only for subscribers that exist: a wake-up
call when the subscriber is not already awake (no copy, no queue put). What a subscriber has not
read yet is bounded: past ``limit`` live events behind, the oldest step events are dropped (never
the trial, state and done events) and a ``dropped`` event says how many. So a slow client never
holds the run back, and a run with no subscriber does no per-subscriber work at all.

Transport-free: no asyncio, no web package; the server turns a ``Subscriber`` into a response.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_LIMIT = 256  # live events a subscriber may be behind before step events are dropped
DROPPABLE = "step"  # the one event type dropped for a slow subscriber


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    frame: bytes  # the whole SSE frame


def sse_frame(seq: int, kind: str, data: Any) -> bytes:
    """One Server-Sent-Events frame; NaN and infinities become null (orjson)."""
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), body)


class EventLog:
    """The numbered events of one run (ids from 1) and its subscribers."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._events: list[Event] = []
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self.closed = False  # the final event is in

    @property
    def last_seq(self) -> int:
        return len(self._events)

    def publish(self, kind: str, data: Any, final: bool = False) -> int:
        """Append an event; wake the subscribers that sleep. ``final``: the last event of the run."""
        with self._lock:
            if self.closed:
                return len(self._events)
            seq = len(self._events) + 1
            self._events.append(Event(seq, kind, sse_frame(seq, kind, data)))
            self.closed = final
            sleeping = [s for s in self._subs if not s.awake]
            for s in sleeping:
                s.awake = True
        for s in sleeping:
            s.wake()
        return seq

    def subscribe(self, after: int = 0, wake: Callable[[], None] = lambda: None) -> Subscriber:
        """A reader of every event with a sequence number above ``after`` (the backlog first), then
        of live events; ``wake()`` is called (from the publishing thread) when new events arrive."""
        with self._lock:
            sub = Subscriber(self, max(0, after), len(self._events), wake)
            self._subs.append(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)


class Subscriber:
    """One reader of a log: ``take()`` returns what is ready as bytes of SSE frames."""

    def __init__(self, log: EventLog, cursor: int, replay_end: int, wake: Callable[[], None]) -> None:
        self.log = log
        self.cursor = cursor  # the last sequence number handed out
        self.replay_end = replay_end  # events up to here were the backlog when it joined: never dropped
        self.wake = wake
        self.awake = True  # it has not read yet: the first take() looks anyway
        self.dropped = 0  # step events dropped for it, in all

    def take(self) -> tuple[bytes, bool]:
        """The frames ready since the last call, and whether the stream is over (the final event
        handed out). Live events more than ``limit`` behind lose their oldest step events, replaced
        by one ``dropped`` event (its id is the last dropped one's)."""
        log = self.log
        with log._lock:
            self.awake = False
            end = len(log._events)
            ready = log._events[self.cursor : end]
            closed = log.closed
        self.cursor = max(self.cursor, end)
        replay = [e.frame for e in ready if e.seq <= self.replay_end]
        live = [e for e in ready if e.seq > self.replay_end]
        excess = len(live) - log.limit
        if excess > 0:
            head, live = live[:excess], live[excess:]
            gone = [e for e in head if e.type == DROPPABLE]
            items = [(e.seq, e.frame) for e in head if e.type != DROPPABLE]
            if gone:
                self.dropped += len(gone)
                info = {"count": len(gone), "first": gone[0].seq, "last": gone[-1].seq, "total": self.dropped}
                items.append((gone[-1].seq, sse_frame(gone[-1].seq, "dropped", info)))
            replay += [frame for _, frame in sorted(items, key=lambda item: item[0])]
        return b"".join(replay + [e.frame for e in live]), closed and self.cursor >= end

    def close(self) -> None:
        self.log.unsubscribe(self)
