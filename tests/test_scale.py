"""Large captures (issue 14): steps read one at a time from the file, an index file beside it, the
per-trial digest, corrupt steps and indexes, paging of the interpretation. Real captures of a tiny
llama run by llama.cpp; every number is checked against the capture parsed whole (the reference)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from spectra_vis import analysis
from spectra_vis.analysis import digest as D
from spectra_vis.analysis import interpret as I
from spectra_vis.errors import CaptureError
from spectra_vis.store import index_file, lazy
from spectra_vis.store.capture_file import Capture
from spectra_vis.store.scan import scan

TRICKY = 'He said "}]{[" and \\ then "a\\"b" ok'  # brackets, quotes and backslashes inside strings


@pytest.fixture(scope="module")
def long_path(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two trials of 24 generated tokens (standard preset), one prompt full of JSON punctuation."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("scale") / "scale.json"
    capture(tiny_llama, [TRICKY, "Once upon a time"], preset="standard", max_tokens=24, out=out, n_ctx=256, chat=False)
    return out


def copy_of(path: Path, folder: Path) -> Path:
    for f in path.parent.glob(path.stem + ".*"):
        if not f.name.endswith(".index.safetensors"):
            shutil.copy(f, folder / f.name)
    return folder / path.name


def test_scan_finds_every_step_and_lens(long_path: Path) -> None:
    raw = long_path.read_bytes()
    whole = orjson.loads(raw)
    layout = scan(raw)
    assert len(layout) == len(whole["trials"]) == 2
    for trial, lay in zip(whole["trials"], layout, strict=True):
        assert [orjson.loads(raw[a:b]) for a, b in lay.step_spans] == trial["steps"]
        assert orjson.loads(raw[slice(*lay.steps)]) == trial["steps"]
        assert lay.lens is not None and orjson.loads(raw[slice(*lay.lens)]) == trial["lens"]


def test_scan_reads_any_json_layout(long_path: Path) -> None:
    """Whitespace, other key orders and escapes: the scan follows the JSON, not this writer's bytes."""
    whole = orjson.loads(long_path.read_bytes())
    whole["trials"] = [dict(reversed(list(t.items()))) for t in whole["trials"]]
    raw = json.dumps(whole, indent=1).encode()
    for lay, trial in zip(scan(raw), whole["trials"], strict=True):
        assert [json.loads(raw[a:b]) for a, b in lay.step_spans] == trial["steps"]


def test_scan_says_a_truncated_file_is_truncated(long_path: Path) -> None:
    raw = long_path.read_bytes()
    with pytest.raises(CaptureError, match="truncated"):
        scan(raw[: len(raw) // 2])


def test_lazy_load_parses_no_step_until_asked(long_path: Path, tmp_path: Path) -> None:
    path = copy_of(long_path, tmp_path)
    cap = Capture.load(path, lazy=True)
    ref = Capture.load(path)
    steps = cap.data["trials"][0]["steps"]
    assert isinstance(steps, lazy.LazySteps) and steps.file.parsed == 0
    assert len(steps) == len(ref.data["trials"][0]["steps"])
    assert steps[5] == ref.data["trials"][0]["steps"][5]
    assert steps.file.parsed == 1
    assert steps[-1] == ref.data["trials"][0]["steps"][-1] and steps.file.parsed == 2
    assert cap.data["trials"][0]["lens"] == ref.data["trials"][0]["lens"]
    assert cap.summary() == ref.summary()


def test_parsed_steps_kept_are_bounded(long_path: Path, tmp_path: Path) -> None:
    """Reading every step keeps at most KEEP of them: memory follows what is asked, not the file."""
    cap = Capture.load(copy_of(long_path, tmp_path), lazy=True)
    steps = cap.data["trials"][1]["steps"]
    assert len(steps) > lazy.KEEP
    assert sum(1 for _ in steps) == len(steps)
    assert len(steps._kept) == lazy.KEEP
    kept_bytes = sum(len(orjson.dumps(s)) for s in steps._kept.values())
    assert kept_bytes <= lazy.KEEP * max(b - a for a, b in steps.spans)


def test_lazy_capture_saves_the_same_document(long_path: Path, tmp_path: Path) -> None:
    cap = Capture.load(copy_of(long_path, tmp_path), lazy=True)
    out = cap.save(tmp_path / "again.json")
    assert orjson.loads(out.read_bytes())["trials"] == orjson.loads(long_path.read_bytes())["trials"]


def _reference_heatmap(doc: dict[str, Any], trial_id: int, stat: int, tensor_type: str) -> dict[int, list[Any]]:
    """Layer -> per token the first finite value of the type's tensors, step after step."""
    trial = doc["trials"][trial_id]
    n = len(trial["tokens"]["ids"])
    out: dict[int, list[Any]] = {}
    tensors = [t for t in doc["tensors"] if t["type"] == tensor_type]
    for st in trial["steps"]:
        for t in tensors:
            key = str(t["id"])
            if st["rows"].get(key):
                pairs = [(st["pos"] + r, row) for r, row in enumerate(st["rows"][key])]
            elif key in st["stats"] and st["n_tokens"] == 1:
                pairs = [(st["pos"], st["stats"][key])]
            elif key in st["stats"] and (len(t["shape"]) == 1 or t["shape"][0] == 1):
                pairs = [(st["pos"] + st["n_tokens"] - 1, st["stats"][key])]
            else:
                pairs = []
            for pos, values in pairs:
                v = values[stat]
                if v is not None and math.isfinite(v) and pos < n:
                    row = out.setdefault(t["layer"], [None] * n)
                    if row[pos] is None:
                        row[pos] = v
    return out


def test_digest_heatmap_and_trial_match_the_whole_document(long_path: Path, tmp_path: Path) -> None:
    path = copy_of(long_path, tmp_path)
    cap = Capture.load(path, lazy=True)
    doc = orjson.loads(path.read_bytes())
    for trial_id in (0, 1):
        for metric in ("l2", "absmax"):
            got = analysis.heatmap(cap, trial_id, metric, "tokens", tensor_type="l_out")
            want = _reference_heatmap(doc, trial_id, doc["stat_names"].index(metric), "l_out")
            assert got["rows"] == sorted(want)
            assert got["values"] == [want[L] for L in sorted(want)]
        detail = analysis.trial_detail(cap, trial_id)
        steps = doc["trials"][trial_id]["steps"]
        assert [s["index"] for s in detail["steps"]] == [s["index"] for s in steps]
        assert [s["n_stats"] for s in detail["steps"]] == [len(s["stats"]) for s in steps]
        assert [s["next_token"]["id"] for s in detail["steps"]] == [s["logits"]["ids"][0] for s in steps]


def test_digest_zones_and_states_match_the_one_row_functions(long_path: Path, tmp_path: Path) -> None:
    """Zones recomputed here with the scalar fingerprint and periodicity; states and delta with the
    whole trial's ``cognitive_states`` on the document parsed whole."""
    path = copy_of(long_path, tmp_path)
    cap = Capture.load(path, lazy=True)
    doc = orjson.loads(path.read_bytes())
    layers = I.attention_tensors(doc)
    want = []
    for st in doc["trials"][1]["steps"]:
        for r in range(st["n_tokens"]):
            q = st["pos"] + r
            fps, rips = [], []
            for L in sorted(layers):
                att = st["attention"][str(layers[L])]
                per = [
                    (I.fingerprint(att["pos"][h][r], att["p"][h][r], q, att["entropy"][h][r], att["n_kv"]),
                     I.periodicity(att["pos"][h][r], att["p"][h][r], q))
                    for h in range(len(att["pos"]))
                ]  # fmt: skip
                fps.append(np.round(np.mean([f for f, _ in per], axis=0), 6))
                rips.append(round(float(np.mean([p for _, p in per])), 6))
            want.append(I.zone(np.mean(fps, axis=0), float(np.mean(rips))))
    got = analysis.interpretation(cap, 1)
    assert [z["zone"] for z in got["zones"]] == want
    states = I.cognitive_states(doc, 1)
    assert [s["label"] for s in got["states"]] == [s["label"] for s in states]
    for s, ref in zip(got["states"], states, strict=True):
        assert {str(e["id"]): e["value"] for e in s["delta"]} == ref["delta"]


def test_interpretation_pages(long_path: Path, tmp_path: Path) -> None:
    cap = Capture.load(copy_of(long_path, tmp_path), lazy=True)
    whole = analysis.interpretation(cap, 0)
    n = whole["n_steps"]
    pages = [analysis.interpretation(cap, 0, start=a, stop=a + 5) for a in range(0, n, 5)]
    assert [s for p in pages for s in p["states"]] == whole["states"]
    assert [z for p in pages for z in p["zones"]] == whole["zones"]
    assert all(p["zone_distribution"] == whole["zone_distribution"] for p in pages)
    light = analysis.interpretation(cap, 0, delta=False)
    assert all(s["delta"] == [] for s in light["states"]) and any(s["delta"] for s in whole["states"])
    assert len(orjson.dumps(light)) < len(orjson.dumps(whole))


def test_index_file_is_written_then_used(long_path: Path, tmp_path: Path) -> None:
    path = copy_of(long_path, tmp_path)
    first = Capture.load(path, lazy=True)
    D.prepare(first)
    index_path = path.with_name(index_file.index_name(path))
    assert index_path.is_file() and first.index is not None
    again = Capture.load(path, lazy=True)
    assert again.index is not None and again.notices == []
    D.prepare(again)
    steps = again.data["trials"][0]["steps"]
    assert steps.file.parsed == 0  # the digest came from the index: no step read
    assert analysis.heatmap(again, 0, "l2", "tokens") == analysis.heatmap(first, 0, "l2", "tokens")
    assert analysis.interpretation(again, 1) == analysis.interpretation(first, 1)


def test_corrupt_or_stale_index_is_named_and_rebuilt(long_path: Path, tmp_path: Path) -> None:
    path = copy_of(long_path, tmp_path)
    D.prepare(Capture.load(path, lazy=True))
    index_path = path.with_name(index_file.index_name(path))
    index_path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    cap = Capture.load(path, lazy=True)
    assert any(index_path.name in n and "corrupt" in n for n in cap.notices)
    D.prepare(cap)
    assert index_file.read(path) is not None  # rebuilt
    ref = Capture.load(path)
    assert cap.data["trials"][1]["steps"][3] == ref.data["trials"][1]["steps"][3]
    path.write_bytes(path.read_bytes() + b"\n")  # another version of the capture: the index is stale
    stale = Capture.load(path, lazy=True)
    assert any("another version" in n for n in stale.notices)
    assert stale.data["trials"][1]["steps"][3] == ref.data["trials"][1]["steps"][3]


def test_interrupted_index_write_keeps_the_previous_one(long_path: Path, tmp_path: Path, monkeypatch: Any) -> None:
    import safetensors.numpy

    path = copy_of(long_path, tmp_path)
    D.prepare(Capture.load(path, lazy=True))
    index_path = path.with_name(index_file.index_name(path))
    before = index_path.read_bytes()

    def half(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"half an index")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.numpy, "save_file", half)
    cap = Capture.load(path, lazy=True)
    with pytest.raises(KeyboardInterrupt):
        index_file.write(path, cap.layout or [], {}, {})
    assert index_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _corrupt_step(path: Path, trial: int, step: int) -> None:
    """Damage one step's bytes inside (brackets stay balanced): its phase is no longer a phase."""
    raw = bytearray(path.read_bytes())
    a, b = scan(bytes(raw))[trial].step_spans[step]
    chunk = bytes(raw[a:b])
    i = chunk.index(b'"phase":"decode"')
    raw[a + i : a + i + len(b'"phase":"decode"')] = b'"phase":"de#ode"'
    path.write_bytes(bytes(raw))


def test_a_corrupt_step_is_named_and_the_rest_stays_readable(long_path: Path, tmp_path: Path) -> None:
    path = copy_of(long_path, tmp_path)
    _corrupt_step(path, 1, 7)
    cap = Capture.load(path, lazy=True)
    steps = cap.data["trials"][1]["steps"]
    with pytest.raises(CaptureError, match=r"trial 1 step 7 does not match") as err:
        steps[7]
    assert "\n" not in str(err.value)
    assert steps[8]["index"] == 8 and cap.data["trials"][0]["steps"][7]["index"] == 7
    D.prepare(cap)
    assert any("trial 1 step 7" in n for n in cap.notices)
    detail = analysis.trial_detail(cap, 1)
    assert detail["steps"][7]["n_tokens"] == 0 and detail["steps"][8]["n_tokens"] == 1
    assert analysis.heatmap(cap, 1, "l2", "tokens")["rows"]


def test_corrupt_step_over_http(long_path: Path, tmp_path: Path) -> None:
    from backend.server import create_app
    from tests.test_backend import serve

    path = copy_of(long_path, tmp_path)
    _corrupt_step(path, 0, 4)
    with serve(create_app(tmp_path)) as client:
        r = client.post("/api/load", json={"filepath": path.name})
        assert r.status_code == 200, r.text
        assert any("trial 0 step 4" in n for n in r.json()["notices"])
        bad = client.get("/api/trials/0/steps/4")
        assert bad.status_code == 422 and "trial 0 step 4" in bad.json()["error"]
        assert client.get("/api/trials/0/steps/5").json()["index"] == 5
        hm = client.get("/api/heatmap", params={"trial_id": 0, "axis": "tokens"}).json()
        assert hm["rows"]
        again = client.get("/api/trials/0/interpretation", params={"start": 2, "stop": 6, "delta": False}).json()
        n_steps = len(orjson.loads(path.read_bytes())["trials"][0]["steps"])
        assert [s["step"] for s in again["states"]] == [2, 3, 4, 5] and again["n_steps"] == n_steps


def test_older_versions_load_lazily(long_path: Path, tmp_path: Path) -> None:
    doc = orjson.loads(long_path.read_bytes())
    for version in ("2.0", "2.1", "2.2"):
        old = {**doc, "version": version}
        old.pop("vectors", None)
        for t in old["trials"]:
            t.pop("lens", None)
        path = tmp_path / f"v{version}.json"
        path.write_bytes(orjson.dumps(old))
        cap = Capture.load(path, lazy=True)
        assert cap.data["version"] == version
        assert cap.data["trials"][0]["steps"][2] == doc["trials"][0]["steps"][2]
        assert analysis.heatmap(cap, 0, "l2", "tokens")["rows"]


def test_whole_trial_attention_from_the_digest_equals_step_by_step(long_path: Path, tmp_path: Path) -> None:
    """The whole trial's attention of a layer comes from the digest's columns, without reading a
    step; it must be the steps' own answers, put together."""
    cap = Capture.load(copy_of(long_path, tmp_path), lazy=True)
    D.prepare(cap)
    layers = sorted(I.attention_tensors(cap.data))
    steps = cap.data["trials"][0]["steps"]
    for layer, head in ((layers[0], None), (layers[-1], 1)):
        before = steps.file.parsed
        whole = analysis.attention(cap, 0, None, layer, head)
        assert steps.file.parsed == before
        by_step = [t for s in range(len(steps)) for t in analysis.attention(cap, 0, s, layer, head)["tokens"]]
        assert whole["tokens"] == by_step and len(by_step) == len(cap.data["trials"][0]["tokens"]["ids"]) - 1


def test_who_attends_to_a_token(long_path: Path, tmp_path: Path) -> None:
    """``target``: the edges pointing at one position, from the whole trial, as the full answer has them."""
    cap = Capture.load(copy_of(long_path, tmp_path), lazy=True)
    layer = sorted(I.attention_tensors(cap.data))[1]
    whole = analysis.attention(cap, 1, None, layer)["tokens"]
    for target, head in ((3, None), (0, 2)):
        got = analysis.attention(cap, 1, None, layer, head, target=target)["tokens"]
        want = []
        for t in analysis.attention(cap, 1, None, layer, head)["tokens"]:
            edges = [e for e in t["layers"][0]["edges"] if e["pos"] == target]
            if edges:
                want.append({**t, "layers": [{**t["layers"][0], "edges": edges}]})
        assert got == want and got
    assert len(whole) > len(got)


@pytest.mark.parametrize("chunk", [32, 3])
def test_compare_of_a_lazy_capture_reads_the_digest_and_equals_the_eager_one(
    long_path: Path, tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison's statistics come from the digest's columns: no step is parsed, and every number
    (statistics, residual L2 changes, vectors) equals the comparison of the capture parsed whole, read
    in chunks of cells or not."""
    from spectra_vis import comparing
    from spectra_vis.comparing import compare

    monkeypatch.setattr(comparing, "CELL_CHUNK", chunk)

    path = copy_of(long_path, tmp_path)
    eager = Capture.load(path)
    D.prepare(Capture.load(path, lazy=True))  # writes the index file
    cap = Capture.load(path, lazy=True)
    D.prepare(cap)
    files = {id(t["steps"].file) for t in cap.data["trials"]}
    parsed = lambda: sum(t["steps"].file.parsed for t in cap.data["trials"]) // len(files)  # noqa: E731
    assert parsed() == 0
    for a, b in [(0, 1), (1, 0), (0, 0)]:
        got = compare(cap, a, cap, b).to_dict()
        want = compare(eager, a, eager, b).to_dict()
        assert got == want
        assert any(v is not None for row in got["resid_l2_change"] for v in row) or a == b
        assert got["cosine"] is not None
    assert parsed() == 0


def test_a_capture_saved_by_this_tool_carries_its_index(long_path: Path, tmp_path: Path) -> None:
    """capture(out=...) wrote the index file and digest beside the capture: a load as the server's
    (lazy, then prepare) reads no step and leaves the index untouched, and every view's numbers equal
    those of an index built on the first load of a copy saved without one."""
    index_path = long_path.with_name(index_file.index_name(long_path))
    assert index_path.is_file()
    before = index_path.stat().st_mtime_ns, index_path.read_bytes()
    cap = Capture.load(long_path, vectors=False, lazy=True)
    assert cap.index is not None and cap.notices == []
    D.prepare(cap)
    assert cap.data["trials"][0]["steps"].file.parsed == 0
    assert (index_path.stat().st_mtime_ns, index_path.read_bytes()) == before
    other = Capture.load(copy_of(long_path, tmp_path), vectors=False, lazy=True)
    assert other.index is None
    D.prepare(other)  # built on first load, as for any capture saved without an index
    assert other.data["trials"][0]["steps"].file.parsed > 0
    for t in (0, 1):
        assert analysis.heatmap(cap, t, "l2", "tokens") == analysis.heatmap(other, t, "l2", "tokens")
        assert analysis.interpretation(cap, t) == analysis.interpretation(other, t)


def test_a_save_whose_index_cannot_be_written_succeeds_with_a_notice(
    long_path: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(index_file, "write", refuse)
    cap = Capture.load(long_path)
    out = cap.save(tmp_path / "saved.json")
    assert orjson.loads(out.read_bytes())["trials"] == orjson.loads(long_path.read_bytes())["trials"]
    assert not out.with_name(index_file.index_name(out)).exists()
    assert any("no index file written beside saved.json" in n and "disk full" in n for n in cap.notices)
    monkeypatch.undo()
    again = Capture.load(out, lazy=True)  # still loads; its index is built on first load
    D.prepare(again)
    assert again.index is not None


def test_the_server_uses_the_index_written_at_save_time(long_path: Path, tmp_path: Path) -> None:
    """Over HTTP: a capture saved with its index loads without rewriting it; one saved elsewhere
    (no index beside it) loads too, and the server writes its index on that first load."""
    from backend.server import create_app
    from tests.test_backend import serve

    for f in long_path.parent.glob(long_path.stem + ".*"):
        shutil.copy2(f, tmp_path / f.name)
    saved = tmp_path / long_path.name
    index_path = saved.with_name(index_file.index_name(saved))
    before = index_path.stat().st_mtime_ns, index_path.read_bytes()
    (tmp_path / "bare").mkdir()
    bare = copy_of(long_path, tmp_path / "bare")
    assert not bare.with_name(index_file.index_name(bare)).exists()
    with serve(create_app(tmp_path)) as client:
        r = client.post("/api/load", json={"filepath": saved.name})
        assert r.status_code == 200, r.text
        assert (index_path.stat().st_mtime_ns, index_path.read_bytes()) == before
        r = client.post("/api/load", json={"filepath": f"bare/{bare.name}"})
        assert r.status_code == 200, r.text
        assert bare.with_name(index_file.index_name(bare)).is_file()
        n_steps = sum(len(t["steps"]) for t in orjson.loads(saved.read_bytes())["trials"])
        assert r.json()["steps"] == n_steps


# ----- the index built fast: at save time from memory, on first load in runs of steps ---------------------


@pytest.fixture(scope="module")
def three_path(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three trials (standard preset: vectors and the logit lens), one prompt full of JSON punctuation."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("three") / "three.json"
    prompts = [TRICKY, "Once upon a time", "1, 2, 3, 4,"]
    capture(tiny_llama, prompts, preset="standard", max_tokens=10, out=out, n_ctx=256, chat=False)
    return out


def _index_contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array of the index beside ``path`` (copied out of the file) and its metadata, parsed."""
    from safetensors import safe_open

    index_path = path.with_name(index_file.index_name(path))
    with safe_open(str(index_path), framework="numpy") as f:
        arrays = {k: np.array(f.get_tensor(k)) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    return arrays, meta


def test_index_written_at_save_equals_the_one_a_load_builds(three_path: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """Capture.save writes the index from the capture in memory, without reading back (no parse,
    no load, no scan of the file written), and it is the index a load of the file alone builds,
    array for array; its step and lens ranges are those of the file written."""
    import spectra_vis.store.capture_file as capture_file_module

    cap = Capture.load(three_path)
    assert len(cap.data["trials"]) == 3 and cap.arrays and all(t.get("lens") for t in cap.data["trials"])
    calls = {"orjson.loads": 0, "Capture.load": 0, "scan": 0}
    real_loads, real_load, real_scan = orjson.loads, Capture.load.__func__, capture_file_module.scan  # type: ignore[attr-defined]

    def counting(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(orjson, "loads", counting("orjson.loads", real_loads))
    monkeypatch.setattr(lazy.orjson, "loads", counting("orjson.loads", real_loads))
    monkeypatch.setattr(Capture, "load", classmethod(counting("Capture.load", real_load)))
    monkeypatch.setattr(capture_file_module, "scan", counting("scan", real_scan))
    out = cap.save(tmp_path / "saved.json")
    assert calls == {"orjson.loads": 0, "Capture.load": 0, "scan": 0}
    monkeypatch.undo()
    assert cap.notices == []
    saved_arrays, saved_meta = _index_contents(out)

    raw = out.read_bytes()
    doc = orjson.loads(raw)
    layout = scan(raw)
    for i, trial in enumerate(doc["trials"]):
        spans = saved_arrays[f"t{i}.spans"]
        assert [tuple(s) for s in spans] == layout[i].step_spans
        assert [orjson.loads(raw[a:b]) for a, b in spans] == trial["steps"]
        a, b = saved_meta["index"]["trials"][i]["lens"]
        assert orjson.loads(raw[a:b]) == trial["lens"]

    out.with_name(index_file.index_name(out)).unlink()
    loaded = Capture.load(out, lazy=True)
    assert loaded.index is None
    D.prepare(loaded)
    assert loaded.data["trials"][0]["steps"].file.parsed > 0  # built from the file this time
    built_arrays, built_meta = _index_contents(out)
    assert sorted(built_arrays) == sorted(saved_arrays)
    for key, arr in saved_arrays.items():
        assert arr.dtype == built_arrays[key].dtype and np.array_equal(arr, built_arrays[key], equal_nan=True), key
    assert built_meta == saved_meta


def _walk(doc: dict[str, Any], trial_id: int, ids: list[int]) -> dict[str, Any]:
    """A trial's digest as a plain walk of its steps, one at a time (the reference)."""
    from spectra_vis.comparing import token_stats

    trial = doc["trials"][trial_id]
    n, width = len(trial["tokens"]["ids"]), len(doc["stat_names"])
    row = {t: i for i, t in enumerate(ids)}
    l2 = np.full((len(trial["steps"]), len(ids)), np.nan)
    sums, counts = np.zeros((len(ids), width)), np.zeros((len(ids), width), dtype=np.int64)
    tok = np.full((len(ids), width, n), np.nan)
    filled = np.zeros((len(ids), n), dtype=bool)
    layers = sorted(I.attention_tensors(doc))
    k, n_head = doc["preset"]["top_k"], len(next(iter(trial["steps"][0]["attention"].values()))["pos"])
    apos = np.full((len(layers), n, n_head, k), -1, dtype=np.int32)
    ap, aent = np.zeros(apos.shape), np.zeros(apos.shape[:3])
    akv = np.zeros(apos.shape[:2], dtype=np.int32)
    zones: list[list[Any]] = []
    for j, st in enumerate(trial["steps"]):
        for key, values in st["stats"].items():
            r = row.get(int(key))
            if r is None:
                continue
            v = np.array([math.nan if x is None else x for x in values], dtype=np.float64)
            l2[j, r] = v[0]
            sums[r] += np.where(np.isfinite(v), v, 0.0)
            counts[r] += np.isfinite(v)
            shape = doc["tensors"][int(key)]["shape"]
            if st["rows"].get(key):
                cells = [(st["pos"] + i, values) for i, values in enumerate(st["rows"][key])]
            elif st["n_tokens"] == 1:
                cells = [(st["pos"], values)]
            elif len(shape) == 1 or shape[0] == 1:
                cells = [(st["pos"] + st["n_tokens"] - 1, values)]
            else:
                cells = []
            for pos, cell in cells:
                if pos < n and not filled[r, pos]:
                    tok[r, :, pos] = [math.nan if x is None else x for x in cell]
                    filled[r, pos] = True
        for a, layer in enumerate(layers):
            att = st["attention"][str(I.attention_tensors(doc)[layer])]
            for h in range(n_head):
                for i in range(st["n_tokens"]):
                    q = st["pos"] + i
                    apos[a, q, h, : len(att["pos"][h][i])] = att["pos"][h][i]
                    ap[a, q, h, : len(att["p"][h][i])] = att["p"][h][i]
                    aent[a, q, h] = att["entropy"][h][i]
            akv[a, st["pos"] : st["pos"] + st["n_tokens"]] = att["n_kv"]
        zones += [[st["pos"] + r, j, z] for r, z in enumerate(I.step_zone_list(doc, st))]
    kinds = I.energy_types(doc)
    return {
        "ids": np.asarray(ids), "l2": l2, "sums": sums, "counts": counts, "tok": tok, "zones": zones,
        "states": [I.step_state(doc, st, kinds) for st in trial["steps"]],
        "columns": {"apos": apos, "ap": ap, "aent": aent, "akv": akv},
        "token_stats": token_stats(trial, ids, n),
    }  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 30_000, None])
def test_digest_built_in_runs_equals_a_walk_of_the_steps(
    three_path: Path, tmp_path: Path, monkeypatch: Any, chunk: int | None
) -> None:
    """The first load's build (steps parsed many at a time: one per run, a few per run, all at
    once) and the save's (steps in memory, 3 at a time) give what a walk of the steps one by one
    gives: every statistic, per-token column, state, zone and attention column."""
    path = copy_of(three_path, tmp_path)
    doc = orjson.loads(path.read_bytes())
    if chunk is not None:
        monkeypatch.setattr(lazy, "CHUNK", chunk)
    loaded = Capture.load(path, vectors=False, lazy=True)
    D.prepare(loaded)
    monkeypatch.setattr(D, "RUN", 3)
    in_memory = Capture.load(path, vectors=False)
    ids = D._ids_of(doc)
    for trial_id in range(3):
        want = _walk(doc, trial_id, ids)
        for cap in (loaded, in_memory):
            got = D._compute(cap, trial_id, [], ids) if cap is in_memory else D.digest(cap, trial_id)
            for name in ("ids", "l2", "sums", "counts", "tok"):
                assert np.array_equal(np.asarray(getattr(got, name)), want[name], equal_nan=True), name
            assert got.zones == want["zones"] and got.states == want["states"]
            assert got.columns is not None
            for name, arr in want["columns"].items():
                assert np.array_equal(np.asarray(got.columns[name]), arr), name
            assert np.array_equal(got.token_stats(ids, arr.shape[1]), want["token_stats"], equal_nan=True)


def test_a_step_that_is_not_json_is_named_and_its_run_still_read(three_path: Path, tmp_path: Path) -> None:
    """A run of steps parsed in one go that holds a step that is not JSON is read step by step:
    that step is named once, the others of its run are digested."""
    path = copy_of(three_path, tmp_path)
    raw = bytearray(path.read_bytes())
    a, b = scan(bytes(raw))[2].step_spans[4]
    i = bytes(raw[a:b]).index(b'"phase":"decode"')
    raw[a + i : a + i + 16] = b'"phase":-decode-'  # brackets and strings still balance; not JSON
    path.write_bytes(bytes(raw))
    cap = Capture.load(path, vectors=False, lazy=True)
    D.prepare(cap)
    named = [n for n in cap.notices if "trial 2 step 4" in n]
    assert len(named) == 1 and "not JSON" in named[0] and "\n" not in named[0]
    detail = analysis.trial_detail(cap, 2)
    ref = orjson.loads(path.read_bytes().replace(b'"phase":-decode-', b'"phase":"decode"'))
    assert detail["steps"][4]["n_tokens"] == 0
    assert [s["n_stats"] for s in detail["steps"][:4]] == [len(s["stats"]) for s in ref["trials"][2]["steps"][:4]]
    assert detail["steps"][5]["n_stats"] == len(ref["trials"][2]["steps"][5]["stats"])


def test_prepare_reports_progress(three_path: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(lazy, "CHUNK", 20_000)
    cap = Capture.load(copy_of(three_path, tmp_path), vectors=False, lazy=True)
    assert D.needs_build(cap)
    seen: list[tuple[int, int]] = []
    D.prepare(cap, lambda done, total: seen.append((done, total)))
    total = sum(len(t["steps"]) for t in cap.data["trials"])
    assert len(seen) > 3 and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and {t for _, t in seen} == {total}
    assert not D.needs_build(cap) and not D.needs_build(Capture.load(cap.path, vectors=False, lazy=True))  # type: ignore[arg-type]


def test_index_command_writes_the_index_with_progress(three_path: Path, tmp_path: Path, capsys: Any) -> None:
    """``spectra-vis index``: the index of a capture saved elsewhere, equal to the one written at
    save time; a second run says it is up to date; a missing file is a one-line error (exit 2)."""
    from spectra_vis.cli import main

    path = copy_of(three_path, tmp_path)
    index_path = path.with_name(index_file.index_name(path))
    assert not index_path.exists()
    assert main(["index", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {index_path}" in err and "steps" in err
    built, saved = _index_contents(path), _index_contents(three_path)
    assert built[1]["derived"] == saved[1]["derived"] and sorted(built[0]) == sorted(saved[0])
    assert all(np.array_equal(v, built[0][k], equal_nan=True) for k, v in saved[0].items())
    before = index_path.stat().st_mtime_ns
    assert main(["index", str(path)]) == 0
    assert "up to date" in capsys.readouterr().err and index_path.stat().st_mtime_ns == before
    assert main(["index", "--force", str(path)]) == 0 and index_path.stat().st_mtime_ns != before
    capsys.readouterr()
    assert main(["index", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.json" in err and err.startswith("spectra-vis index: error:")


def test_comb_pairs_through_linked_edges_give_the_scores_of_every_divisor(monkeypatch: Any) -> None:
    """Periodicity of many rows (combs planted at random periods, other edges at random distances,
    padding, self-attention at distance 0) with the pairs found through linked edges, equal to the
    expansion of every distance into its divisors (exactly) and to the one-row ``periodicity``."""
    rng = np.random.default_rng(14)
    n, k = 3000, 12
    q = rng.integers(400, 4000, n)
    dist = np.zeros((n, k), dtype=np.int64)
    for r in range(n):  # a comb of up to five consecutive multiples, then other distances (a row's all differ)
        period, start = int(rng.integers(3, 65)), int(rng.integers(1, 6))
        comb = [(start + c) * period for c in range(5) if rng.random() < 0.8]
        others = [int(d) for d in rng.permutation(400) if int(d) not in comb][: k - len(comb)]
        dist[r] = rng.permutation(comb + others)
    ok = rng.random((n, k)) < 0.9
    p = np.where(ok, rng.random((n, k)) / k, 0.0)
    linked = I._combs(dist, p, ok)
    monkeypatch.setattr(I, "LINKED_MAX_K", 0)  # every row through the divisors instead
    divisors = I._combs(dist, p, ok)
    assert np.array_equal(linked, divisors) and (linked > 0).sum() > n // 2 and (linked == 0).sum() > n // 20
    for r in range(0, n, 7):
        keep = ok[r]
        one_row = I.periodicity(list(q[r] - dist[r][keep]), list(p[r][keep]), int(q[r]))
        assert math.isclose(linked[r], one_row, rel_tol=1e-12)  # its total is summed in another order
