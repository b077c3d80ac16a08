"""Analysis stage: the logit-lens views of a trial, from the lens its capture carries
(``trials[].lens``, computed at capture time by ``spectra_vis.capturing.lens``)."""

from __future__ import annotations

from typing import Any

from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import _trial
from spectra_vis.errors import InvalidArgument, NotFound
from spectra_vis.store.capture_file import Capture


def lens_grid(cap: Capture, trial_id: int) -> P.LensGrid:
    """The layers x tokens grid of top-1 tokens with their probabilities, the entropy and the next
    token's rank per cell, and per position the first layer whose top-1 is the final prediction."""
    trial = _trial(cap, trial_id)
    g = trial.get("lens")
    if g is None:
        cap.logit_lens(trial_id, k=1)  # raises NotFound saying why there is none
    assert g is not None
    vocab = g.get("vocab", {})
    top_ids = [[c[0] if c else None for c in row] for row in g["ids"]]  # the top-1 of each cell, no copy of the rest
    final = top_ids[-1]
    first: list[int | None] = []
    for pos, want in enumerate(final):
        hit = next((g["layers"][i] for i, row in enumerate(top_ids) if want is not None and row[pos] == want), None)
        first.append(hit)
    return {
        "trial_id": trial_id,
        "layers": g["layers"],
        "tokens": list(trial["tokens"]["texts"]),
        "n_prompt": trial["tokens"]["n_prompt"],
        "top_ids": top_ids,
        "top_texts": [[None if i is None else vocab.get(str(i), "") for i in row] for row in top_ids],
        "top_p": [[c[0] if c else None for c in row] for row in g["p"]],
        "entropy": g["entropy"],
        "next_rank": g["next_rank"],
        "first_final_layer": first,
    }


def lens_cell(cap: Capture, trial_id: int, layer: int, pos: int, k: int = 5) -> P.LensCell:
    """One cell's top-k with texts and probabilities, its entropy and the next token's rank."""
    trial = _trial(cap, trial_id)
    g = cap.logit_lens(trial_id, layers=[layer], k=k)
    n = len(trial["tokens"]["ids"])
    if not 0 <= pos < n:
        raise InvalidArgument(f"token position must be 0..{n - 1}, not {pos}")
    ids, ps = g["ids"][0][pos], g["p"][0][pos]
    if ids is None:
        raise NotFound(f"no lens at layer {layer}, position {pos}: llama.cpp computed no row there")
    vocab: dict[str, Any] = g["vocab"]
    nxt = trial["tokens"]["ids"][pos + 1] if pos + 1 < n else None
    return {
        "trial_id": trial_id,
        "layer": layer,
        "pos": pos,
        "top": [{"id": i, "text": vocab.get(str(i), ""), "p": p} for i, p in zip(ids, ps, strict=True)],
        "entropy": g["entropy"][0][pos],
        "next_id": nxt,
        "next_text": trial["tokens"]["texts"][pos + 1] if nxt is not None else None,
        "next_rank": g["next_rank"][0][pos],
        "next_p": g["next_p"][0][pos],
    }
