"""Analysis stage: the steering views of a trial, from what its capture carries (capture format
2.3: ``trials[].control``, ``trials[].sweep``, ``trials[].projection``, written at capture time
by ``spectra_vis.capturing`` and ``spectra_vis.steering``)."""

from __future__ import annotations

from typing import Any

from spectra_vis.analysis import payloads as P
from spectra_vis.analysis._common import _trial
from spectra_vis.errors import NotFound
from spectra_vis.store.capture_file import Capture


def projection(cap: Capture, trial_id: int) -> P.Projection:
    """The trial's residual projection on its control vector's direction, per layer and token.
    NotFound (one line) when the trial was not run with a control vector."""
    trial = _trial(cap, trial_id)
    proj = trial.get("projection")
    if not proj:
        raise NotFound(
            f"trial {trial_id} has no projection: it was not run with a control vector "
            "(spectra-vis steer try, or --control NAME.gguf --strength S)"
        )
    control = trial.get("control") or {}
    return {
        "trial": trial_id,
        "layers": list(proj["layers"]),
        "n_tokens": len(trial["tokens"]["ids"]),
        "n_prompt": int(trial["tokens"]["n_prompt"]),
        "tokens": list(trial["tokens"]["texts"]),
        "values": proj["values"],
        "strength": None if "strength" not in control else float(control["strength"]),
        "control_file": control.get("file") or proj.get("direction_file"),
    }


def control_info(trial: dict[str, Any]) -> P.ControlInfo | None:
    c = trial.get("control")
    if not c:
        return None
    return {"file": c["file"], "sha256": c["sha256"], "layers": list(c["layers"]),
            "strength": float(c["strength"]), "n_embd": int(c["n_embd"])}  # fmt: skip


def sweep_info(trial: dict[str, Any]) -> P.SweepInfo | None:
    s = trial.get("sweep")
    if not s:
        return None
    return {"id": str(s["id"]), "strength": float(s["strength"]), "baseline": int(s["baseline"])}
