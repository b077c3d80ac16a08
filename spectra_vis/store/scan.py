"""Store stage: where each step of a capture file starts and ends, found without parsing the file.

A capture's JSON is mostly its steps (``trials[].steps[]``). ``scan`` finds the byte range of every
step object, of each trial's ``steps`` array and of its ``lens`` object, so that a reader parses the
rest of the document alone and one step at a time when asked (``store.lazy``). It reads the bytes in
blocks with numpy: real quotes (not escaped), then brackets outside strings and their depth; only the
few brackets at the depth of steps and above are looked at in Python. Any valid JSON layout works
(whitespace, key order); the memory it needs is a few times the block size, whatever the file's size.
A writer knows the ranges without a scan: ``dumps_with_layout`` serialises the steps one by one and
counts their bytes (only the small rest of the document is scanned). Imports numpy and ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from spectra_vis.errors import CaptureError

BLOCK = 8 << 20  # bytes scanned at a time
QUOTE, BACKSLASH = 34, 92
OPENERS, CLOSERS = (123, 91), (125, 93)  # { [   } ]
STEP_DEPTH = 4  # depth of a step object's opening brace: document, trials, trial, steps


class Buffer(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, item: slice) -> bytes: ...


@dataclass
class TrialLayout:
    """Byte ranges in the capture file of one trial: ``[start, end)`` of its steps array, each step
    object and its lens object (None when it has none)."""

    steps: tuple[int, int] = (0, 0)
    step_spans: list[tuple[int, int]] = field(default_factory=list)
    lens: tuple[int, int] | None = None


def scan(buf: Buffer) -> list[TrialLayout]:
    """The layout of every trial of a capture file's bytes; CaptureError when its structure is not
    a capture's (an object with a ``trials`` array of objects) or its brackets do not balance."""
    events = _shallow_brackets(buf)
    return _layout(buf, events)


def _shallow_brackets(buf: Buffer) -> list[tuple[int, int, int]]:
    """(offset, byte, depth before it) of every bracket outside strings whose depth before it is at
    most STEP_DEPTH (openers) or STEP_DEPTH + 1 (closers): the containers down to the step objects."""
    out: list[tuple[int, int, int]] = []
    in_string, depth, escaped_run = False, 0, 0
    n = len(buf)
    for start in range(0, n, BLOCK):
        block = np.frombuffer(buf[start : start + BLOCK], dtype=np.uint8)
        quotes = np.flatnonzero(block == QUOTE)
        quotes = _real_quotes(block, quotes, escaped_run, in_string)
        brackets = np.flatnonzero((block == 123) | (block == 125) | (block == 91) | (block == 93))
        if brackets.size:
            inside = (np.searchsorted(quotes, brackets) + int(in_string)) % 2 == 1
            brackets = brackets[~inside]
            kinds = block[brackets]
            step = np.where((kinds == 123) | (kinds == 91), 1, -1)
            after = depth + np.cumsum(step)
            before = after - step
            keep = np.flatnonzero(((step == 1) & (before <= STEP_DEPTH)) | ((step == -1) & (after <= STEP_DEPTH)))
            out += [(start + int(brackets[i]), int(kinds[i]), int(before[i])) for i in keep]
            if after.size:
                depth = int(after[-1])
                if after.min() < 0:
                    raise CaptureError("the capture's brackets do not balance (a closing one too many)")
        in_string = (int(in_string) + quotes.size) % 2 == 1
        escaped_run = _trailing_backslashes(block, escaped_run)
    if depth != 0 or in_string:
        raise CaptureError("the capture file ends inside a value: it looks truncated")
    return out


def _real_quotes(block: np.ndarray, quotes: np.ndarray, carry: int, in_string: bool) -> np.ndarray:
    """The quotes that open or close a string: those not preceded by an odd run of backslashes
    (``carry``: the run at the end of the previous block). Only quotes inside strings can be
    escaped, and escapes are rare (token texts), so the runs are counted in Python."""
    if not quotes.size:
        return quotes
    prev = np.where(quotes > 0, block[np.maximum(quotes - 1, 0)], BACKSLASH if carry else 0)
    maybe = np.flatnonzero(prev == BACKSLASH)
    if not maybe.size:
        return quotes
    keep = np.ones(quotes.size, dtype=bool)
    for i in maybe:
        q = int(quotes[i])
        run = 0
        while q - run - 1 >= 0 and block[q - run - 1] == BACKSLASH:
            run += 1
        if q - run - 1 < 0:
            run += carry
        keep[i] = run % 2 == 0
    return quotes[keep]


def _trailing_backslashes(block: np.ndarray, carry: int) -> int:
    run = 0
    while run < block.size and block[block.size - 1 - run] == BACKSLASH:
        run += 1
    return run + carry if run == block.size else run


def _key_before(buf: Buffer, offset: int) -> str | None:
    """The member name before the value that starts at ``offset`` (``"steps": [``), or None."""
    head = bytes(buf[max(0, offset - 64) : offset]).rstrip()
    if not head.endswith(b":"):
        return None
    head = head[:-1].rstrip()
    if not head.endswith(b'"'):
        return None
    start = head.rfind(b'"', 0, len(head) - 1)
    return head[start + 1 : -1].decode("utf-8", "replace") if start >= 0 else None


def _layout(buf: Buffer, events: list[tuple[int, int, int]]) -> list[TrialLayout]:
    trials: list[TrialLayout] = []
    stack: list[tuple[str | None, int]] = []  # (member name, offset) of each open container
    for offset, kind, before in events:
        if kind in OPENERS:
            key = _key_before(buf, offset) if before in (1, 3) else None
            stack.append((key, offset))
            path = [k for k, _ in stack]
            if before == 2 and path[1] == "trials":
                trials.append(TrialLayout())
            elif before == STEP_DEPTH and path[1] == "trials" and path[3] == "steps":
                trials[-1].step_spans.append((offset, -1))
            continue
        if not stack:
            raise CaptureError("the capture's brackets do not balance")
        key, opened = stack.pop()
        path = [k for k, _ in stack]
        if len(stack) == STEP_DEPTH and path[1] == "trials" and path[3] == "steps":
            start, _ = trials[-1].step_spans[-1]
            trials[-1].step_spans[-1] = (start, offset + 1)
        elif len(stack) == 3 and path[1] == "trials" and key in ("steps", "lens"):
            if key == "steps":
                trials[-1].steps = (opened, offset + 1)
            else:
                trials[-1].lens = (opened, offset + 1)
    if not stack and not trials and events and events[0][1] != 123:
        raise CaptureError("the capture is not a JSON object")
    return trials


def dumps_with_layout(doc: dict[str, Any], dumps: Callable[[Any], bytes]) -> tuple[bytes, list[TrialLayout]]:
    """``dumps(doc)`` (a compact serialiser: no whitespace, as orjson writes) and the layout ``scan``
    would find in it, known while writing: each step is serialised alone and its byte range counted;
    the document without its steps (empty arrays in their place) is the only part scanned."""
    trials = doc["trials"]
    steps = [[dumps(step) for step in trial["steps"]] for trial in trials]
    shell = dumps({**doc, "trials": [{**trial, "steps": []} for trial in trials]})
    layout = scan(shell)
    if len(layout) != len(trials):
        raise CaptureError(f"the document's {len(trials)} trials were written as {len(layout)}")
    starts = [lay.steps[0] for lay in layout]
    grown = []  # bytes added before each trial's steps array, in the shell's order
    pieces: list[bytes] = []
    at, size = 0, 0
    for i in sorted(range(len(trials)), key=starts.__getitem__):
        lay, parts = layout[i], steps[i]
        head = shell[at : lay.steps[0]]
        pieces.append(head)
        size += len(head)
        begin = size
        spans = []
        pieces.append(b"[")
        size += 1
        for n, part in enumerate(parts):
            if n:
                pieces.append(b",")
                size += 1
            pieces.append(part)
            spans.append((size, size + len(part)))
            size += len(part)
        pieces.append(b"]")
        size += 1
        grown.append((lay.steps[0], size - begin - (lay.steps[1] - lay.steps[0])))
        lay.steps, lay.step_spans, at = (begin, size), spans, lay.steps[1]
    pieces.append(shell[at:])

    def moved(offset: int) -> int:
        return offset + sum(extra for start, extra in grown if start < offset)

    for lay in layout:
        if lay.lens is not None:
            lay.lens = (moved(lay.lens[0]), moved(lay.lens[1]))
    return b"".join(pieces), layout
