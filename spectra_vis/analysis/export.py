"""Analysis stage: a trial's activation vectors as one numpy (``.npz``) or safetensors file, under
TransformerLens hook names (capture keys where no hook corresponds), for use without Spectra Vis.

    spectra-vis export CAPTURE.json --trial N --format npz|safetensors --out FILE

Each array is ``[n_tokens, width]`` float32 in token order, NaN where llama.cpp computed no row.
Beside them: ``token_ids`` (int64) and, as metadata, the token texts, the model card and the names.
In an ``.npz`` the metadata is the JSON string array ``__metadata__``; in safetensors, its header's
``__metadata__`` (``tokens``, ``model``, ``names``, each a JSON string).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from spectra_vis.errors import SpectraVisError
from spectra_vis.record.hooks import hook_names
from spectra_vis.store.capture_file import Capture, atomic_write, load_capture, trial_of

FORMATS = ("npz", "safetensors")


def trial_arrays(cap: Capture, trial_id: int) -> dict[str, np.ndarray]:
    """The trial's vectors by hook name (or capture key), in token order."""
    trial_of(cap.data, trial_id)
    held = sorted(cap.vector_tensors(trial_id))
    if not held:
        why = cap.notices[0] if cap.notices else "it holds no vectors (captured with preset observe, or vectors=[])"
        raise SpectraVisError(f"nothing to export from trial {trial_id}: {why}")
    keys = {t["id"]: t["key"] for t in cap.data["tensors"]}
    named = {name: tid for name, tid in hook_names(cap.data["tensors"]).items() if tid in held}
    names = {**named, **{keys[tid]: tid for tid in held if tid not in named.values()}}  # keys: no hook
    return {name: cap.vectors(trial_id, keys[tid]) for name, tid in names.items()}


def export_vectors(cap: Capture, trial_id: int, fmt: str) -> bytes:
    """The file's bytes: the vectors, ``token_ids``, and the metadata (texts, model card, names)."""
    if fmt not in FORMATS:
        raise SpectraVisError(f"unknown export format {fmt!r}; choose npz or safetensors")
    arrays = trial_arrays(cap, trial_id)
    trial = cap.data["trials"][trial_id]
    meta = {
        "tokens": json.dumps(trial["tokens"]["texts"]),
        "model": json.dumps(cap.data["model"]),
        "names": json.dumps(list(arrays)),
    }
    out = {**arrays, "token_ids": np.asarray(trial["tokens"]["ids"], dtype=np.int64)}
    if fmt == "safetensors":
        from safetensors.numpy import save

        return bytes(save(out, metadata=meta))
    buf = io.BytesIO()
    np.savez(buf, **{**out, "__metadata__": np.array([json.dumps(meta)])})  # type: ignore[arg-type]
    return buf.getvalue()


def main(argv: list[str] | None = None, prog: str = "spectra-vis export") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Write a trial's activation vectors to a file.")
    parser.add_argument("capture", help="capture JSON file (its .vectors.safetensors beside it)")
    parser.add_argument("--trial", type=int, default=0, help="trial id (default 0)")
    parser.add_argument("--format", choices=FORMATS, default="npz", help="npz (numpy) or safetensors")
    parser.add_argument("--out", help="file to write (default: CAPTURE_trialN.FORMAT beside the capture)")
    args = parser.parse_args(argv)
    src = Path(args.capture)
    out = Path(args.out or src.with_name(f"{src.stem}_trial{args.trial}.{args.format}"))
    try:
        cap = load_capture(src)
        atomic_write(out, export_vectors(cap, args.trial, args.format))
    except SpectraVisError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
