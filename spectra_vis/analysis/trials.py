"""Trials and steps: tokens with the step that evaluated each, and per-step detail."""

from __future__ import annotations

from typing import Any

from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import _step, _trial
from spectra_vis.analysis.digest import digest
from spectra_vis.store.capture_file import Capture


# ----- trials and steps ------------------------------------------------------------------
def trial_detail(cap: Capture, trial_id: int) -> P.TrialDetail:
    """A trial's tokens (with the step that evaluated each) and a summary of every step.

    ``chat`` and ``prompt_text`` say how the prompt was sent (older captures: raw, the prompt);
    each token's ``template`` is true for a prompt token the chat template or tokenizer added.
    """
    trial = _trial(cap, trial_id)
    tokens = trial["tokens"]
    summaries = digest(cap, trial_id).steps if not cap.legacy else []
    step_of = token_steps(summaries)
    template = token_template_marks(trial)
    return {
        "id": trial_id,
        "prompt": trial["prompt"],
        "chat": bool(trial.get("chat", False)),
        "prompt_text": trial.get("prompt_text", trial["prompt"]),
        "response": trial["response"],
        "n_prompt": tokens["n_prompt"],
        "interrupted": trial["interrupted"],
        "errors": list(trial["errors"]),
        "timings": trial["timings"],
        "tokens": [
            {
                "pos": i,
                "id": tid,
                "text": text,
                "prompt": i < tokens["n_prompt"],
                "template": template[i],
                "step": step_of.get(i),
            }
            for i, (tid, text) in enumerate(zip(tokens["ids"], tokens["texts"], strict=False))
        ],
        "steps": [
            {**s, "positions": list(range(s["pos"], s["pos"] + s["n_tokens"]))}  # type: ignore[typeddict-item]
            for s in summaries
        ],
    }


def token_steps(summaries: list[dict[str, Any]]) -> dict[int, int]:
    """token position -> index of the step that evaluated it (the first), from step summaries."""
    out: dict[int, int] = {}
    for st in summaries:
        for r in range(st["n_tokens"]):
            out.setdefault(st["pos"] + r, st["index"])
    return out


def token_template_marks(trial: dict[str, Any]) -> list[bool]:
    """One mark per token of the trial: the capture's ``tokens.template`` for prompt tokens,
    false for generated ones and wherever a capture has no marks (older files)."""
    tokens = trial["tokens"]
    marks = [bool(m) for m in tokens.get("template", [])][: tokens["n_prompt"]]
    return marks + [False] * (len(tokens["ids"]) - len(marks))


def step_detail(cap: Capture, trial_id: int, step: int) -> P.StepDetail:
    """Everything the capture holds for one step, with tensor names; attention summarised per layer."""
    trial = _trial(cap, trial_id)
    st = _step(trial, step)
    catalogue = cap.data["tensors"]
    tensors: list[P.StepTensor] = []
    for key in sorted(st["stats"], key=int):
        t = catalogue[int(key)]
        tensors.append(
            {
                "id": t["id"],
                "name": t["name"],
                "layer": t["layer"],
                "type": t["type"],
                "category": t["category"],
                "stats": st["stats"][key],
                "rows": st["rows"].get(key),
            }
        )
    attention: list[P.StepAttention] = []
    for key in sorted(st["attention"], key=int):
        att = st["attention"][key]
        attention.append(
            {
                "layer": catalogue[int(key)]["layer"],
                "tensor_id": int(key),
                "n_kv": att["n_kv"],
                "n_head": len(att["pos"]),
                "mean_entropy": [sum(h) / len(h) if h else None for h in att["entropy"]],
            }
        )
    return {
        "trial_id": trial_id,
        "index": st["index"],
        "phase": st["phase"],
        "pos": st["pos"],
        "n_tokens": st["n_tokens"],
        "positions": list(range(st["pos"], st["pos"] + st["n_tokens"])),
        "token_ids": st["token_ids"],
        "token_texts": st["token_texts"],
        "ms": st.get("ms"),
        "stat_names": list(cap.data["stat_names"]),
        "tensors": tensors,
        "attention": sorted(attention, key=lambda a: a["layer"]),
        "logits": st.get("logits"),
    }
