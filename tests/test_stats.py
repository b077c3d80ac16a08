"""Statistics against independent numpy recomputation, including NaN/Inf and attention rows."""

from __future__ import annotations

import numpy as np

from spectra_vis.record.stats import STAT_NAMES, attention_summary, rows_stats, tensor_stats, top_logits


def reference_stats(x: np.ndarray) -> list[float]:
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    if finite.size == 0:  # no finite value: every statistic is 0, only the count of non-finite ones is not
        return [0.0] * 7 + [float(x.size)]
    return [
        float(np.linalg.norm(finite)),
        float(finite.mean()),
        float(finite.std()),
        float(finite.min()),
        float(finite.max()),
        float(np.abs(finite).max()),
        float(np.mean(np.abs(finite) <= 1e-6)),
        float(x.size - finite.size),
    ]


def test_tensor_stats_match_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(7, 33)).astype(np.float32)
    x[0, :5] = 0.0
    got = tensor_stats(x)
    assert len(got) == len(STAT_NAMES)
    np.testing.assert_allclose(got, reference_stats(x), rtol=1e-5, atol=1e-6)


def test_rows_stats_match_numpy_per_row_with_nonfinite() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 16)).astype(np.float32)
    x[2, 3] = np.nan
    x[2, 4] = np.inf
    got = rows_stats(x)
    for i in range(4):
        np.testing.assert_allclose(got[i], reference_stats(x[i]), rtol=1e-5, atol=1e-6)
    assert got[2][7] == 2 and got[1][7] == 0


def test_attention_summary_topk_and_entropy() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 3, 10))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = attention_summary(probs.astype(np.float32), top_k=4)
    for h in range(2):
        for r in range(3):
            expected = np.argsort(-probs[h, r])[:4]
            assert out["pos"][h][r] == expected.tolist()
            np.testing.assert_allclose(out["p"][h][r], probs[h, r, expected], rtol=1e-5)
            ent = -(probs[h, r] * np.log(probs[h, r])).sum()
            assert abs(out["entropy"][h][r] - ent) < 1e-4


def test_attention_summary_k_larger_than_row() -> None:
    out = attention_summary(np.array([[[1.0]]], dtype=np.float32), top_k=8)
    assert out["pos"] == [[[0]]] and float(out["entropy"][0][0]) == 0.0


def test_top_logits_is_argmax_of_last_row() -> None:
    x = np.array([[5.0, 1.0, 2.0], [0.0, 3.0, 9.0]], dtype=np.float32)
    out = top_logits(x, 2)
    assert out["ids"] == [2, 1] and list(out["logits"]) == [9.0, 3.0]
