"""Attention fingerprints, zones and cognitive-state labels: constructed rows reach every zone and
label; on a real capture the numbers agree with a recomputation from the captured probabilities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spectra_vis import Capture, capture, load_capture
from spectra_vis.analysis.interpret import (
    FINGERPRINT_NAMES,
    STATES,
    ZONES,
    cognitive_states,
    fingerprint,
    label_state,
    periodicity,
    token_attention,
    token_zones,
    zone,
    zone_distribution,
)


def row_zone(distances: list[int], probs: list[float], n_kv: int = 600) -> str:
    q = n_kv - 1
    positions = [q - d for d in distances]
    p = np.asarray(probs, dtype=np.float64)
    full = np.full(n_kv, (1 - p.sum()) / max(n_kv - len(p), 1))
    full[positions] = p
    ent = float(-(full[full > 0] * np.log(full[full > 0])).sum())
    return zone(fingerprint(positions, probs, q, ent, n_kv), periodicity(positions, probs, q))


@pytest.mark.parametrize(
    ("distances", "probs", "expected"),
    [
        ([0, 1, 2], [0.7, 0.2, 0.09], "syntax_floor"),
        ([20, 40, 100], [0.5, 0.3, 0.19], "semantic_bridge"),
        ([300, 450, 1], [0.5, 0.3, 0.19], "long_range"),
        ([5, 10, 15, 20, 25], [0.2, 0.2, 0.2, 0.2, 0.19], "structure_ripple"),
        ([0, 1], [0.002, 0.002], "diffuse"),
    ],
)
def test_every_zone_is_reachable(distances: list[int], probs: list[float], expected: str) -> None:
    assert row_zone(distances, probs) == expected


def test_zone_set_is_complete() -> None:
    assert set(ZONES) == {"syntax_floor", "semantic_bridge", "long_range", "structure_ripple", "diffuse"}


def test_fingerprint_layout() -> None:
    assert len(FINGERPRINT_NAMES) == 20 and FINGERPRINT_NAMES[:4] == ("local", "mid", "long", "entropy")
    fp = fingerprint([9, 5, 0], [0.5, 0.3, 0.2], 9, entropy=math.log(2), n_kv=4)
    assert fp[0] == pytest.approx(0.8) and fp[1] == pytest.approx(0.2) and fp[2] == 0
    assert fp[3] == pytest.approx(math.log(2) / math.log(4))
    # distance 0 -> bin 0, 4 -> bin 2 (floor(log2 5)), 9 -> bin 3 (floor(log2 10))
    assert fp[4] == pytest.approx(0.5) and fp[4 + 2] == pytest.approx(0.3) and fp[4 + 3] == pytest.approx(0.2)
    assert fp[4:].sum() == pytest.approx(fp[:3].sum())


@pytest.mark.parametrize(
    ("attn", "ffn", "depth", "layers", "expected"),
    [
        (8.0, 2.0, [1, 1, 1], [1, 2, 3], "Attending"),
        (1.0, 9.0, [5, 1, 1], [5, 1, 1], "Structuring"),
        (1.0, 9.0, [1, 5, 1], [1, 5, 1], "Recalling"),
        (1.0, 9.0, [1, 1, 5], [1, 1, 5], "Reasoning"),
        (5.0, 5.0, [3, 3, 3.1], [3, 3, 3.1], "Searching"),
        (5.0, 5.0, [1, 1, 8], [1, 0.2, 8], "Generating"),
        (5.0, 5.0, [4, 4, 1], [4, 0.5, 4, 1], "Processing"),
    ],
)
def test_every_state_is_reachable(attn, ffn, depth, layers, expected) -> None:
    label, confidence = label_state(attn, ffn, depth, layers)
    assert label == expected and 0.5 <= confidence <= 1.0
    assert label in STATES


@pytest.fixture(scope="module")
def real(tiny_llama: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("interp") / "c.json"
    return capture(tiny_llama, ["one two three four five six seven"], max_tokens=4, out=out, full_attention=True).data


def test_topk_and_entropy_agree_with_numpy_on_a_real_capture(real: dict) -> None:
    tid = next(t["id"] for t in real["tensors"] if t["type"] == "kq_soft_max" and t["layer"] == 1)
    for step in real["trials"][0]["steps"]:
        att = step["attention"][str(tid)]
        full = np.asarray(att["full"], dtype=np.float64)
        result = token_attention(real, 0, step["index"], 1, head=0)
        for r, tok in enumerate(result["tokens"]):
            row = full[0, r]
            expected = np.argsort(-row, kind="stable")[: len(tok["edges"])]
            assert sorted(e["pos"] for e in tok["edges"]) == sorted(expected.tolist())
            assert tok["coverage"] == pytest.approx(row[expected].sum(), abs=1e-5)
            ent = -(row[row > 0] * np.log(row[row > 0])).sum()
            n_kv = att["n_kv"]
            norm = ent / math.log(n_kv) if n_kv > 1 else 0.0
            assert tok["fingerprint"][3] == pytest.approx(norm, abs=1e-4)
            assert all(e["distance"] >= 0 for e in tok["edges"])
            assert any(e["sink"] for e in tok["edges"]) == any(e["pos"] == 0 for e in tok["edges"])


def test_zones_and_states_of_a_real_capture(real: dict) -> None:
    zones = token_zones(real, 0)
    trial = real["trials"][0]
    assert len(zones) == sum(s["n_tokens"] for s in trial["steps"])
    dist = zone_distribution(zones)
    assert sum(dist.values()) == pytest.approx(1.0)
    states = cognitive_states(real, 0)
    assert [s["step"] for s in states] == [s["index"] for s in trial["steps"]]
    assert all(s["label"] in STATES for s in states)
    assert states[0]["delta"] == {} and states[1]["delta"]


def test_jsonl_export_then_import_gives_the_same_trial(real: dict) -> None:
    from spectra_vis.analysis.trace import export_trial, import_trial

    raw = export_trial(Capture(real), 0)
    kinds = [line.split(b'"record_type":"')[1].split(b'"')[0] for line in raw.splitlines()]
    assert kinds[0] == b"header" and kinds[-1] == b"metrics"
    assert kinds.count(b"token") == len(real["trials"][0]["tokens"]["ids"])
    assert kinds.count(b"step") == len(real["trials"][0]["steps"])
    back = import_trial(raw)
    original = dict(real["trials"][0], id=0)
    assert back.trial(0) == original
    assert back.data["tensors"] == real["tensors"]


def test_bad_trace_is_refused(tmp_path: Path) -> None:
    from spectra_vis.analysis.trace import import_trial
    from spectra_vis.store.capture_file import CaptureError

    with pytest.raises(CaptureError, match="not a Spectra Vis trace"):
        import_trial(b'{"record_type": "token"}\n')
    with pytest.raises(CaptureError, match="line 2"):
        import_trial(b'{"record_type": "header"}\n{oops\n')


def test_trace_command_line_round_trip(tiny_capture_path: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    src = tmp_path / "cap.json"
    shutil.copy(tiny_capture_path, src)
    cli = [sys.executable, "-m", "spectra_vis.cli", "trace"]
    run = subprocess.run(cli + ["export", str(src), "--trial", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    trace = tmp_path / "cap_trial1.jsonl"
    assert f"wrote {trace}" in run.stdout
    back_path = tmp_path / "back.json"
    run = subprocess.run(cli + ["import", str(trace), "-o", str(back_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    original, back = load_capture(src), load_capture(tmp_path / "back.json")
    assert back.trial(0) == dict(original.trial(1), id=0)
    bad = subprocess.run(cli + ["export", str(src), "--trial", "7"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no trial 7" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run(cli + ["import", str(tmp_path / "none.jsonl")], capture_output=True, text=True)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
