"""Unit tests of the one name parser: raw llama.cpp names -> layer, type, category."""

from __future__ import annotations

import pytest

from spectra_vis.record.naming import (
    FINAL_NORM_LAYER,
    OUTPUT_LAYER,
    parse_name,
    parse_weight,
    strip_suffixes,
    type_info,
    variant_type,
)


@pytest.mark.parametrize(
    ("raw", "base", "layer", "view"),
    [
        ("l_out-3", "l_out", 3, False),
        ("kq_soft_max-17", "kq_soft_max", 17, False),
        ("Qcur-0 (view)", "Qcur", 0, True),
        ("Vcur-0 (reshaped) (reshaped)", "Vcur", 0, True),
        ("cache_k_l12 (view) (permuted)", "cache_k", 12, True),
        ("embd", "embd", -1, False),
        ("inp_embd", "embd", -1, False),
        ("inp_scaled", "inp_scaled", -1, False),
        ("result_norm", "result_norm", FINAL_NORM_LAYER, False),
        ("result_output", "result_output", OUTPUT_LAYER, False),
        ("ffn_moe_gate-5", "ffn_moe_gate", 5, False),
    ],
)
def test_parse_name(raw: str, base: str, layer: int, view: bool) -> None:
    p = parse_name(raw)
    assert (p.base, p.layer, p.view, p.unnamed) == (base, layer, view, False)


@pytest.mark.parametrize("raw", ["node_34", "node_9 (view)", "node_9 (view) (permuted)", ""])
def test_unnamed_nodes_have_no_layer(raw: str) -> None:
    p = parse_name(raw)
    assert p.unnamed and p.layer is None


def test_bare_norm_is_not_assumed_final() -> None:
    # Gemma names the FFN post-norm's RMS_NORM plain "norm" inside blocks: only its source decides.
    assert parse_name("norm").layer is None


def test_strip_suffixes_reports_views() -> None:
    assert strip_suffixes("Kcur-0 (view) (permuted)") == ("Kcur-0", True)
    assert strip_suffixes("Kcur-0") == ("Kcur-0", False)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("blk.0.attn_output.weight", (0, "attn_out")),
        ("blk.11.ffn_down.weight", (11, "ffn_out")),
        ("blk.2.attn_q.bias", (2, "Qcur")),
        ("output.weight", (OUTPUT_LAYER, "result_output")),
        ("output_norm.weight", (FINAL_NORM_LAYER, "result_norm")),
        ("token_embd.weight", (-1, "embd")),
        ("kqv_out-0", None),
    ],
)
def test_parse_weight(name: str, expected: tuple[int, str] | None) -> None:
    assert parse_weight(name) == expected


def test_repeated_names_are_kept_apart_by_op_and_occurrence() -> None:
    seen: dict = {}
    seen_base: dict = {}
    types = [variant_type("Qcur", op, seen, seen_base) for op in ("MUL_MAT", "RESHAPE", "ROPE")]
    assert types == ["Qcur", "Qcur.reshape", "Qcur.rope"]
    norms = [variant_type("norm", "RMS_NORM", seen, seen_base) for _ in range(3)]
    assert norms == ["norm", "norm.rms_norm", "norm.rms_norm2"]


def test_type_info_categories_and_depths() -> None:
    assert type_info("l_out") == ("residual", 0)
    assert type_info("attn_out")[0] == "attention"
    assert type_info("ffn_out")[0] == "feedforward"
    assert type_info("Qcur.rope") == ("attention", 4)
    assert type_info("mystery_thing")[0] == "other"
    assert type_info("ffn_moe_gate")[0] == "feedforward"
