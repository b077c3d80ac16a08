"""Steering (issue 16) on real llama.cpp and tiny GGUF models: control vectors made from prompts,
read back with the gguf package alone, applied through llama_set_adapter_cvec, swept over strengths,
served over HTTP; and every bad input refused in one line, with nothing half-written."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from spectra_vis import Session, capture, load_capture, steer
from spectra_vis.errors import InvalidArgument, WrongFileType
from spectra_vis.record.profiles import read_model_card
from spectra_vis.store.control_vector import ControlVector, write_control_vector
from spectra_vis.testing.tiny_gguf import write_tiny_model

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "spectra_vis.cli"]
SEA = REPO / "examples" / "steering" / "sea.txt"
MOUNTAINS = REPO / "examples" / "steering" / "mountains.txt"
PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny 4-block models: blocks 1..3 can be steered (block 0 has no slot in llama.cpp)."""
    d = tmp_path_factory.mktemp("steer_models")
    return {
        arch: write_tiny_model(d / f"tiny4-{arch}.gguf", arch=arch, seed=1, n_layer=4) for arch in ("llama", "gemma3")
    }


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("steer_prompts")
    pos, neg = SEA.read_text().splitlines()[:6], MOUNTAINS.read_text().splitlines()[:6]
    (d / "pos.txt").write_text("\n".join(pos) + "\n")
    (d / "neg.txt").write_text("\n".join(neg) + "\n\n")  # a blank line is skipped
    (d / "neg_short.txt").write_text("\n".join(neg[:4]) + "\n")
    (d / "empty.txt").write_text("\n  \n")
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def vectors(
    models: dict[str, Path], prompts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """steer.make on each model, mean and pca, written to files."""
    d = tmp_path_factory.mktemp("steer_vectors")
    out = {}
    for arch, model in models.items():
        for method in ("mean", "pca"):
            path = d / f"{arch}-{method}.gguf"
            steer.make(model, prompts["pos"], prompts["neg"], method=method, out=path, n_ctx=128)  # type: ignore[arg-type]
            out[f"{arch}-{method}"] = path
    return out


def _residuals(model: Path, texts: list[str]) -> dict[int, np.ndarray]:
    """Independently of the vectors path: each prompt's last-token l_out row per block, read by an
    on_tensor hook from llama.cpp's own memory during prefill."""
    rows: dict[int, list[np.ndarray]] = {}

    def keep(info: Any, array: np.ndarray, step: Any) -> None:
        if info.type == "l_out" and step.phase == "prefill":
            rows.setdefault(info.layer, []).append(np.array(array, dtype=np.float64).reshape(-1, array.shape[-1])[-1])

    with Session(model, "standard", n_ctx=128, lens=False, on_tensor=keep) as s:
        for text in texts:
            s.run(text, max_tokens=1, chat=False)
    return {layer: np.stack(r) for layer, r in rows.items()}


# ----- the file ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("method", ["mean", "pca"])
def test_vector_file_reads_back_with_gguf_and_follows_the_sign_rule(
    models: dict[str, Path], prompts: dict[str, Path], vectors: dict[str, Path], arch: str, method: str
) -> None:
    card = read_model_card(models[arch])
    reader = gguf.GGUFReader(vectors[f"{arch}-{method}"])
    fields = {k: reader.get_field(k).contents() for k in reader.fields if not k.startswith("GGUF.")}  # type: ignore[union-attr]
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == arch
    assert fields["controlvector.layer_count"] == card.n_layer - 1 == len(reader.tensors)
    names = [t.name for t in reader.tensors]
    assert names == [f"direction.{L}" for L in range(1, card.n_layer)]  # llama.cpp's numbering: from 1
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [card.n_embd]
    pos = _residuals(models[arch], prompts["pos"].read_text().split("\n")[:6])
    neg = _residuals(models[arch], [x for x in prompts["neg"].read_text().split("\n") if x][:6])
    for t in reader.tensors:
        layer = int(t.name.split(".")[1])
        v = np.asarray(t.data, dtype=np.float64)
        unit = v / np.linalg.norm(v)
        gap = (pos[layer] @ unit).mean() - (neg[layer] @ unit).mean()
        assert gap > 0, f"{t.name}: positive prompts must project higher"
        # the written length is the mean projection gap, in residual units
        assert np.linalg.norm(v) == pytest.approx(gap, rel=1e-3)
        if method == "mean":  # the direction is the mean difference of the sets
            diff = pos[layer].mean(axis=0) - neg[layer].mean(axis=0)
            assert float(unit @ diff) / np.linalg.norm(diff) == pytest.approx(1.0, abs=1e-5)
        else:  # the first principal component of the paired differences (uncentered), sign fixed
            _, _, vt = np.linalg.svd(pos[layer] - neg[layer], full_matrices=False)
            assert abs(float(unit @ vt[0])) == pytest.approx(1.0, abs=1e-5)


def test_layer_range_and_position(models: dict[str, Path], prompts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mid.gguf"
    v = steer.make(models["llama"], prompts["pos"], prompts["neg"], layers="2-3", position="mean", out=out, n_ctx=128)
    assert v.layers == [2, 3] and v.position == "mean" and v.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    back = steer.read_control_vector(out)
    assert back.layers == [2, 3] and back.n_layer == 4 and back.method == "mean"
    assert all(np.array_equal(back.directions[L], v.directions[L]) for L in (2, 3))
    assert all(0 < back.relative_gap[L] < 10 for L in (2, 3))


# ----- applying it -----------------------------------------------------------------------------
def _stats_by_key(cap: Any) -> list[dict[str, Any]]:
    keys = {t["id"]: t["key"] for t in cap.tensors}
    return [
        {
            "stats": {keys[int(k)]: v for k, v in st["stats"].items()},
            "rows": {keys[int(k)]: v for k, v in st["rows"].items()},
        }
        for st in cap.trial(0)["steps"]
    ]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_strength_zero_is_exactly_the_unsteered_run(
    models: dict[str, Path], vectors: dict[str, Path], arch: str
) -> None:
    plain = capture(models[arch], PROMPT, max_tokens=6, n_ctx=128)
    zero = capture(models[arch], PROMPT, max_tokens=6, n_ctx=128, control=(vectors[f"{arch}-mean"], 0))
    assert zero.trial(0)["tokens"]["ids"] == plain.trial(0)["tokens"]["ids"]
    assert _stats_by_key(zero) == _stats_by_key(plain)
    assert [t["key"] for t in zero.tensors] == [t["key"] for t in plain.tensors]  # the same graph
    control = zero.trial(0)["control"]
    digest = hashlib.sha256(vectors[f"{arch}-mean"].read_bytes()).hexdigest()
    assert control == {
        "file": vectors[f"{arch}-mean"].name,
        "sha256": digest,
        "layers": [1, 3],
        "strength": 0.0,
        "n_embd": read_model_card(models[arch]).n_embd,
    }
    assert "control" not in plain.trial(0) and "projection" not in plain.trial(0)
    # the projection of the unsteered rows, recomputed from the capture's own vectors
    proj = zero.trial(0)["projection"]
    back = steer.read_control_vector(vectors[f"{arch}-mean"])
    for i, layer in enumerate(proj["layers"]):
        rows = zero.vectors(0, f"blocks.{layer}.hook_resid_post").astype(np.float64)
        want = rows @ back.unit(layer)
        got = np.array(proj["values"][i], dtype=float)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_a_sweep_moves_the_projection_in_the_sign_of_the_strength(
    models: dict[str, Path], vectors: dict[str, Path], arch: str, tmp_path: Path
) -> None:
    out = tmp_path / "sweep.json"
    cap = steer.sweep(
        models[arch], vectors[f"{arch}-pca"], "-4,4", PROMPT, control_layers="2-2", max_tokens=5, n_ctx=128, out=out
    )
    assert load_capture(out).data["version"] == "2.3"
    trials = cap.data["trials"]
    assert [t["control"]["strength"] for t in trials] == [0.0, -4.0, 4.0]  # 0 is always run, first when missing
    assert {t["sweep"]["id"] for t in trials} == {trials[0]["sweep"]["id"]}
    assert all(t["sweep"]["baseline"] == 0 and t["sweep"]["strength"] == t["control"]["strength"] for t in trials)
    assert all(t["control"]["layers"] == [2, 2] for t in trials)
    plain = capture(models[arch], PROMPT, max_tokens=5, n_ctx=128)
    assert trials[0]["tokens"]["ids"] == plain.trial(0)["tokens"]["ids"]  # the baseline is the unsteered run
    vector = steer.read_control_vector(vectors[f"{arch}-pca"])
    proj = {t["control"]["strength"]: np.array(t["projection"]["values"], dtype=float) for t in trials}
    layers = trials[0]["projection"]["layers"]
    n_prompt = trials[0]["tokens"]["n_prompt"]
    i1, i2 = layers.index(1), layers.index(2)
    for s in (-4.0, 4.0):
        shift = proj[s][:, :n_prompt] - proj[0.0][:, :n_prompt]
        assert np.array_equal(shift[i1], np.zeros(n_prompt))  # before the steered block: untouched
        have = ~np.isnan(shift[i2])
        assert have.sum() == n_prompt and (np.sign(shift[i2][have]) == np.sign(s)).all()
        # the prompt's rows at the steered block move by strength x |direction| (rows kept as float16)
        assert np.allclose(shift[i2], s * vector.scale(2), rtol=1e-2)
    assert (
        cap.trial(1)["response"] != cap.trial(2)["response"]
        or cap.trial(1)["tokens"]["ids"] != trials[0]["tokens"]["ids"]
    )


def test_session_switches_strength_and_the_kv_cache_does_not_leak(
    models: dict[str, Path], vectors: dict[str, Path]
) -> None:
    with Session(models["llama"], "standard", n_ctx=128, control=(vectors["llama-mean"], 6.0)) as s:
        steered = s.run(PROMPT, max_tokens=5)
        s.set_control((vectors["llama-mean"], 0.0))
        after = s.run(PROMPT, max_tokens=5)
        s.set_control(None)
        off = s.run(PROMPT, max_tokens=5)
    plain = capture(models["llama"], PROMPT, max_tokens=5, n_ctx=128).trial(0)["tokens"]["ids"]
    assert steered.token_ids != plain
    assert after.token_ids == plain and off.token_ids == plain
    assert steered.control["strength"] == 6.0 and after.control["strength"] == 0.0 and off.control is None


def test_wizard_flags_steer_a_capture(models: dict[str, Path], vectors: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "flags.json"
    cmd = [
        *CLI,
        "capture",
        "--model",
        str(models["llama"]),
        "--prompt",
        PROMPT,
        "--max-tokens",
        "4",
        "--quiet",
        "--control",
        str(vectors["llama-mean"]),
        "--strength",
        "-2.5",
        "--control-layers",
        "2-3",
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    trial = load_capture(out).trial(0)
    assert trial["control"]["strength"] == -2.5 and trial["control"]["layers"] == [2, 3]
    for bad, why in (("nan", "not a finite number"), ("inf", "not a finite number"), ("x", "not a number")):
        r = subprocess.run(
            [*cmd[:-2], "--out", str(tmp_path / "no.json"), "--strength", bad], capture_output=True, text=True, cwd=REPO
        )
        assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "no.json").exists()


# ----- bad input -------------------------------------------------------------------------------
def test_mismatched_vectors_are_refused_with_both_numbers(models: dict[str, Path], tmp_path: Path) -> None:
    narrow = write_control_vector(ControlVector({1: np.ones(32, np.float32)}, n_layer=4), tmp_path / "narrow.gguf")
    with pytest.raises(InvalidArgument, match=r"n_embd=32 .* n_embd=64"):
        capture(models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(narrow, 1.0))
    deep = write_control_vector(ControlVector({1: np.ones(64, np.float32)}, n_layer=12), tmp_path / "deep.gguf")
    with pytest.raises(InvalidArgument, match=r"12 layers .* 4 layers"):
        capture(models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(deep, 1.0))
    with pytest.raises(InvalidArgument, match="block 0; llama.cpp steers blocks 1 and up"):
        capture(
            models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(ControlVector({0: np.ones(64, np.float32)}), 1)
        )
    foreign = write_control_vector(ControlVector({7: np.ones(64, np.float32)}), tmp_path / "foreign.gguf")
    with pytest.raises(InvalidArgument, match=r"at least 8 layers .* 4 layers"):
        capture(models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(foreign, 1.0))


def test_a_file_that_is_not_a_control_vector_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WrongFileType, match="not a control vector: its architecture is 'llama'"):
        capture(models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(models["llama"], 1.0))
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(WrongFileType, match="not a control vector: not a GGUF file"):
        steer.sweep(models["llama"], text, "1", PROMPT, n_ctx=128)
    with pytest.raises(InvalidArgument, match="does not exist"):
        steer.sweep(models["llama"], tmp_path / "missing.gguf", "1", PROMPT, n_ctx=128)


def test_bad_strengths_and_ranges(models: dict[str, Path], vectors: dict[str, Path], tmp_path: Path) -> None:
    for strength in (float("nan"), float("inf"), "big"):
        with pytest.raises(InvalidArgument, match="not a (finite )?number"):
            capture(models["llama"], PROMPT, max_tokens=2, n_ctx=128, control=(vectors["llama-mean"], strength))
    with pytest.raises(InvalidArgument, match="not a finite number"):
        steer.sweep(models["llama"], vectors["llama-mean"], "-4,inf", PROMPT, n_ctx=128, out=tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()
    for layers in ("0-2", "2-9", "3-1", "x"):
        with pytest.raises(InvalidArgument, match="outside the model|backwards|not FIRST-LAST"):
            capture(
                models["llama"],
                PROMPT,
                max_tokens=2,
                n_ctx=128,
                control=(vectors["llama-mean"], 1),
                control_layers=layers,
            )


def test_bad_prompt_sets_and_ranges_in_make_leave_no_file(
    models: dict[str, Path], prompts: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "v.gguf"
    cases = [
        ({"negative": prompts["empty"]}, "has no prompts"),
        ({"negative": tmp_path / "nope.txt"}, "does not exist"),
        ({"negative": prompts["neg_short"], "method": "pca"}, "6 positive and 4 negative"),
        ({"layers": "0-3"}, "outside the model"),
        ({"layers": "1-4"}, "outside the model"),
        ({"method": "median"}, "unknown method"),
    ]
    for kwargs, message in cases:
        args: dict[str, Any] = {"positive": prompts["pos"], "negative": prompts["neg"], **kwargs}
        with pytest.raises(InvalidArgument, match=message):
            steer.make(models["llama"], args.pop("positive"), args.pop("negative"), out=out, n_ctx=128, **args)
    assert not out.exists()
    # unequal sets are fine for the mean of differences (unpaired)
    assert steer.make(models["llama"], prompts["pos"], prompts["neg_short"], method="mean", n_ctx=128).layers == [
        1,
        2,
        3,
    ]


def test_ctrl_c_during_make_leaves_no_file(
    models: dict[str, Path], prompts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "v.gguf"

    def interrupt(kind: str, payload: Any) -> None:
        if kind == "prompt" and payload[0] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        steer.make(models["llama"], prompts["pos"], prompts["neg"], out=out, n_ctx=128, on_event=interrupt)
    # and during the write itself: the temporary file goes, the old file stays as it was
    out.write_bytes(b"old")
    monkeypatch.setattr(
        gguf.GGUFWriter, "write_tensors_to_file", lambda self, **kw: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        steer.make(models["llama"], prompts["pos"], prompts["neg"], out=out, n_ctx=128)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["v.gguf"]


def test_ctrl_c_during_steer_make_cli(models: dict[str, Path], tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"the sea and the waves number {i}" for i in range(400)) + "\n")
    out = tmp_path / "cv.gguf"
    child = pexpect.spawn(
        CLI[0],
        [
            *CLI[1:],
            "steer",
            "make",
            "--model",
            str(models["llama"]),
            "--positive",
            str(many),
            "--negative",
            str(many),
            "--n-ctx",
            "128",
            "--out",
            str(out),
        ],
        cwd=str(REPO),
        timeout=120,
        encoding="utf-8",
        dimensions=(24, 200),
    )
    child.expect("capturing prompts")
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "no control vector was written" in (child.before or "")
    assert list(tmp_path.iterdir()) == [many]


# ----- the command line and the server ---------------------------------------------------------
def test_steer_make_then_try_through_the_cli(models: dict[str, Path], tmp_path: Path) -> None:
    vec, cap_path = tmp_path / "sea.gguf", tmp_path / "data" / "sweep.json"
    r = subprocess.run(
        [
            *CLI,
            "steer",
            "make",
            "--model",
            str(models["llama"]),
            "--positive",
            str(SEA),
            "--negative",
            str(MOUNTAINS),
            "--method",
            "pca",
            "--layers",
            "1-3",
            "--n-ctx",
            "128",
            "--out",
            str(vec),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert f"wrote {vec} (3 layers" in r.stdout
    r = subprocess.run(
        [
            *CLI,
            "steer",
            "try",
            "--model",
            str(models["llama"]),
            "--control",
            str(vec),
            "--strengths",
            "-4,0,4",
            "--prompt",
            PROMPT,
            "--max-tokens",
            "4",
            "--n-ctx",
            "128",
            "--out",
            str(cap_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    cap = load_capture(cap_path)
    assert [t["sweep"]["strength"] for t in cap.data["trials"]] == [-4.0, 0.0, 4.0]
    assert {t["sweep"]["baseline"] for t in cap.data["trials"]} == {1}
    # bad input: one line on stderr, exit 2
    for args, why in (
        (["--control", str(models["llama"])], "not a control vector"),
        (["--control", str(vec), "--strengths", "1,nan"], "not a finite number"),
        (["--control", str(vec), "--layers", "0-2"], "outside the model"),
    ):
        r = subprocess.run(
            [
                *CLI,
                "steer",
                "try",
                "--model",
                str(models["llama"]),
                "--prompt",
                PROMPT,
                "--n-ctx",
                "128",
                "--out",
                str(tmp_path / "bad.json"),
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bad.json").exists()
    _serve_projection(cap_path)


def _serve_projection(cap_path: Path) -> None:
    """GET /api/trials/{id}/projection and the trial list over HTTP, from a real server process."""
    import httpx

    from tests.test_backend import _free_port, _wait_up

    port = _free_port()
    cmd = [
        sys.executable,
        "backend/server.py",
        "--port",
        str(port),
        "--data-dir",
        str(cap_path.parent),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base, proc)
        with httpx.Client(base_url=base, timeout=30) as client:
            loaded = client.post("/api/load", json={"filepath": cap_path.name}).json()
            cid = loaded["capture_id"]
            cap = load_capture(cap_path)
            for brief, trial in zip(loaded["trial_list"], cap.data["trials"], strict=True):
                assert brief["control"] == trial["control"] and brief["sweep"] == trial["sweep"]
            for t in range(3):
                r = client.get(f"/api/trials/{t}/projection", params={"capture_id": cid})
                assert r.status_code == 200, r.text
                body, trial = r.json(), cap.trial(t)
                assert body["values"] == trial["projection"]["values"] and body["layers"] == [1, 2, 3]
                assert body["strength"] == trial["control"]["strength"] and body["control_file"] == "sea.gguf"
                assert body["n_tokens"] == len(body["tokens"]) == len(body["values"][0])
            r = client.get("/api/compare", params={"a": f"{cid}:1", "b": f"{cid}:2"})
            assert r.status_code == 200 and r.json()["n_shared"] >= cap.trial(1)["tokens"]["n_prompt"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_projection_404_on_an_unsteered_trial(tiny_capture_path: Path) -> None:
    from spectra_vis import analysis
    from spectra_vis.errors import NotFound

    with pytest.raises(NotFound, match="not run with a control vector"):
        analysis.projection(load_capture(tiny_capture_path), 0)
    brief = analysis.summary(load_capture(tiny_capture_path))["trial_list"][0]
    assert brief["control"] is None and brief["sweep"] is None


def test_spectra_vis_steer_is_the_steering_package() -> None:
    import spectra_vis
    import spectra_vis.steering

    assert spectra_vis.steer is spectra_vis.steering and callable(spectra_vis.steer.make)
    assert os.path.basename(spectra_vis.steer.__file__ or "") == "__init__.py"
