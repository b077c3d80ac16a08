"""The trace export's step records (issue 14: one pass over the steps, fingerprints without edges)
against the definitions they must equal: ``interpret.token_attention`` per layer, ``step_zones``,
and ``cognitive_states`` for the metrics; on a real capture of the tiny llama."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from spectra_vis.analysis.interpret import attention_tensors, cognitive_states, step_zones, token_attention
from spectra_vis.analysis.trace import import_trial, trace_lines
from spectra_vis.store.capture_file import Capture


@pytest.fixture(scope="module")
def saved(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Capture, Path]:
    """The capture in memory (as capture() returns it) and the file it was saved to (with its index)."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("trace") / "trace.json"
    prompts = ["the cat sat on the mat", "one two three four five"]
    return capture(tiny_llama, prompts, preset="standard", max_tokens=12, n_ctx=128, out=out), out


@pytest.fixture(scope="module")
def cap(saved: tuple[Capture, Path]) -> Capture:
    return saved[0]


@pytest.mark.parametrize("trial_id", [0, 1])
def test_step_records_equal_the_per_layer_definitions(cap: Capture, trial_id: int) -> None:
    doc = cap.data
    records = [orjson.loads(line) for line in trace_lines(cap, trial_id)]
    steps = [r for r in records if r["record_type"] == "step"]
    assert len(steps) == len(doc["trials"][trial_id]["steps"]) >= 10
    layers = sorted(attention_tensors(doc))
    zones = []
    for rec in steps:
        j = rec["step"]["index"]
        per_layer = [token_attention(doc, trial_id, j, L)["tokens"] for L in layers]
        want = {str(L): [{"fingerprint": t["fingerprint"], "zone": t["zone"]} for t in toks]
                for L, toks in zip(layers, per_layer, strict=True)}  # fmt: skip
        assert rec["fingerprints"] == orjson.loads(orjson.dumps(want))
        zones += step_zones(doc, trial_id, j, per_layer)
    metrics = records[-1]
    assert metrics["record_type"] == "metrics"
    assert metrics["labels"] == dict(Counter(s["label"] for s in cognitive_states(doc, trial_id)))
    assert sum(metrics["labels"].values()) == len(steps)
    shares = {z: sum(1 for t in zones if t["zone"] == z) / max(len(zones), 1) for z in metrics["zone_distribution"]}
    assert metrics["zone_distribution"] == pytest.approx(shares)


def test_the_stream_imports_back(cap: Capture) -> None:
    back = import_trial(b"".join(trace_lines(cap, 0)))
    assert back.data["trials"][0]["steps"] == list(cap.data["trials"][0]["steps"])


@pytest.mark.parametrize("trial_id", [0, 1])
def test_a_lazy_capture_streams_the_same_bytes_unparsed(saved: tuple[Capture, Path], trial_id: int) -> None:
    """Read lazily from its file (as the server does), a trial's steps go out as the file holds them,
    with fingerprints from the digest's attention columns: the same bytes as from the parsed steps,
    and no step parsed."""
    from spectra_vis.analysis.digest import prepare

    mem, path = saved
    lazy = Capture.load(path, vectors=False, lazy=True)
    prepare(lazy)
    steps = lazy.data["trials"][trial_id]["steps"]
    before = steps.file.parsed
    assert before == 0  # the index written at save time: no step read yet, none kept parsed
    streamed = b"".join(trace_lines(lazy, trial_id))
    assert steps.file.parsed == before, "the trace parsed steps of a capture with attention columns"
    assert streamed == b"".join(trace_lines(mem, trial_id))


@pytest.mark.parametrize("with_index", [True, False])
def test_the_cli_export_writes_the_same_trace_as_the_capture_in_memory(
    saved: tuple[Capture, Path], tmp_path: Path, with_index: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spectra-vis trace export`` reads the file lazily (through its index, or building it) and
    writes line by line; the file equals the trace of the capture as capture() returned it, and
    imports back to the same steps."""
    import shutil

    from spectra_vis.analysis.trace import main

    cap, path = saved
    src = tmp_path / path.name
    for f in path.parent.glob(path.stem + ".*"):
        if with_index or not f.name.endswith(".index.safetensors"):
            shutil.copy(f, tmp_path / f.name)
    assert (tmp_path / f"{path.stem}.index.safetensors").exists() == with_index
    assert main(["export", str(src), "--trial", "1"]) == 0
    out = tmp_path / f"{path.stem}_trial1.jsonl"
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.read_bytes() == b"".join(trace_lines(cap, 1))
    assert main(["import", str(out), "-o", str(tmp_path / "back.json")]) == 0
    back = Capture.load(tmp_path / "back.json")
    assert back.data["trials"][0]["steps"] == list(cap.data["trials"][1]["steps"])


def test_the_cli_export_of_a_missing_trial_fails_in_one_line_and_writes_nothing(
    saved: tuple[Capture, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spectra_vis.analysis.trace import main

    out = tmp_path / "nothing.jsonl"
    assert main(["export", str(saved[1]), "--trial", "7", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "trial" in err and "7" in err
    assert not out.exists() and not list(tmp_path.glob(".nothing.jsonl.*"))
