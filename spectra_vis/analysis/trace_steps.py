"""Analysis stage: the step records of a trace (``analysis.trace``), one JSON line per step: the
capture step and, per attention layer, each token's fingerprint and zone; with each line, the
step's zones and cognitive-state label for the trace's metrics.

Two ways to the same bytes. A parsed step (an in-memory capture, or a step the fast way cannot
take) gives the fingerprints from its attention records. A capture read lazily from its file
(``store.lazy``) with the digest's attention columns (``analysis.digest``) gives the step's JSON as
the file holds it (written by orjson, as ``orjson.dumps`` of the parsed step would give it) and the
fingerprints from the columns: no step is parsed, which is most of the cost of a long trace.
Depends on interpret, digest and the store only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from spectra_vis.analysis.digest import TrialDigest, digest
from spectra_vis.analysis.interpret import (
    attention_tensors,
    energy_types,
    records_fingerprints,
    row_fingerprints,
    step_state,
    zone,
)
from spectra_vis.errors import NotFound
from spectra_vis.store.capture_file import Capture, trial_of
from spectra_vis.store.lazy import LazySteps

StepLine = tuple[bytes, list[dict[str, Any]], str]  # the line, the step's zones, its state label


def step_lines(cap: Capture, trial_id: int) -> Iterator[StepLine]:
    """Each step's trace line (ending in a newline), its tokens' zones and its state label."""
    doc = cap.data
    trial = trial_of(doc, trial_id)
    tids = attention_tensors(doc)
    layers = sorted(tids)
    keys = [str(tids[L]) for L in layers]
    kinds = energy_types(doc)
    steps = trial["steps"]
    d = _with_columns(cap, trial_id, steps)
    for j in range(len(steps)):
        line = _from_file(steps, d, j, layers) if d is not None else None
        if line is not None:
            yield line
            continue
        step = steps[j]
        per_layer = step_fingerprints(step, keys, layers) if step["attention"] else None
        record = {"record_type": "step", "step": step, "fingerprints": _fingerprints(layers, per_layer)}
        zones = _zones(per_layer, step["pos"], step["index"])
        label = step_state(doc, step, kinds)["label"]
        yield orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n", zones, label


def step_fingerprints(step: dict[str, Any], keys: list[str], layers: list[int]) -> list[list[dict[str, Any]]]:
    """Per attention layer (``keys``: their tensor ids), each token's fingerprint (rounded), periodicity
    and zone, as ``interpret.token_attention`` gives them (mean over heads), without building its
    edges: every layer's rows of the step in one ``row_fingerprints`` call."""
    records = []
    for key, layer in zip(keys, layers, strict=True):
        if key not in step["attention"]:
            raise NotFound(f"no attention captured for layer {layer} at step {step['index']}")
        records.append(step["attention"][key])
    n_r = step["n_tokens"]
    if not n_r:
        return [[] for _ in records]
    fp, ripple, heads = records_fingerprints(step, records)
    return _per_token(fp, ripple, heads, n_r)


def column_fingerprints(d: TrialDigest, q0: int, n: int) -> list[list[dict[str, Any]]]:
    """``step_fingerprints`` of the step that evaluated positions q0..q0+n-1, from the digest's
    attention columns (the same rows, in the same order: layer, head, token)."""
    col = d.columns
    assert col is not None
    apos = np.asarray(col["apos"][:, q0 : q0 + n], dtype=np.int64)  # [layer, token, head, k]
    n_l, _, n_h, k = apos.shape
    pos = apos.transpose(0, 2, 1, 3)
    p = np.asarray(col["ap"][:, q0 : q0 + n]).transpose(0, 2, 1, 3)
    ent = np.asarray(col["aent"][:, q0 : q0 + n]).transpose(0, 2, 1)
    n_kv = np.broadcast_to(np.asarray(col["akv"][:, q0 : q0 + n])[:, None, :], (n_l, n_h, n))
    q = np.broadcast_to(q0 + np.arange(n), (n_l, n_h, n))
    fp, ripple = row_fingerprints(pos.reshape(-1, k), p.reshape(-1, k), pos.reshape(-1, k) >= 0, q.reshape(-1),
                                  ent.reshape(-1), n_kv.reshape(-1))  # fmt: skip
    return _per_token(fp, ripple, [n_h] * n_l, n)


def _per_token(fp: np.ndarray, ripple: np.ndarray, heads: list[int], n_r: int) -> list[list[dict[str, Any]]]:
    """Rows (layer, head, token) of fingerprints and periodicity -> per layer, per token: the mean over
    heads, rounded as ``interpret.token_attention`` reports it, and the zone."""
    out, at = [], 0
    for h in heads:
        fps, ripples = fp[at : at + h * n_r].reshape(h, n_r, 20), ripple[at : at + h * n_r].reshape(h, n_r)
        at += h * n_r
        toks = []
        for r in range(n_r):
            mean_fp = np.mean(fps[:, r], axis=0)
            mean_ripple = float(np.mean(ripples[:, r]))
            toks.append({"fingerprint": [round(v, 6) for v in mean_fp.tolist()], "periodicity": round(mean_ripple, 6),
                         "zone": zone(mean_fp, mean_ripple)})  # fmt: skip
        out.append(toks)
    return out


def _fingerprints(layers: list[int], per_layer: list[list[dict[str, Any]]] | None) -> dict[str, Any]:
    if per_layer is None:
        return {}
    return {str(L): [{"fingerprint": t["fingerprint"], "zone": t["zone"]} for t in toks]
            for L, toks in zip(layers, per_layer, strict=True)}  # fmt: skip


def _zones(per_layer: list[list[dict[str, Any]]] | None, pos: int, step_index: int) -> list[dict[str, Any]]:
    """``interpret.step_zones`` of a step from its fingerprints (the mean over layers)."""
    if per_layer is None:
        return []
    out = []
    for r in range(len(per_layer[0]) if per_layer else 0):
        fp = np.mean([np.asarray(tokens[r]["fingerprint"]) for tokens in per_layer], axis=0)
        ripple = float(np.mean([tokens[r]["periodicity"] for tokens in per_layer]))
        out.append({"pos": pos + r, "step": step_index, "zone": zone(fp, ripple)})
    return out


def _with_columns(cap: Capture, trial_id: int, steps: Any) -> TrialDigest | None:
    """The trial's digest when its steps are read lazily from the file and it has attention columns."""
    if not isinstance(steps, LazySteps) or not len(steps) or cap.legacy:
        return None
    d = digest(cap, trial_id)
    return d if d.columns is not None and len(d.steps) == len(steps) else None


def _from_file(steps: LazySteps, d: TrialDigest, j: int, layers: list[int]) -> StepLine | None:
    """Step j's line from its bytes in the file and the columns; None where the step must be parsed
    (one the digest could not read, one without every layer's attention, or bytes on several lines)."""
    s = d.steps[j]
    if not s["n_tokens"] or s["n_attention"] not in (0, len(layers)) or int(s["index"]) != j:
        return None
    start, end = (int(x) for x in steps.spans[j])
    raw = steps.file.read(start, end)
    if b"\n" in raw or b"\r" in raw or raw[:1] != b"{" or raw[-1:] != b"}":
        return None
    per_layer = column_fingerprints(d, int(s["pos"]), int(s["n_tokens"])) if s["n_attention"] else None
    fps = orjson.dumps(_fingerprints(layers, per_layer))
    line = b'{"record_type":"step","step":' + raw + b',"fingerprints":' + fps + b"}\n"
    return line, _zones(per_layer, int(s["pos"]), j), str(d.states[j]["label"])
