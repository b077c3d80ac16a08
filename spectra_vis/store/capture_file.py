"""Schema/store stage: the capture format v2, defined once by the JSON Schema file beside
this package, and the ``Capture`` object that writes (atomically, with orjson) and reads it.

Files of the original tool (version "1.0", tensors keyed by memory address) load read-only.
Depends on ``collector`` only to build a Capture from one; imports no UI package.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from typing_extensions import TypedDict

from spectra_vis.errors import CaptureError, InvalidArgument, NotFound
from spectra_vis.record.hooks import hook_names as tl_hook_names
from spectra_vis.record.stats import STAT_NAMES
from spectra_vis.store import index_file, lazy, vectors
from spectra_vis.store.files import atomic_write
from spectra_vis.store.scan import TrialLayout, dumps_with_layout, scan

FORMAT = "spectra-vis-capture"
VERSION = "2.3"
# 2.1: activation vectors (a companion file); 2.2: pairs of trials; 2.3: steering (control, sweep, projection)
READABLE_VERSIONS = ("2.0", "2.1", "2.2", "2.3")
LEGACY_VERSION = "1.0"
SCHEMA_FILE = "capture-v2.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    """The capture JSON Schema (draft 2020-12) shipped in the package."""
    text = resources.files("spectra_vis.store").joinpath("schema", SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


@functools.cache
def _fast_validator() -> Any:
    """jsonschema-rs when installed: a 50 MB capture validates in ~0.1 s instead of ~30 s."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft202012Validator(schema())


def validate(data: dict[str, Any]) -> None:
    """Raise CaptureError naming the first schema violation, if any."""
    fast = _fast_validator()
    if fast is not None:
        error = next(iter(fast.iter_errors(data)), None)
        path, message = (list(error.instance_path), error.message) if error is not None else ([], "")
    else:
        error = next(iter(_validator().iter_errors(data)), None)
        path, message = (list(error.absolute_path), error.message) if error is not None else ([], "")
    if error is not None:
        where = "/".join(str(p) for p in path) or "(top level)"
        raise CaptureError(f"capture does not match format v{data.get('version', VERSION)} at {where}: {message[:200]}")


def tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("spectra-vis")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0.0.0+source"


# Run after every ``Capture.save`` (with ``index=True``), with the capture, the file written and
# where each step lies in it (known while writing, no scan nor parse of the file): a later stage
# registers here (``analysis.digest`` writes the index file and the per-trial digest beside the
# capture, from the capture in memory). A hook returns a notice or None and does not raise.
SAVED: list[Callable[[Capture, Path, list[TrialLayout]], str | None]] = []


class CaptureSummary(TypedDict):
    """What ``Capture.summary`` gives: the numbers a file list or a header shows."""

    version: str
    legacy: bool
    model: dict[str, Any]
    preset: str
    trials: int
    unique_tensors: int
    captured_tensors: int
    steps: int
    tokens: int


def is_legacy_file(data: dict[str, Any]) -> bool:
    """Whether a parsed capture file is version 1.0 (read-only; converted on load). The one rule:
    a loaded ``Capture`` says it with ``.legacy``."""
    return str(data.get("version")) == LEGACY_VERSION and "tensor_order" in data


def trial_of(doc: dict[str, Any], trial_id: int) -> dict[str, Any]:
    """Trial ``trial_id`` of a capture document, or NotFound naming the ids there are."""
    trials = doc["trials"]
    if not 0 <= trial_id < len(trials):
        have = f"ids 0..{len(trials) - 1}" if trials else "none"
        raise NotFound(f"no trial {trial_id}; this capture has {len(trials)} ({have})")
    return trials[trial_id]  # type: ignore[no-any-return]


class Capture:
    """A capture in memory: the JSON document plus accessors. ``legacy`` captures are read-only."""

    def __init__(
        self,
        data: dict[str, Any],
        path: Path | None = None,
        legacy: bool = False,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.data = data
        self.path = path
        self.legacy = legacy
        self.arrays = arrays or {}  # the activation vectors (store.vectors names); memory-mapped once loaded
        self.notices: list[str] = []  # what loading could not give, said once (e.g. a missing vectors file)
        self.layout: list[TrialLayout] | None = None  # lazy captures: where each step is in the file
        self.index: index_file.Index | None = None  # lazy captures: the index file read beside it, if any
        self.derived: dict[str, Any] = {}  # what later stages computed from the steps (analysis.digest)
        self._hook_map: tuple[int, int, dict[str, int]] | None = None  # (id, len) of the tensors, hook -> id

    # ----- construction ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        *,
        model: dict[str, Any],
        preset: dict[str, Any],
        options: dict[str, Any],
        tensors: list[dict[str, Any]],
        trials: list[dict[str, Any]],
        llama_cpp_python: str,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Capture:
        """A new capture document from its parts (``TensorCollector.to_capture`` gives them)."""
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "tool": {"name": "spectra-vis", "version": tool_version(), "llama_cpp_python": llama_cpp_python},
            "model": model,
            "preset": preset,
            "options": options,
            "stat_names": list(STAT_NAMES),
            "tensors": tensors,
            "trials": trials,
        }
        # One round trip makes the in-memory document exactly what a reader of the file gets.
        return cls(orjson.loads(_dumps(doc)), arrays=arrays)

    # ----- files ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The capture file's bytes (validated): what ``save`` writes."""
        return self._serialize()[0]

    def _serialize(self) -> tuple[bytes, list[TrialLayout]]:
        """``to_bytes`` and where each step lies in those bytes (``scan.dumps_with_layout``)."""
        if self.legacy:
            raise CaptureError("this is a version 1.0 capture, loaded read-only; it cannot be saved as v2")
        if any(isinstance(t["steps"], lazy.LazySteps) for t in self.data["trials"]):
            payload = _dumps(self.data)  # every step read back from the file it came from
            validate(orjson.loads(payload))
            return payload, scan(payload)
        validate(self.data)
        return dumps_with_layout(self.data, _dumps)

    def save(self, path: str | os.PathLike[str], index: bool = True) -> Path:
        """Validate and write atomically (temporary file in the same folder, then rename); the
        vectors, when there are any, first, into the companion file beside it. ``index``: then run
        the ``SAVED`` hooks (a later stage keeps the index file beside it, so that the first lazy
        load is fast); a hook that fails leaves a notice, never a failed save."""
        target = Path(path).expanduser()
        if self.arrays:
            name = vectors.companion_name(target)
            digest = vectors.write(target.with_name(name), self.arrays)
            self.data["vectors"] = self._vector_index(name, digest)
        payload, layout = self._serialize()
        atomic_write(target, payload)
        self.path = target
        for hook in SAVED if index else ():
            notice = hook(self, target, layout)
            if notice and notice not in self.notices:
                self.notices.append(notice)
        return target

    def _vector_index(self, name: str, digest: str) -> dict[str, Any]:
        arrays = {}
        for key, arr in self.arrays.items():
            ids = vectors.rows_of(key)
            if ids is not None:
                arrays[key] = {"trial": ids[0], "tensor": ids[1], "shape": list(arr.shape)}
        return {
            "file": name,
            "sha256": digest,
            "dtype": self.data["preset"].get("vector_dtype", "f16"),
            "bytes": int(sum(a.nbytes for a in self.arrays.values())),
            "arrays": arrays,
        }

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], max_bytes: int | None = None, vectors: bool = True, lazy: bool = False
    ) -> Capture:
        """Read and validate a capture file; ``vectors``: also memory-map its companion file beside it.
        ``lazy``: parse everything but the steps, and each step when it is first used (``store.lazy``:
        for large captures; a corrupt step is an error naming it when it is read, not on load)."""
        p = Path(path)
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise CaptureError(f"capture file not found: {p}") from None
        if p.is_dir():
            raise CaptureError(f"{p} is a directory, not a capture file")
        if max_bytes is not None and size > max_bytes:
            raise CaptureError(f"{p.name} is {size} bytes, over the limit of {max_bytes}")
        capture = cls._open_lazy(p) if lazy else cls.from_bytes(p.read_bytes(), name=p.name)
        capture.path = p
        if vectors:
            capture.attach_vectors(p.parent, max_bytes)
        return capture

    @classmethod
    def _open_lazy(cls, p: Path) -> Capture:
        notices: list[str] = []
        doc, layout, index, steps = lazy.open_document(p, notices)
        capture = cls._from_document(doc, p.name)
        if capture.legacy:
            return capture
        if len(layout) != len(doc["trials"]):
            raise CaptureError(f"{p.name}: found {len(layout)} trials' steps for {len(doc['trials'])} trials")
        for trial, trial_steps in zip(doc["trials"], steps, strict=True):
            trial["steps"] = trial_steps
        capture.layout, capture.index = layout, index
        capture.notices += notices
        return capture

    def vectors_file(self) -> str | None:
        """The companion file's name the capture gives (a bare file name), or None."""
        index = self.data.get("vectors")
        if not index:
            return None
        name = str(index["file"])
        if Path(name).name != name or name in ("", ".", ".."):
            raise CaptureError(f"the capture names its vectors file {name!r}: only a file name beside it is allowed")
        return name

    def attach_vectors(self, folder: Path, max_bytes: int | None = None) -> None:
        """Memory-map the companion file the capture names, from ``folder``. A missing file is a
        notice (the statistics are all there); one that does not match is a CaptureError."""
        name = self.vectors_file()
        if name is None:
            return
        index = self.data["vectors"]
        companion = folder / name
        if not companion.is_file():
            self.notices.append(f"vectors file {name} is missing: statistics only (put it beside the capture)")
            return
        if max_bytes is not None and companion.stat().st_size > max_bytes:
            raise CaptureError(f"{name} is {companion.stat().st_size} bytes, over the limit of {max_bytes}")
        self.arrays = vectors.open_mapped(companion, index)

    @classmethod
    def from_bytes(cls, raw: bytes, name: str = "capture") -> Capture:
        if not raw.strip():
            raise CaptureError(f"{name} is empty")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            hint = "the file looks truncated" if "unexpected end" in str(exc).lower() or "EOF" in str(exc) else ""
            raise CaptureError(f"{name} is not valid JSON ({exc}){'; ' + hint if hint else ''}") from None
        return cls._from_document(data, name)

    @classmethod
    def _from_document(cls, data: Any, name: str) -> Capture:
        if not isinstance(data, dict):
            raise CaptureError(f"{name} is JSON but not a capture (top level is not an object)")
        if is_legacy_file(data):
            return cls(_from_legacy(data, name), legacy=True)
        if data.get("format") != FORMAT:
            raise CaptureError(f"{name} is not a Spectra Vis capture (no 'format': '{FORMAT}')")
        if data.get("version") not in READABLE_VERSIONS:
            known = ", ".join(READABLE_VERSIONS)
            raise CaptureError(f"{name} has capture version {data.get('version')!r}; this reader knows {known}")
        validate(data)
        return cls(data)

    # ----- accessors ------------------------------------------------------------------
    @property
    def model(self) -> dict[str, Any]:
        return dict(self.data["model"])

    @property
    def tensors(self) -> list[dict[str, Any]]:
        return list(self.data["tensors"])

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.data["trials"])

    def trial(self, trial_id: int) -> dict[str, Any]:
        return dict(trial_of(self.data, trial_id))

    # ----- activation vectors -----------------------------------------------------------
    def hook_names(self, trial_id: int = 0) -> list[str]:
        """The TransformerLens hook names of the vectors this capture holds for a trial."""
        trial_of(self.data, trial_id)
        held = self.vector_tensors(trial_id)
        return [name for name, tid in self._hooks().items() if tid in held]

    def _hooks(self) -> dict[str, int]:
        """TransformerLens hook name -> tensor id, kept while the tensor catalogue stays the same list."""
        tensors = self.data["tensors"]
        kept = self._hook_map
        if kept is None or kept[0] != id(tensors) or kept[1] != len(tensors):
            kept = self._hook_map = (id(tensors), len(tensors), tl_hook_names(tensors))
        return kept[2]

    def vectors(self, trial_id: int, name: str, first: int | None = None) -> np.ndarray:
        """The rows of one tensor over the trial, ``(n_tokens, width)`` float32 in token order, by
        TransformerLens hook name (``blocks.5.hook_resid_post``) or capture key (``l_out-5``). Rows
        llama.cpp never computed are NaN: the last sampled token, and in the last layer the prompt
        tokens before the last (llama.cpp evaluates only the rows it outputs there). ``first``: only
        the rows of the first ``first`` token positions (what ``[:first]`` of the whole would give)."""
        trial = trial_of(self.data, trial_id)
        if not self.arrays:
            why = self.notices[0] if self.notices else "it was captured without vectors (preset observe, or vectors=[])"
            raise NotFound(f"this capture holds no vectors: {why}")
        by_hook = self._hooks()
        tid = by_hook.get(name)
        if tid is None:
            tid = next((t["id"] for t in self.data["tensors"] if t["key"] == name), None)
        key = vectors.array_name(trial_id, tid) if tid is not None else ""
        if tid is None or key not in self.arrays:
            held = self.vector_tensors(trial_id)
            names = [n for n, i in by_hook.items() if i in held]
            names = names or [t["key"] for t in self.data["tensors"] if t["id"] in held]
            raise NotFound(f"no vectors {name!r} in trial {trial_id}; available: {', '.join(names[:40]) or 'none'}")
        rows, pos = self.arrays[key], np.asarray(self.arrays[f"{key}.pos"])
        scale = np.asarray(self.arrays[f"{key}.scale"], dtype=np.float32)
        n = len(trial["tokens"]["ids"]) if first is None else max(0, min(first, len(trial["tokens"]["ids"])))
        out = np.full((n, rows.shape[1]), np.nan, dtype=np.float32)
        inside = np.flatnonzero(pos < n)
        if len(inside) == len(pos):
            out[pos] = np.asarray(rows, dtype=np.float32) * scale[:, None]
        elif len(inside):
            out[pos[inside]] = np.asarray(rows[inside], dtype=np.float32) * scale[inside, None]
        return out

    def logit_lens(self, trial_id: int, layers: list[int] | None = None, k: int = 5) -> dict[str, Any]:
        """The trial's logit lens (``trials[].lens``): per layer and token position the top-k ids and
        probabilities, entropy, and the next token's rank and probability; ``layers`` picks rows."""
        trial = trial_of(self.data, trial_id)
        grid = trial.get("lens")
        if grid is None:
            why = self.data.get("options", {}).get("lens")
            if self.legacy:
                why = "a version 1.0 capture has no vectors"
            elif why is None:
                why = "the capture kept no residual-stream vectors (use preset standard or full)"
            raise NotFound(f"no logit lens for trial {trial_id}: {why}")
        if not 1 <= k <= grid["k"]:
            raise InvalidArgument(f"k must be 1..{grid['k']} (what the capture kept), not {k}")
        have = grid["layers"]
        chosen = have if layers is None else list(layers)
        missing = [L for L in chosen if L not in have]
        if missing:
            raise NotFound(f"no lens for layer(s) {missing}; the lens has layers {have[0]}..{have[-1]}")
        rows = [have.index(L) for L in chosen]

        def cut(cells: list[Any]) -> list[Any]:
            return [None if c is None else c[:k] for c in cells]

        return {
            "k": k,
            "layers": chosen,
            "vocab": grid.get("vocab", {}),
            "ids": [cut(grid["ids"][i]) for i in rows],
            "p": [cut(grid["p"][i]) for i in rows],
            **{key: [grid[key][i] for i in rows] for key in ("entropy", "next_rank", "next_p")},
        }

    def vector_tensors(self, trial_id: int) -> set[int]:
        """Ids of the tensors whose rows the capture holds for a trial."""
        return {ids[1] for k in self.arrays if (ids := vectors.rows_of(k)) is not None and ids[0] == trial_id}

    def tensor_ids(self, **where: Any) -> list[int]:
        """Ids of tensors whose fields equal the given values, e.g. tensor_ids(type="l_out")."""
        return [t["id"] for t in self.data["tensors"] if all(t.get(k) == v for k, v in where.items())]

    def stat(self, step: dict[str, Any], tensor_id: int, stat: str = "l2") -> float | None:
        values = step["stats"].get(str(tensor_id))
        return None if values is None else values[self.data["stat_names"].index(stat)]

    def layer_table(self, trial_id: int = 0, tensor_type: str = "l_out", stat: str = "l2") -> dict[int, float]:
        """layer -> stat of ``tensor_type`` at the trial's first (prefill) step."""
        step = self.trial(trial_id)["steps"][0]
        out = {}
        for t in self.data["tensors"]:
            if t["type"] == tensor_type:
                value = self.stat(step, t["id"], stat)
                if value is not None:
                    out[t["layer"]] = value
        return dict(sorted(out.items()))

    def summary(self) -> CaptureSummary:
        trials = self.data["trials"]
        return {
            "version": self.data["version"],
            "legacy": self.legacy,
            "model": self.data["model"],
            "preset": self.data["preset"]["name"],
            "trials": len(trials),
            "unique_tensors": len(self.data["tensors"]),
            "captured_tensors": sum(1 for t in self.data["tensors"] if t["captured"]),
            "steps": sum(len(t["steps"]) for t in trials),
            "tokens": sum(len(t["tokens"]["ids"]) for t in trials),
        }


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, default=lazy.steps_list, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def blank_card(file_name: str, family: str, name: str, n_layer: int) -> dict[str, Any]:
    """A model card with what is known; zeros and "unknown" for what the GGUF would have said."""
    return {
        "file_name": file_name,
        "file_size": 0,
        "architecture": "unknown",
        "family": family,
        "name": name,
        "n_layer": n_layer,
        "n_head": 0,
        "n_head_kv": 0,
        "n_embd": 0,
        "n_ctx_train": 0,
        "n_vocab": 0,
        "file_type": "unknown",
    }


def _from_legacy(old: dict[str, Any], name: str) -> dict[str, Any]:
    """A v1.0 file (tensor addresses and counts only) as a read-only v2 document."""
    try:
        order = [str(a) for a in old.get("tensor_order", [])]
        index = {addr: i for i, addr in enumerate(order)}
        tensors = [_legacy_tensor(i, addr) for i, addr in enumerate(order)]
        trials = []
        for i, t in enumerate(old.get("trials", [])):
            for addr in t.get("tensor_counts", {}):
                if addr not in index:
                    index[addr] = len(tensors)
                    tensors.append(_legacy_tensor(len(tensors), addr))
            trials.append(_legacy_trial(i, t, index))
        for t in trials:
            t["counts"] += [0] * (len(tensors) - len(t["counts"]))
    except (AttributeError, TypeError, ValueError) as exc:
        raise CaptureError(f"{name} looks like a version 1.0 capture but is malformed ({exc})") from None
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": str(old.get("created", "")),
        "tool": {"name": str(old.get("tool", "Spectra Vis 1.0")), "version": LEGACY_VERSION, "llama_cpp_python": "?"},
        "model": blank_card("unknown", str(old.get("model_family", "generic")), "unknown (version 1.0 capture)", 0),
        "preset": {"name": "observe", "patterns": [], "categories": [], "top_k": 1, "full_attention": False},
        "options": {"legacy_source": "1.0"},
        "stat_names": list(STAT_NAMES),
        "tensors": tensors,
        "trials": trials,
    }


def _legacy_tensor(i: int, addr: str) -> dict[str, Any]:
    return {
        "id": i,
        "key": addr,
        "name": addr,
        "op": "unknown",
        "dtype": "unknown",
        "shape": [],
        "layer": -1,
        "type": "other",
        "category": "other",
        "depth": 4,
        "order": i,
        "view": False,
        "captured": False,
    }


def _legacy_trial(i: int, t: dict[str, Any], index: dict[str, int]) -> dict[str, Any]:
    counts = [0] * len(index)
    for addr, n in t.get("tensor_counts", {}).items():
        counts[index[addr]] = int(n)
    ms = float(t.get("inference_time_ms", 0.0))
    return {
        "id": int(t.get("trial_id", i)),
        "prompt": str(t.get("prompt", "")),
        "response": str(t.get("response", "")),
        "tokens": {"ids": [], "texts": [], "n_prompt": 0},
        "timings": {"total_ms": ms},
        "counts": counts,
        "interrupted": False,
        "errors": [],
        "steps": [],
    }


def load_capture(path: str | os.PathLike[str]) -> Capture:
    """Load a capture file (v2, or v1.0 read-only); raises CaptureError with a one-line reason."""
    return Capture.load(path)
