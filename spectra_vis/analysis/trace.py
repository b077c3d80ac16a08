"""Trace export/import: one trial as JSONL, in the attention explorer's record types.

One JSON object per line, each with ``record_type``:
- ``header``: format, version, model card, preset, stat names, tensor catalogue, trial
  id, prompt, response, timings, counts, n_prompt, interrupted, errors; chat and prompt_text
  when the capture has them
- ``token``: index, id, text, prompt (bool); template (bool) when the capture marks it
- ``step``: the whole capture step (stats, rows, attention, logits) plus, per captured
  layer, the fingerprint (20 numbers averaged over heads) and zone of each token
- ``metrics``: zone distribution, dominant zone, mean normalised entropy, labels per step

Importing rebuilds a one-trial capture document; export then import gives the same trial.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from spectra_vis.analysis.interpret import zone_distribution
from spectra_vis.analysis.trace_steps import step_lines
from spectra_vis.errors import SpectraVisError
from spectra_vis.store.capture_file import (
    FORMAT,
    VERSION,
    Capture,
    CaptureError,
    trial_of,
)
from spectra_vis.store.files import atomic_write_with

TRACE_FORMAT = "spectra-vis-trace"
_TRIAL_FIELDS = ("prompt", "response", "timings", "counts", "interrupted", "errors")
_OPTIONAL_TRIAL_FIELDS = ("chat", "prompt_text", "lens", "vectors_dropped")  # absent in older captures


def export_trial(cap: Capture, trial_id: int) -> bytes:
    """The trial as JSONL bytes (header, tokens, steps, metrics); see ``trace_lines``."""
    return b"".join(trace_lines(cap, trial_id))


def trace_lines(cap: Capture, trial_id: int) -> Iterator[bytes]:
    """The trial's trace, one JSON line at a time, each produced as it is needed (a server streams
    them: the first lines leave at once, whatever the trial's length).

    NotFound for a trial the capture does not have; CaptureError for a version 1.0 capture,
    which has no steps to export. Both are raised here, before the first line."""
    if cap.legacy:
        raise CaptureError("a version 1.0 capture has no steps to export as a trace; capture the model again")
    trial_of(cap.data, trial_id)
    return _lines(cap, trial_id)


def _lines(cap: Capture, trial_id: int) -> Iterator[bytes]:
    doc = cap.data
    trial = trial_of(doc, trial_id)

    def dump(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    yield dump({
        "record_type": "header",
        "format": TRACE_FORMAT,
        "capture_version": doc["version"],
        "created": doc["created"],
        "tool": doc["tool"],
        "model": doc["model"],
        "preset": doc["preset"],
        "options": doc.get("options", {}),
        "stat_names": doc["stat_names"],
        "tensors": doc["tensors"],
        "trial_id": trial_id,
        "n_prompt": trial["tokens"]["n_prompt"],
        **{k: trial[k] for k in _TRIAL_FIELDS},
        **{k: trial[k] for k in _OPTIONAL_TRIAL_FIELDS if k in trial},
    })  # fmt: skip
    n_prompt = trial["tokens"]["n_prompt"]
    marks = trial["tokens"].get("template")
    for i, (tid, text) in enumerate(zip(trial["tokens"]["ids"], trial["tokens"]["texts"], strict=True)):
        token = {"record_type": "token", "index": i, "id": tid, "text": text, "prompt": i < n_prompt}
        if marks is not None and i < len(marks):
            token["template"] = marks[i]
        yield dump(token)
    zones: list[dict[str, Any]] = []
    labels: Counter[str] = Counter()
    for line, step_zones, label in step_lines(cap, trial_id):  # each step read once (trace_steps)
        zones += step_zones
        labels[label] += 1
        yield line
    dist = zone_distribution(zones)
    yield dump({
        "record_type": "metrics",
        "zone_distribution": dist,
        "dominant_zone": max(dist, key=lambda z: dist[z]) if zones else None,
        "labels": dict(labels),
    })  # fmt: skip


def import_trial(raw: bytes, name: str = "trace") -> Capture:
    """A one-trial Capture from JSONL made by export_trial; CaptureError on a bad trace."""
    records = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise CaptureError(f"{name} line {n} is not JSON ({exc})") from None
    if not records or records[0].get("record_type") != "header" or records[0].get("format") != TRACE_FORMAT:
        raise CaptureError(f"{name} is not a Spectra Vis trace (its first line must be the header record)")
    header = records[0]
    tokens = [r for r in records if r.get("record_type") == "token"]
    steps = [r["step"] for r in records if r.get("record_type") == "step"]
    trial = {
        "id": 0,
        "tokens": {
            "ids": [t["id"] for t in tokens],
            "texts": [t["text"] for t in tokens],
            "n_prompt": header["n_prompt"],
        },
        "steps": steps,
        **{k: header[k] for k in _TRIAL_FIELDS},
        **{k: header[k] for k in _OPTIONAL_TRIAL_FIELDS if k in header},
    }
    if any("template" in t for t in tokens):
        trial["tokens"]["template"] = [bool(t["template"]) for t in tokens if "template" in t]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "created": header["created"],
        "tool": header["tool"],
        "model": header["model"],
        "preset": header["preset"],
        "options": header["options"],
        "stat_names": header["stat_names"],
        "tensors": header["tensors"],
        "trials": [trial],
    }
    return Capture.from_bytes(orjson.dumps(doc), name=name)


def export_file(capture: str | os.PathLike[str], trial_id: int = 0, out: str | os.PathLike[str] | None = None) -> Path:
    """Write trial ``trial_id`` of the capture file as a JSONL trace (default: ``<capture>_trial<N>.jsonl``
    beside it), atomically. The capture is read as the server reads it (lazily, through its index when
    it has one): each step's line is written as it is produced, so memory does not grow with the trial."""
    src = Path(capture)
    target = Path(out or src.with_name(f"{src.stem}_trial{trial_id}.jsonl"))
    cap = Capture.load(src, vectors=False, lazy=True)
    lines = trace_lines(cap, trial_id)  # errors (no such trial, a 1.0 capture) before the file is made

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            for line in lines:
                f.write(line)

    atomic_write_with(target, write)
    return target


def main(argv: list[str] | None = None, prog: str = "spectra-vis trace") -> int:
    """``spectra-vis trace export CAPTURE [--trial N] [-o OUT]`` / ``import TRACE [-o OUT]``."""
    parser = argparse.ArgumentParser(prog=prog, description="Export a trial as a JSONL trace, or import one.")
    sub = parser.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="a trial of a capture JSON as a JSONL trace")
    exp.add_argument("capture", help="capture JSON file")
    exp.add_argument("--trial", type=int, default=0, help="trial index (default 0)")
    exp.add_argument("-o", "--out", help="output file (default: <capture>_trial<N>.jsonl next to it)")
    imp = sub.add_parser("import", help="a JSONL trace as a one-trial capture JSON")
    imp.add_argument("trace", help="JSONL trace file")
    imp.add_argument("-o", "--out", help="output file (default: <trace>.json next to it)")
    args = parser.parse_args(argv)
    try:
        if args.action == "export":
            out = export_file(args.capture, args.trial, args.out)
        else:
            src = Path(args.trace)
            try:
                raw = src.read_bytes()
            except OSError as exc:
                raise CaptureError(f"cannot read {src}: {exc.strerror}") from None
            cap = import_trial(raw, name=src.name)
            out = cap.save(args.out or src.with_suffix(".json"))
    except SpectraVisError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
