"""Analysis stage: a trial's digest (``analysis.digest``) computed from its steps, many at a time.

The steps come in runs: a few MB of them parsed in one go from the capture file
(``LazySteps.chunks``), or slices of the list in memory (a capture just saved). Per run, the
statistics of every step go through numpy together (``np.add.at`` adds them in step order, as a
step-by-step walk would), and so do the attention rows of every step: one ``row_fingerprints``
over all of them, then ``interpret.zones_of`` (the same function ``step_zone_list`` uses for one
step, so the zones are those of a walk). What does not fit the common shape (a prefill's per-token
rows, a step missing a layer's attention, rows of unequal length) is done step by step, in order.
A step that could not be read is said once in the notices and counted as a step without tokens.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from spectra_vis.analysis import interpret
from spectra_vis.errors import CaptureError

Run = list[dict[str, Any] | CaptureError]  # consecutive steps, parsed or the error naming one


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
        row = self.row()
        have = [(j, row[int(t)]) for j, t in enumerate(tids) if int(t) in row]
        # Filled in the columns' own layout (tensor, stat, token) and returned as a (tensor, token, stat)
        # view: one copy out of the memory-mapped columns, no transposed copy, no NaN fill of what is read.
        out = np.empty((len(tids), self.tok.shape[1], n))
        missing = np.ones(len(tids), dtype=bool)
        if have:
            dst, src = (list(x) for x in zip(*have, strict=True))
            out[dst] = self.tok[src][:, :, :n]
            missing[dst] = False
        out[missing] = np.nan
        view = out.transpose(0, 2, 1)
        if have and self.cmp_at is not None and self.cmp_val is not None and len(self.cmp_at):
            at, val = np.asarray(self.cmp_at), np.asarray(self.cmp_val)
            inside = at[:, 1] < n
            for j, r in zip(dst, src, strict=True):
                m = inside & (at[:, 0] == r)
                view[j, at[m, 1]] = val[m]
        return view


class TrialBuilder:
    """A trial's digest, fed runs of consecutive steps in order (``add``), then ``finish``.
    ``ids``: the tensors the arrays have rows for; ``notices``: where unreadable steps are said."""

    def __init__(self, doc: dict[str, Any], trial: dict[str, Any], ids: list[int], notices: list[str]) -> None:
        self.doc, self.notices = doc, notices
        n_stats, n_tokens, n_steps = len(doc["stat_names"]), len(trial["tokens"]["ids"]), len(trial["steps"])
        self.n_stats, self.n_tokens = n_stats, n_tokens
        self.ids = np.asarray(ids, dtype=np.int64)
        self.rowmap = np.full(int(self.ids.max(initial=-1)) + 2, -1, dtype=np.int64)
        self.rowmap[self.ids] = np.arange(len(ids))
        self.row = {int(t): i for i, t in enumerate(ids)}
        self.keys = {str(t): i for i, t in enumerate(ids)}
        self.tok = np.full((len(ids), n_stats, n_tokens), np.nan)
        self.filled = np.zeros((len(ids), n_tokens), dtype=bool)
        self.l2 = np.full((n_steps, len(ids)), np.nan)
        # [stat, tensor] while adding (np.add.at is fastest on one contiguous row), [tensor, stat] in the digest
        self.sums, self.counts = np.zeros((n_stats, len(ids))), np.zeros((n_stats, len(ids)), dtype=np.int64)
        self.cmp = np.full((len(ids), n_tokens, n_stats), np.nan)  # token_stats_step's view, diffed at the end
        self.kinds = interpret.energy_types(doc)
        energy = self.kinds[0] | self.kinds[1]
        # step_state reads the model's layer count and the energy tensors only: give it just those.
        self.energy_doc = {"model": doc["model"], "tensors": [t for t in doc["tensors"] if t["type"] in energy]}
        layers = interpret.attention_tensors(doc)
        self.layer_keys = [str(layers[L]) for L in sorted(layers)]
        self.columns = _Columns(doc, n_tokens)
        self.summaries: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.zones: list[list[Any]] = []
        self.n_head = 0

    def add(self, first: int, run: Run) -> None:
        """Steps ``first``, ``first + 1``, ... (each parsed, or the CaptureError naming it)."""
        good: list[tuple[int, dict[str, Any]]] = []
        for j, st in enumerate(run, start=first):
            if isinstance(st, CaptureError):  # said once, the rest of the trial is kept
                self.notices.append(str(st))
                self.summaries.append(_unreadable(j, self.summaries))
                self.states.append({"step": j, "phase": self.summaries[-1]["phase"], "attention_energy": 0.0,
                                    "ffn_energy": 0.0, "depth_energy": [0.0, 0.0, 0.0], "label": "Processing",
                                    "confidence": 0.5})  # fmt: skip
                continue
            good.append((j, st))
            self.summaries.append(_summary(st))
            self.states.append(interpret.step_state(self.energy_doc, st, self.kinds))
            if not self.n_head:
                self.n_head = next((len(a["pos"]) for a in st["attention"].values()), 0)
        if not good:
            return
        self._stats(good)
        zones = self._attention(good)
        for j, st in good:
            self.zones += [[st["pos"] + r, st["index"], z] for r, z in enumerate(zones[j])]

    def finish(self) -> TrialDigest:
        cmp_at, cmp_val = _differences(self.cmp, self.tok)
        sums, counts = np.ascontiguousarray(self.sums.T), np.ascontiguousarray(self.counts.T)
        return TrialDigest(self.ids, self.tok, self.l2, sums, counts, self.summaries, self.states,
                           self.zones, self.n_head, self.columns.arrays(), cmp_at, cmp_val)  # fmt: skip

    # ----- statistics ---------------------------------------------------------------------------
    def _stats(self, good: list[tuple[int, dict[str, Any]]]) -> None:
        """l2, sums and counts of every step at once; the per-token columns by runs of one-token
        steps at once (first step wins in ``tok``, last in ``cmp``) and other steps one by one."""
        keys: list[str] = []
        vals: list[Any] = []
        sizes = []
        for _, st in good:
            stats = st["stats"]
            keys += stats.keys()
            vals += stats.values()
            sizes.append(len(stats))
        tid = np.fromiter(map(int, keys), dtype=np.int64, count=len(keys))
        at = np.where((tid >= 0) & (tid < len(self.rowmap)), self.rowmap[np.clip(tid, 0, len(self.rowmap) - 1)], -1)
        v = _floats(vals, self.n_stats)
        step = np.repeat(np.asarray([j for j, _ in good], dtype=np.int64), sizes)
        keep = at >= 0
        self.l2[step[keep], at[keep]] = v[keep, 0]
        finite = np.isfinite(v[keep]).T
        added, rows = np.where(finite, v[keep].T, 0.0), at[keep]
        counted = finite.astype(np.int64)
        for c in range(self.n_stats):  # in step order, as a walk of the steps adds them
            np.add.at(self.sums[c], rows, added[c])
            np.add.at(self.counts[c], rows, counted[c])
        ends = np.cumsum(sizes)
        a = 0
        while a < len(good):
            if not _one_token(good[a][1]):
                self._token_rows_of(good[a][1])
                a += 1
                continue
            b = a
            while b < len(good) and _one_token(good[b][1]):
                b += 1
            lo, hi = int(ends[a] - sizes[a]), int(ends[b - 1])
            pos = np.repeat(np.asarray([st["pos"] for _, st in good[a:b]], dtype=np.int64), sizes[a:b])
            self._one_token_rows(at[lo:hi], pos, v[lo:hi])
            a = b

    def _one_token_rows(self, at: np.ndarray, pos: np.ndarray, v: np.ndarray) -> None:
        inside = (at >= 0) & (pos >= 0) & (pos < self.n_tokens)
        at, pos, v = at[inside], pos[inside], v[inside]
        cell = at * self.n_tokens + pos
        last = len(cell) - 1 - np.unique(cell[::-1], return_index=True)[1]  # later steps overwrite
        self.cmp[at[last], pos[last]] = v[last]
        new = ~self.filled[at, pos]
        at, pos, v, cell = at[new], pos[new], v[new], cell[new]
        first = np.unique(cell, return_index=True)[1]  # the first step that has a row keeps it
        self.tok[at[first], :, pos[first]] = v[first]
        self.filled[at[first], pos[first]] = True

    def _token_rows_of(self, st: dict[str, Any]) -> None:
        token_stats_step(st, self.keys, self.cmp, self.n_tokens)
        tensors = self.doc["tensors"]
        for key in st["stats"]:
            i = self.row.get(int(key))
            if i is None:
                continue
            for pos, values in _token_rows(st, tensors[int(key)]):
                if 0 <= pos < self.n_tokens and not self.filled[i, pos]:
                    self.tok[i, :, pos] = _floats([values], self.n_stats)[0]
                    self.filled[i, pos] = True

    # ----- attention ----------------------------------------------------------------------------
    def _attention(self, good: list[tuple[int, dict[str, Any]]]) -> dict[int, list[str]]:
        """Zones of every step's tokens (step -> zones) and the attention columns: steps of the
        common shape (every layer, rows of one length) in groups, the others one by one."""
        out: dict[int, list[str]] = {}
        groups: dict[tuple[int, ...], list[_Rows]] = defaultdict(list)
        spans = [(st["pos"], st["n_tokens"]) for _, st in good if st["attention"]]
        covered = np.concatenate([np.arange(p, p + n) for p, n in spans]) if spans else np.zeros(0)
        apart = len(np.unique(covered)) == len(covered)  # no token twice: the order of writes is free
        for j, st in good:
            rows = _Rows.of(j, st, self.layer_keys) if apart else None
            if rows is None:
                out[j] = interpret.step_zone_list(self.doc, st)
                self.columns.add(st)
            else:
                groups[rows.pos.shape[:2] + rows.pos.shape[3:]].append(rows)
        for members in groups.values():
            zones = self._group(members)
            at = 0
            for rows in members:
                out[rows.step] = zones[at : at + rows.n]
                at += rows.n
        return out

    def _group(self, members: list[_Rows]) -> list[str]:
        pos = np.concatenate([m.pos for m in members], axis=2)  # [layer, head, row, k]
        p = np.concatenate([m.p for m in members], axis=2)
        ent = np.concatenate([m.entropy for m in members], axis=2)
        q = np.concatenate([m.q0 + np.arange(m.n) for m in members])
        n_kv = np.concatenate([np.repeat(m.n_kv[:, None], m.n, axis=1) for m in members], axis=1)  # [layer, row]
        n_l, n_h, n, k = pos.shape
        fp, ripple = interpret.row_fingerprints(
            pos.reshape(-1, k), p.reshape(-1, k), np.ones((n_l * n_h * n, k), dtype=bool),
            np.broadcast_to(q, (n_l, n_h, n)).reshape(-1), ent.reshape(-1),
            np.broadcast_to(n_kv[:, None, :], (n_l, n_h, n)).reshape(-1),
        )  # fmt: skip
        self.columns.add_rows(q, pos, p, ent, n_kv)
        return interpret.zones_of(list(fp.reshape(n_l, n_h, n, 20)), list(ripple.reshape(n_l, n_h, n)))


@dataclass
class _Rows:
    """Step ``step``'s attention rows of every layer as arrays (``[layer, head, row, k]``)."""

    step: int
    q0: int
    n: int
    pos: np.ndarray
    p: np.ndarray
    entropy: np.ndarray
    n_kv: np.ndarray

    @classmethod
    def of(cls, j: int, st: dict[str, Any], layer_keys: list[str]) -> _Rows | None:
        """The step's rows, or None when they are not of the common shape (no tokens, a layer
        missing, rows or heads of unequal length: ``step_zone_list`` takes those one by one)."""
        records = [st["attention"].get(key) for key in layer_keys]
        n = st["n_tokens"]
        if not n or not records or any(r is None for r in records):
            return None
        try:
            pos = np.asarray([r["pos"] for r in records], dtype=np.int64)  # type: ignore[index]
            p = np.asarray([r["p"] for r in records], dtype=np.float64)  # type: ignore[index]
            ent = np.asarray([r["entropy"] for r in records], dtype=np.float64)  # type: ignore[index]
            n_kv = np.asarray([r["n_kv"] for r in records], dtype=np.int64)  # type: ignore[index]
        except (ValueError, TypeError):
            return None
        if pos.ndim != 4 or pos.shape[1] == 0 or pos.shape[2] != n or pos.shape[3] == 0 or p.shape != pos.shape:
            return None
        if ent.shape != pos.shape[:3]:
            return None
        return cls(j, int(st["pos"]), n, pos, p, ent, n_kv)


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


def _one_token(st: dict[str, Any]) -> bool:
    return bool(st["n_tokens"] == 1 and not st["rows"])


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
            if not self._fits(n_h, k, st["pos"] + n_r):
                return
            assert self.data is not None
            q0 = st["pos"]
            self.data["apos"][a, q0 : q0 + n_r, :, :k] = np.where(ok, pos, -1).transpose(1, 0, 2)
            self.data["ap"][a, q0 : q0 + n_r, :, :k] = np.where(ok, p, 0.0).transpose(1, 0, 2)
            self.data["aent"][a, q0 : q0 + n_r] = np.asarray(att["entropy"], dtype=np.float64).reshape(n_h, n_r).T
            self.data["akv"][a, q0 : q0 + n_r] = att["n_kv"]

    def add_rows(self, q: np.ndarray, pos: np.ndarray, p: np.ndarray, ent: np.ndarray, n_kv: np.ndarray) -> None:
        """Rows of every layer at token positions ``q`` (all different): ``pos``, ``p``
        ``[layer, head, row, k]``, ``ent`` ``[layer, head, row]``, ``n_kv`` ``[layer, row]``."""
        n_l, n_h, _, k = pos.shape
        if not self.ok or n_l != len(self.keys) or not self._fits(n_h, k, int(q.max()) + 1):
            return
        assert self.data is not None
        self.data["apos"][:, q, :, :k] = pos.transpose(0, 2, 1, 3)
        self.data["ap"][:, q, :, :k] = p.transpose(0, 2, 1, 3)
        self.data["aent"][:, q] = ent.transpose(0, 2, 1)
        self.data["akv"][:, q] = n_kv

    def _fits(self, n_head: int, k: int, end: int) -> bool:
        """Whether rows of ``n_head`` heads and ``k`` edges up to position ``end`` fit the columns
        (made for the first rows' heads); when not, there are no columns for this trial."""
        if k > self.k or end > self.n_tokens:
            self.ok = False
        elif self.data is None:
            self.data = self._blank(n_head)
        elif self.data["aent"].shape[2] != n_head:
            self.ok = False
        return self.ok

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


def _floats(rows: list[Any], width: int) -> np.ndarray:
    """Statistics rows as a float array (null: NaN)."""
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        return np.asarray([[math.nan if v is None else v for v in r] for r in rows], dtype=np.float64)


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
