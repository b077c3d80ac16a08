"""Attention per query token (top-k edges, fingerprints, zones) and the trial interpretation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from spectra_vis.analysis import interpret
from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import InvalidArgument, NotFound, _step, _trial
from spectra_vis.analysis.digest import TrialDigest, digest, step_of_token
from spectra_vis.analysis.paging import check_range, next_of, next_start, spans_of
from spectra_vis.analysis.trials import token_steps
from spectra_vis.store.capture_file import Capture


# ----- attention and interpretation ------------------------------------------------------
def attention(
    cap: Capture,
    trial_id: int = 0,
    step: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    token: int | None = None,
    zones: list[dict[str, Any]] | None = None,
    target: int | None = None,
    start: int = 0,
    stop: int | None = None,
    positions: tuple[int, int] | None = None,
) -> P.Attention:
    """Per query token: top-k edges (with token texts, sinks marked), entropy, fingerprint, zone.

    Filters: one step (else every step), one layer (else every attention layer), one head
    (else every head's edges and the head-averaged fingerprint), one query position.
    Each token's top-level ``zone`` is its token-strip zone (``interpret.token_zones``, which
    a caller that has it may pass as ``zones``; else those of the chosen steps are computed),
    independent of the filters. ``target``: only the edges that point at this position, and only
    the query tokens that have one (who attends to it; from the whole trial, quickly).
    ``start``/``stop`` (without ``step`` and ``token``): only the query tokens of steps
    start..stop-1 (default: the whole trial); ``positions`` (lo, hi): of those, only the query
    positions lo..hi-1 (a page that splits a step). The payload's ``start``, ``stop``, ``n_steps``,
    ``next`` and ``next_pos`` say which steps it holds and where the rest begins
    (``analysis.paging`` picks pages of a byte budget).
    """
    doc = cap.data
    trial = _trial(cap, trial_id)
    att_layers = interpret.attention_tensors(doc)
    n_steps = len(trial["steps"])
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    whole = step is None and token is None
    if not whole and (start or stop is not None or positions is not None):
        raise InvalidArgument("start/stop/pos page a whole trial: give them without step and token, or leave them out")
    stop = check_range(start, stop, n_steps)
    steps: Iterable[dict[str, Any]]
    if step is not None:
        steps = [_step(trial, step)]
        start, stop = step, step + 1
    elif token is not None and d is not None:  # the one step that evaluated the token
        at = step_of_token(d, token)
        steps = [_step(trial, at)] if at is not None else []
        start, stop = (at, at + 1) if at is not None else (0, 0)
    else:  # read one at a time (a lazy capture keeps only the last few)
        steps = (_step(trial, j) for j in range(start, stop))
    if layer is not None and layer not in att_layers:
        raise NotFound(f"no attention captured for layer {layer}; attention layers: {sorted(att_layers) or 'none'}")
    layers = [layer] if layer is not None else sorted(att_layers)
    texts = trial["tokens"]["texts"]
    n_prompt = trial["tokens"]["n_prompt"]
    n_head = d.n_head if d is not None else 0
    if head is not None and not 0 <= head < n_head:
        raise NotFound(f"no head {head}; this capture has {n_head} heads per layer (0..{max(n_head - 1, 0)})")
    if zones is None and d is not None:  # the trial's, computed once (analysis.digest)
        zones = [{"pos": z[0], "step": z[1], "zone": z[2]} for z in d.zones]
    strip_zone = {z["pos"]: z["zone"] for z in zones or []}
    tokens: dict[int, P.TokenAttention] = {}
    if step is None and token is None and d is not None and d.columns is not None:
        steps = []  # the whole trial: from the digest's attention columns, no step read
        for L in layers:
            _from_columns(d, sorted(att_layers).index(L), L, head, texts, n_prompt, strip_zone, tokens, target,
                          (start, stop), positions)  # fmt: skip
    for st in steps:
        for L in layers:
            if str(att_layers[L]) not in st["attention"]:
                continue
            att = st["attention"][str(att_layers[L])]
            computed = interpret.token_attention(doc, trial_id, st["index"], L, head, step=st)
            for r, tok in enumerate(computed["tokens"]):
                q = tok["pos"]
                if (token is not None and q != token) or (positions and not positions[0] <= q < positions[1]):
                    continue
                entry = tokens.setdefault(
                    q,
                    {
                        "pos": q,
                        "text": texts[q] if q < len(texts) else "",
                        "step": st["index"],
                        "prompt": q < n_prompt,
                        "zone": strip_zone.get(q),
                        "layers": [],
                    },
                )
                heads = range(len(att["entropy"])) if head is None else [head]
                entry["layers"].append(
                    {
                        "layer": L,
                        "entropy": [att["entropy"][h][r] for h in heads],
                        "coverage": tok["coverage"],
                        "fingerprint": tok["fingerprint"],
                        "periodicity": tok["periodicity"],
                        "zone": tok["zone"],
                        "edges": [
                            {
                                "head": e["head"],
                                "pos": e["pos"],
                                "p": e["p"],
                                "distance": e["distance"],
                                "token_text": e["text"],
                                "sink": e["sink"],
                            }
                            for e in tok["edges"]
                            if e["distance"] >= 0  # future positions: masked (p = 0), filling early rows' top-k
                        ],
                    }
                )
    if target is not None:
        for entry in tokens.values():
            for lay in entry["layers"]:
                lay["edges"] = [e for e in lay["edges"] if e["pos"] == target]
            entry["layers"] = [lay for lay in entry["layers"] if lay["edges"]]
        tokens = {q: t for q, t in tokens.items() if t["layers"]}
    if token is not None and token not in tokens:
        where = f"step {step}" if step is not None else f"trial {trial_id}"
        raise NotFound(f"no attention for a query token at position {token} in {where}")
    nxt, nxt_pos = _next(cap, trial_id, d, whole, stop, positions)
    return {
        "trial_id": trial_id,
        "step": step,
        "layer": layer,
        "head": head,
        "n_head": n_head,
        "top_k": doc["preset"].get("top_k"),
        "attention_layers": sorted(att_layers),
        "fingerprint_names": list(interpret.FINGERPRINT_NAMES),
        "n_steps": n_steps,
        "start": start,
        "stop": stop,
        "next": nxt,
        "next_pos": nxt_pos,
        "tokens": [tokens[q] for q in sorted(tokens)],
    }


def _next(
    cap: Capture, trial_id: int, d: TrialDigest | None, whole: bool, stop: int, positions: tuple[int, int] | None
) -> tuple[int | None, int | None]:
    """``next`` and ``next_pos`` of a whole-trial payload (``paging.next_of``); both None otherwise."""
    if not whole:
        return None, None
    spans = spans_of(cap, trial_id) if positions is not None and d is not None else None
    if positions is not None and spans is not None:
        return next_of(spans, stop, positions[1])
    return next_start(stop, len(_trial(cap, trial_id)["steps"])), None


def _from_columns(
    d: TrialDigest,
    a: int,
    layer: int,
    head: int | None,
    texts: list[str],
    n_prompt: int,
    strip_zone: dict[int, str],
    tokens: dict[int, P.TokenAttention],
    target: int | None = None,
    steps: tuple[int, int] | None = None,
    positions: tuple[int, int] | None = None,
) -> None:
    """Every token's attention at one layer (``attention`` of the whole trial), from the columns;
    with ``target``, only the tokens with an edge to it; with ``steps`` (start, stop), only the
    tokens that steps start..stop-1 evaluated; with ``positions`` (lo, hi), only those at lo..hi-1."""
    col = d.columns
    assert col is not None
    heads = list(range(col["apos"].shape[2])) if head is None else [head]
    has = np.asarray(col["akv"][a]) > 0
    step_of = token_steps(d.steps)
    if steps is not None and steps != (0, len(d.steps)):
        first = np.full(has.size, -1)
        for at_pos, j in step_of.items():
            if at_pos < first.size:
                first[at_pos] = j
        has &= (first >= steps[0]) & (first < steps[1])
    if positions is not None:
        qs = np.arange(has.size)
        has &= (qs >= positions[0]) & (qs < positions[1])
    if target is not None:
        has &= (np.asarray(col["apos"][a][:, heads]) == target).any(axis=(1, 2))
    at = np.flatnonzero(has)
    if not at.size:
        return
    pos = np.asarray(col["apos"][a][at][:, heads], dtype=np.int64)  # [token, head, k]
    p = np.asarray(col["ap"][a][at][:, heads])
    ent = np.asarray(col["aent"][a][at][:, heads])
    n_t, n_h, k = pos.shape
    q = np.repeat(at, n_h)
    n_kv = np.repeat(np.asarray(col["akv"][a][at]), n_h)
    fp, ripple = interpret.row_fingerprints(pos.reshape(-1, k), p.reshape(-1, k), pos.reshape(-1, k) >= 0, q,
                                            ent.reshape(-1), n_kv)  # fmt: skip
    mean_fp = fp.reshape(n_t, n_h, 20).mean(axis=1)
    mean_ripple = ripple.reshape(n_t, n_h).mean(axis=1)
    real = pos >= 0
    # The edges sent: real, not in the future (masked, p = 0, filling early rows' top-k), and with
    # ``target`` only those pointing at it (attention() keeps no other); in head, then rank order.
    sent = real & (pos <= at[:, None, None]) & (pos == target if target is not None else True)
    e_head = np.asarray(heads)[np.nonzero(sent)[1]].tolist()
    e_pos, e_p, real_p = pos[sent].tolist(), p[sent].tolist(), p[real].tolist()
    e_at = np.concatenate([[0], np.cumsum(sent.sum(axis=(1, 2)))]).tolist()  # token i: edges e_at[i]..
    r_at = np.concatenate([[0], np.cumsum(real.sum(axis=(1, 2)))]).tolist()
    n_texts = len(texts)
    for i, qpos in enumerate(at.tolist()):
        ps = real_p[r_at[i] : r_at[i + 1]]  # every real edge's p, for the coverage (head, then rank order)
        edges: list[P.Edge] = [
            {"head": h, "pos": kp, "p": v, "distance": qpos - kp, "token_text": texts[kp] if kp < n_texts else "",
             "sink": kp == 0}
            for h, kp, v in zip(e_head[e_at[i] : e_at[i + 1]], e_pos[e_at[i] : e_at[i + 1]], e_p[e_at[i] : e_at[i + 1]],
                                strict=True)
        ]  # fmt: skip
        entry = tokens.setdefault(qpos, {
            "pos": qpos, "text": texts[qpos] if qpos < len(texts) else "", "step": step_of.get(qpos, 0),
            "prompt": qpos < n_prompt, "zone": strip_zone.get(qpos), "layers": [],
        })  # fmt: skip
        entry["layers"].append({
            "layer": layer,
            "entropy": ent[i].tolist(),
            "coverage": float(sum(ps) / n_h),
            "fingerprint": [round(float(v), 6) for v in mean_fp[i]],
            "periodicity": round(float(mean_ripple[i]), 6),
            "zone": interpret.zone(mean_fp[i], float(mean_ripple[i])),
            "edges": edges,
        })  # fmt: skip


def interpretation(
    cap: Capture,
    trial_id: int,
    zones: list[dict[str, Any]] | None = None,
    start: int = 0,
    stop: int | None = None,
    delta: bool = True,
) -> P.Interpretation:
    """Zone per token, cognitive state (with the delta bar) per step, and the zone distribution.

    ``start``/``stop``: only the states of steps start..stop-1 and the zones of their tokens (the
    distribution and the dominant zone are always the whole trial's; ``next``: the start of the
    steps after them, None at the trial's end); ``delta=False`` leaves each
    state's delta bar empty (it lists every tensor: most of the payload of a long trial).
    ``zones``: the trial's zones (``interpret.token_zones``), when the caller has them already;
    else the trial's digest gives them (``analysis.digest``: computed once per trial).
    """
    trial = _trial(cap, trial_id)
    texts = trial["tokens"]["texts"]
    n_steps = len(trial["steps"])
    stop = check_range(start, stop, n_steps)
    d = digest(cap, trial_id) if n_steps and not cap.legacy else None
    if zones is None:
        zones = [{"pos": z[0], "step": z[1], "zone": z[2]} for z in d.zones] if d is not None else []
    distribution = interpret.zone_distribution(zones)
    shown = [
        {**z, "text": texts[z["pos"]] if z["pos"] < len(texts) else ""} for z in zones if start <= z["step"] < stop
    ]
    states: list[P.StepState] = []
    if d is not None:
        for j in range(start, stop):
            states.append(cast(P.StepState, {**d.states[j], "delta": _delta(cap, d, j) if delta else []}))
    return {
        "trial_id": trial_id,
        "n_steps": n_steps,
        "start": start,
        "stop": stop,
        "next": next_start(stop, n_steps),
        "zone_names": list(interpret.ZONES),
        "state_names": list(interpret.STATES),
        "zones": cast(list[P.TokenZone], shown),
        "zone_distribution": distribution,
        "dominant_zone": max(distribution, key=lambda z: distribution[z]) if zones else None,
        "states": states,
    }


def _delta(cap: Capture, d: TrialDigest, j: int) -> list[P.DeltaEntry]:
    """The delta bar of step j: each tensor's relative change of L2 from step j - 1 (catalogue order)."""
    if j == 0:
        return []
    prev, cur = d.l2[j - 1], d.l2[j]
    both = np.flatnonzero(~np.isnan(prev) & ~np.isnan(cur))
    values = (cur[both] - prev[both]) / np.maximum(np.abs(prev[both]), 1e-9)
    catalogue = cap.data["tensors"]
    out: list[P.DeltaEntry] = []
    for tid, v in sorted(zip(d.ids[both].tolist(), values.tolist(), strict=True)):
        t = catalogue[tid]
        out.append({"id": tid, "name": t["name"], "layer": t["layer"], "type": t["type"], "value": v})
    return out
