"""Capture files: the v2 schema, bad files with one-line errors, atomic saves, original v1.0 files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectra_vis import Capture, CaptureError, load_capture
from spectra_vis.store.capture_file import atomic_write, schema

V1 = {
    "version": "1.0",
    "tool": "Spectra Vis (Tensor Edition)",
    "author": "3rdEyeVisuals",
    "created": "2025-01-01T12:00:00",
    "model_family": "llama",
    "statistics": {"total_trials": 1, "unique_tensors": 3, "total_callbacks": 12},
    "tensor_order": ["tensor_00007f0000001000", "tensor_00007f0000002000", "tensor_00007f0000003000"],
    "trials": [
        {
            "trial_id": 0,
            "prompt": "Hello",
            "response": " world",
            "inference_time_ms": 123.4,
            "tensor_counts": {"tensor_00007f0000001000": 5, "tensor_00007f0000003000": 1, "tensor_00007f0000009000": 2},
            "tensor_order": ["tensor_00007f0000001000", "tensor_00007f0000003000", "tensor_00007f0000009000"],
        }
    ],
}


def test_schema_documents_every_property() -> None:
    def walk(node: dict, path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            doc = Path(__file__).parents[1] / "docs" / "CAPTURE_FORMAT.md"
            assert f"`{name}`" in doc.read_text(), f"{path}.{name} is not described in docs/CAPTURE_FORMAT.md"
            walk(sub, f"{path}.{name}")

    s = schema()
    walk(s, "capture")
    for name, sub in s["$defs"].items():
        walk(sub, name)


def test_original_v1_file_loads_read_only(tmp_path: Path) -> None:
    p = tmp_path / "old.json"
    p.write_text(json.dumps(V1))
    cap = load_capture(p)
    assert cap.legacy
    assert len(cap.tensors) == 4  # three in the order plus one seen only in the trial
    trial = cap.trial(0)
    assert trial["prompt"] == "Hello" and sum(trial["counts"]) == 8
    assert cap.summary()["model"]["family"] == "llama"
    with pytest.raises(CaptureError, match="read-only"):
        cap.save(tmp_path / "new.json")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a capture"),
        (b'{"format": "something-else"}', "not a Spectra Vis capture"),
        (b'{"format": "spectra-vis-capture", "version": "9.0"}', "version"),
        (b'{"format": "spectra-vis-capture", "version": "2.0"}', "does not match format"),
    ],
)
def test_bad_files_get_one_line_errors(payload: bytes, message: str) -> None:
    with pytest.raises(CaptureError, match=message) as info:
        Capture.from_bytes(payload, name="bad.json")
    assert "\n" not in str(info.value)


def test_truncated_capture_says_so(tiny_capture_path: Path) -> None:
    raw = tiny_capture_path.read_bytes()
    with pytest.raises(CaptureError, match="truncated"):
        Capture.from_bytes(raw[: len(raw) // 2], name="cut.json")


def test_wrong_schema_names_the_place(tiny_capture_path: Path) -> None:
    data = json.loads(tiny_capture_path.read_bytes())
    data["trials"][0]["steps"][0]["phase"] = "sideways"
    with pytest.raises(CaptureError, match="trials/0/steps/0/phase"):
        Capture.from_bytes(json.dumps(data).encode())


def test_missing_file_and_size_limit(tmp_path: Path, tiny_capture_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found"):
        load_capture(tmp_path / "nope.json")
    with pytest.raises(CaptureError, match="over the limit"):
        Capture.load(tiny_capture_path, max_bytes=100)


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_save_refuses_invalid_document_and_keeps_old_file(tiny_capture_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "c.json"
    target.write_bytes(tiny_capture_path.read_bytes())
    cap = load_capture(target)
    cap.data["trials"][0]["id"] = -5
    with pytest.raises(CaptureError):
        cap.save(target)
    assert target.read_bytes() == tiny_capture_path.read_bytes()


@pytest.mark.parametrize("version", ["2.0", "2.1", "2.2", "2.3"])
def test_older_versions_still_load(tiny_capture_path: Path, version: str) -> None:
    """Format 2.3 added optional trial fields only (control, sweep, projection): files of every
    earlier 2.x version load as they are."""
    data = json.loads(tiny_capture_path.read_bytes())
    assert data["version"] == "2.3"
    data["version"] = version
    if version == "2.0":
        data.pop("vectors", None)
    cap = Capture.from_bytes(json.dumps(data).encode(), name=f"v{version}.json")
    assert cap.data["version"] == version and "control" not in cap.trial(0)


def test_steering_fields_are_checked(tiny_capture_path: Path) -> None:
    data = json.loads(tiny_capture_path.read_bytes())
    trial = data["trials"][0]
    n = len(trial["tokens"]["ids"])
    trial["control"] = {"file": "sea.gguf", "sha256": "0" * 64, "layers": [1, 1], "strength": -4.0, "n_embd": 64}
    trial["sweep"] = {"id": "abc", "strength": -4.0, "baseline": 0}
    trial["projection"] = {"layers": [1], "values": [[0.5] * (n - 1) + [None]], "direction_file": "sea.gguf"}
    assert Capture.from_bytes(json.dumps(data).encode()).trial(0)["sweep"]["baseline"] == 0
    del trial["control"]["sha256"]
    with pytest.raises(CaptureError, match="trials/0/control"):
        Capture.from_bytes(json.dumps(data).encode())
