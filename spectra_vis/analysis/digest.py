"""Analysis stage: what the views need of every step of a trial, computed in one pass and kept.

A view of a whole trial (the layers x tokens heat map, the interpretation's zones and states, the
trial's step list, the analysis's means) would otherwise read every step of the capture at its
first request: seconds on a long trial. ``digest(cap, trial_id)`` reads each step once, computes
those numbers and keeps them: in the capture's index file (``store.index_file``, beside it, memory-
mapped: a loaded capture holds what the views ask for, not the file) when the capture was loaded
from a file lazily, else in memory. ``prepare(cap)`` does every trial (the server, when it loads a
capture). Per trial:

- ``tok``: float64 ``[tensor, stat, position]``: the statistics of each token's row, from the
  first step that has one (the layers x tokens heat map); NaN where none
- ``l2``: float64 ``[step, tensor]``: the first number of each tensor's statistics per step (the
  delta bar); NaN where the step has none
- ``sum``, ``cnt``: ``[tensor, stat]`` sums and counts of each finite statistic over the steps
- ``cdi``, ``cdv``: where the comparison's per-token statistics (``token_stats_step``: the last
  step's one-token statistics or per-token rows) differ from ``tok``: int64 ``[k, 2]`` (row,
  position) and float64 ``[k, stat]`` their values; few (a prefill's output-only rows), so that
  ``TrialDigest.token_stats`` gives the comparing stage exactly what a walk of the steps gives
- ``ids``: the tensor ids of those rows; metadata: each step's summary, state and token zones
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spectra_vis.analysis import interpret
from spectra_vis.errors import CaptureError
from spectra_vis.store import capture_file, index_file
from spectra_vis.store.capture_file import Capture, trial_of
from spectra_vis.store.lazy import LazySteps

VERSION = 3
COLUMNS = ("apos", "ap", "aent", "akv")
_LOCK = threading.Lock()


@dataclass
class TrialDigest:
    ids: np.ndarray  # tensor ids, the rows of the arrays
    tok: np.ndarray  # [tensor, stat, position]
    l2: np.ndarray  # [step, tensor]
    sums: np.ndarray  # [tensor, stat]
    counts: np.ndarray  # [tensor, stat]
    steps: list[dict[str, Any]]  # per step: index, phase, pos, n_tokens, ms, token_texts, n_stats, ...
    states: list[dict[str, Any]]  # per step: interpret.step_state
    zones: list[list[Any]]  # per token with attention: [pos, step, zone]
    n_head: int
    columns: dict[str, np.ndarray] | None = None  # attention per layer and token (see attention_columns)
    cmp_at: np.ndarray | None = None  # [k, 2] (row, position) where token_stats differs from tok
    cmp_val: np.ndarray | None = None  # [k, stat] token_stats there

    def row(self) -> dict[int, int]:
        return {int(t): i for i, t in enumerate(self.ids)}

    def token_stats(self, tids: list[int], n: int) -> np.ndarray:
        """``(len(tids), n, stat)``: what ``token_stats_step`` over every step gives for tensors
        ``tids`` at positions < ``n`` (NaN for a tensor without statistics), read from the columns."""
        out = np.full((len(tids), n, self.tok.shape[1]), np.nan)
        row = self.row()
        have = [(j, row[int(t)]) for j, t in enumerate(tids) if int(t) in row]
        if not have:
            return out
        dst, src = (list(x) for x in zip(*have, strict=True))
        out[dst] = np.asarray(self.tok[src])[:, :, :n].transpose(0, 2, 1)
        if self.cmp_at is not None and self.cmp_val is not None and len(self.cmp_at):
            at, val = np.asarray(self.cmp_at), np.asarray(self.cmp_val)
            inside = at[:, 1] < n
            for j, r in zip(dst, src, strict=True):
                m = inside & (at[:, 0] == r)
                out[j, at[m, 1]] = val[m]
        return out


def digest(cap: Capture, trial_id: int) -> TrialDigest:
    """The trial's digest: from the index file or memory when there, else computed (and kept)."""
    trial_of(cap.data, trial_id)
    kept = cap.derived.get("digest")
    if kept is None:
        with _LOCK:
            kept = cap.derived.get("digest")
            if kept is None:
                kept = _restore(cap) or _compute_all(cap)
                cap.derived["digest"] = kept
    return kept[trial_id]  # type: ignore[no-any-return]


def prepare(cap: Capture) -> None:
    """Every trial's digest, now (reading the index file, or every step once and writing it)."""
    if cap.data["trials"] and not cap.legacy:
        digest(cap, 0)


def keep_index(cap: Capture, path: Path) -> str | None:
    """After ``cap`` was saved to ``path`` (``capture_file.SAVED``): write the index file and every
    trial's digest beside it, read back from the file as the server's lazy load reads it, so that
    the server's first load of it reads no step. A notice instead of an error when that fails (the
    server then builds the index on first load, as for a capture saved without one)."""
    if cap.legacy or not cap.data["trials"]:
        return None
    try:
        saved = Capture.load(path, vectors=False, lazy=True)
        try:
            prepare(saved)
        finally:
            for trial in saved.data["trials"]:
                if isinstance(trial["steps"], LazySteps):
                    trial["steps"].file.close()
        kept = saved.index is not None and saved.index.derived.get("version") == VERSION
        why = next((n for n in saved.notices if "index" in n), "not kept")
    except (OSError, CaptureError, ValueError) as exc:
        kept, why = False, str(exc)
    return None if kept else f"no index file written beside {path.name} ({why}): the first load builds it"


capture_file.SAVED[:] = [h for h in capture_file.SAVED if getattr(h, "__name__", "") != "keep_index"] + [keep_index]


def _restore(cap: Capture) -> list[TrialDigest] | None:
    index = cap.index
    if index is None or index.derived.get("version") != VERSION:
        return None
    meta = index.derived["trials"]
    if len(meta) != len(cap.data["trials"]):
        return None
    a = index.arrays
    try:
        out = [
            TrialDigest(a[f"t{i}.ids"], a[f"t{i}.tok"], a[f"t{i}.l2"], a[f"t{i}.sum"], a[f"t{i}.cnt"],
                        m["steps"], m["states"], m["zones"], m["n_head"],
                        {k: a[f"t{i}.{k}"] for k in COLUMNS} if f"t{i}.apos" in a else None,
                        a[f"t{i}.cdi"], a[f"t{i}.cdv"])  # fmt: skip
            for i, m in enumerate(meta)
        ]
    except KeyError:
        return None
    cap.notices += [n for n in index.derived.get("notices", []) if n not in cap.notices]
    return out


def _compute_all(cap: Capture) -> list[TrialDigest]:
    before = len(cap.notices)
    out = [_compute(cap, i) for i in range(len(cap.data["trials"]))]
    if cap.layout is not None and cap.path is not None:
        arrays: dict[str, np.ndarray] = {}
        for i, d in enumerate(out):
            arrays.update({f"t{i}.ids": d.ids, f"t{i}.tok": d.tok, f"t{i}.l2": d.l2, f"t{i}.sum": d.sums,
                           f"t{i}.cnt": d.counts})  # fmt: skip
            if d.cmp_at is not None and d.cmp_val is not None:
                arrays.update({f"t{i}.cdi": d.cmp_at, f"t{i}.cdv": d.cmp_val})
            arrays.update({f"t{i}.{k}": v for k, v in (d.columns or {}).items()})
        meta = {"version": VERSION, "notices": cap.notices[before:], "trials": [
            {"steps": d.steps, "states": d.states, "zones": d.zones, "n_head": d.n_head} for d in out
        ]}  # fmt: skip
        try:
            index_file.write(cap.path, cap.layout, arrays, meta)
            cap.index = index_file.read(cap.path)
        except (OSError, CaptureError) as exc:
            cap.notices.append(f"could not keep the index beside {cap.path.name} ({exc}): it is kept in memory")
            return out
        restored = _restore(cap)
        if restored is not None:  # the memory-mapped arrays, not the ones computed in memory
            return restored
    return out


def _compute(cap: Capture, trial_id: int) -> TrialDigest:
    doc = cap.data
    trial = trial_of(doc, trial_id)
    n_stats = len(doc["stat_names"])
    n_tokens = len(trial["tokens"]["ids"])
    steps = trial["steps"]
    ids = sorted({int(k) for k in _stat_keys(steps)}) if not hasattr(steps, "file") else _ids_of(doc)
    row = {t: i for i, t in enumerate(ids)}
    tok = np.full((len(ids), n_stats, n_tokens), np.nan)
    filled = np.zeros((len(ids), n_tokens), dtype=bool)
    l2 = np.full((len(steps), len(ids)), np.nan)
    sums, counts = np.zeros((len(ids), n_stats)), np.zeros((len(ids), n_stats), dtype=np.int64)
    kinds = interpret.energy_types(doc)
    columns = _Columns(doc, n_tokens)
    cmp = np.full((len(ids), n_tokens, n_stats), np.nan)  # token_stats_step's view, diffed at the end
    keys = {str(t): i for i, t in enumerate(ids)}
    summaries: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    zones: list[list[Any]] = []
    n_head = 0
    tensors = doc["tensors"]
    for j in range(len(steps)):
        try:
            st = steps[j]
        except CaptureError as exc:  # a corrupt step: said once, the rest of the trial is kept
            cap.notices.append(str(exc))
            summaries.append(_unreadable(j, summaries))
            states.append({"step": j, "phase": summaries[-1]["phase"], "attention_energy": 0.0, "ffn_energy": 0.0,
                           "depth_energy": [0.0, 0.0, 0.0], "label": "Processing", "confidence": 0.5})  # fmt: skip
            continue
        token_stats_step(st, keys, cmp, n_tokens)
        at = np.asarray([row.get(int(k), -1) for k in st["stats"]], dtype=np.int64)
        vals = _floats(list(st["stats"].values()), n_stats)
        keep = at >= 0
        at, vals = at[keep], vals[keep]
        l2[j, at] = vals[:, 0]
        finite = np.isfinite(vals)
        sums[at] += np.where(finite, vals, 0.0)
        counts[at] += finite
        if st["n_tokens"] == 1 and not st["rows"]:
            pos = st["pos"]
            if 0 <= pos < n_tokens:
                new = ~filled[at, pos]
                tok[at[new], :, pos] = vals[new]
                filled[at[new], pos] = True
            continue_rows = False
        else:
            continue_rows = True
        for key in st["stats"] if continue_rows else ():
            i = row.get(int(key))
            if i is None:
                continue
            for pos, values in _token_rows(st, tensors[int(key)]):
                if 0 <= pos < n_tokens and not filled[i, pos]:
                    tok[i, :, pos] = _floats([values], n_stats)[0]
                    filled[i, pos] = True
        columns.add(st)
        summaries.append(_summary(st))
        states.append(interpret.step_state(doc, st, kinds))
        zones += [[st["pos"] + r, st["index"], z] for r, z in enumerate(interpret.step_zone_list(doc, st))]
        if not n_head:
            n_head = next((len(a["pos"]) for a in st["attention"].values()), 0)
    cmp_at, cmp_val = _differences(cmp, tok)
    return TrialDigest(np.asarray(ids, dtype=np.int64), tok, l2, sums, counts, summaries, states, zones, n_head,
                       columns.arrays(), cmp_at, cmp_val)  # fmt: skip


def token_stats_step(step: dict[str, Any], index: dict[str, int], out: np.ndarray, n: int) -> None:
    """One step's per-token statistics into ``out[index[key], position]`` for positions < ``n``, as
    the comparing stage reads them: a one-token step's statistics, else its per-token rows; a later
    step overwrites an earlier one."""
    width = out.shape[2]
    pos, count = int(step["pos"]), int(step["n_tokens"])
    if pos >= n:
        return
    if count == 1:
        stats = step.get("stats", {})
        common = list(stats.keys() & index.keys())  # set intersection, in C
        if common:
            out[list(map(index.__getitem__, common)), pos] = list(map(stats.__getitem__, common))
        return
    rows = step.get("rows", {})
    for k, i in index.items():
        r = rows.get(k)
        if r is not None:
            arr = np.asarray(r, dtype=np.float64).reshape(-1, width)[: n - pos]
            out[i, pos : pos + len(arr)] = arr


def _differences(cmp: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, position) cells where ``cmp [row, position, stat]`` differs from ``tok [row, stat,
    position]`` (NaN equals NaN), and cmp's values there."""
    mine = tok.transpose(0, 2, 1)
    same = (cmp == mine) | (np.isnan(cmp) & np.isnan(mine))
    cells = ~same.all(axis=2)
    return np.argwhere(cells).astype(np.int64).reshape(-1, 2), cmp[cells].reshape(-1, cmp.shape[2])


class _Columns:
    """Every token's attention rows, per attention layer (the order of ``interpret.attention_tensors``):
    ``apos`` int32 ``[layer, position, head, k]`` (-1: no edge), ``ap`` float64 (its probability),
    ``aent`` float64 ``[layer, position, head]`` (row entropy), ``akv`` int32 ``[layer, position]``
    (n_kv; 0: no row). Only for top-k attention; whole rows (``full_attention``) are not kept."""

    def __init__(self, doc: dict[str, Any], n_tokens: int) -> None:
        layers = interpret.attention_tensors(doc)
        self.keys = [str(layers[L]) for L in sorted(layers)]
        self.k = int(doc["preset"].get("top_k") or 0)
        self.ok = bool(self.keys) and self.k > 0 and not doc["preset"].get("full_attention")
        self.n_tokens = n_tokens
        self.data: dict[str, np.ndarray] | None = None

    def add(self, st: dict[str, Any]) -> None:
        if not self.ok:
            return
        for a, key in enumerate(self.keys):
            att = st["attention"].get(key)
            if att is None or not att["pos"] or not st["n_tokens"]:
                continue
            pos, p, ok = interpret.padded(att["pos"], att["p"])
            n_h, n_r, k = pos.shape
            if k > self.k or st["pos"] + n_r > self.n_tokens:
                self.ok = False
                return
            if self.data is None:
                self.data = self._blank(n_h)
            q0 = st["pos"]
            self.data["apos"][a, q0 : q0 + n_r, :, :k] = np.where(ok, pos, -1).transpose(1, 0, 2)
            self.data["ap"][a, q0 : q0 + n_r, :, :k] = np.where(ok, p, 0.0).transpose(1, 0, 2)
            self.data["aent"][a, q0 : q0 + n_r] = np.asarray(att["entropy"], dtype=np.float64).reshape(n_h, n_r).T
            self.data["akv"][a, q0 : q0 + n_r] = att["n_kv"]

    def _blank(self, n_head: int) -> dict[str, np.ndarray]:
        shape = (len(self.keys), self.n_tokens, n_head)
        return {
            "apos": np.full((*shape, self.k), -1, dtype=np.int32),
            "ap": np.zeros((*shape, self.k)),
            "aent": np.zeros(shape),
            "akv": np.zeros(shape[:2], dtype=np.int32),
        }

    def arrays(self) -> dict[str, np.ndarray] | None:
        return self.data if self.ok else None


def _floats(rows: list[list[Any]], width: int) -> np.ndarray:
    """Statistics rows as a float array (null: NaN)."""
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        return np.asarray([[math.nan if v is None else v for v in r] for r in rows], dtype=np.float64)


def _ids_of(doc: dict[str, Any]) -> list[int]:
    """Tensor ids that can have statistics: the captured ones of the catalogue."""
    return [t["id"] for t in doc["tensors"] if t.get("captured", True)]


def _stat_keys(steps: Any) -> set[str]:
    return {k for st in steps for k in st["stats"]}


def _token_rows(step: dict[str, Any], tensor: dict[str, Any]) -> list[tuple[int, list[Any]]]:
    """(token position, stats) of one tensor at one step, for the tokens the capture has rows for."""
    key = str(tensor["id"])
    rows = step["rows"].get(key)
    if rows:
        return [(step["pos"] + r, row) for r, row in enumerate(rows)]
    stats = step["stats"].get(key)
    if stats is None:
        return []
    if step["n_tokens"] == 1:
        return [(step["pos"], stats)]
    # Last block of a prefill: llama.cpp keeps only the output row (the step's last token).
    shape = tensor["shape"]
    if len(shape) == 1 or (shape and shape[0] == 1):
        return [(step["pos"] + step["n_tokens"] - 1, stats)]
    return []


def _unreadable(j: int, before: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of a step that could not be read: no tokens, after the one before it."""
    pos = before[-1]["pos"] + before[-1]["n_tokens"] if before else 0
    return {"index": j, "phase": "decode" if j else "prefill", "pos": pos, "n_tokens": 0, "token_texts": [],
            "ms": None, "n_stats": 0, "n_attention": 0, "next_token": None}  # fmt: skip


def _summary(st: dict[str, Any]) -> dict[str, Any]:
    logits = st.get("logits")
    top = {"id": logits["ids"][0], "logit": logits["logits"][0]} if logits and logits.get("ids") else None
    return {
        "index": st["index"],
        "phase": st["phase"],
        "pos": st["pos"],
        "n_tokens": st["n_tokens"],
        "token_texts": st["token_texts"],
        "ms": st.get("ms"),
        "n_stats": len(st["stats"]),
        "n_attention": len(st["attention"]),
        "next_token": top,
    }


def step_of_token(d: TrialDigest, pos: int) -> int | None:
    """Index of the step that evaluated token ``pos`` (the first one), or None."""
    for s in d.steps:
        if s["pos"] <= pos < s["pos"] + s["n_tokens"]:
            return int(s["index"])
    return None
