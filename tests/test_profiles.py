"""Model cards from GGUF metadata, read with the gguf package (long arrays stepped over)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from spectra_vis.record.profiles import LONG_ARRAY, ModelFileError, read_model_card


def write_metadata_only(path: Path, n_vocab: int) -> None:
    """A GGUF with a long vocabulary (strings, scores, types) before the scalars a card needs."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" * (1 + i % 3) for i in range(n_vocab)])
    w.add_token_scores([float(i) for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    w.add_array("llama.attention.head_count_per_layer", [4, 8, 4])  # a short array: parsed as usual
    w.add_name("long-vocab")
    w.add_block_count(3)
    w.add_embedding_length(96)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_context_length(4096)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("token_embd.weight", np.zeros((4, 96), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("n_vocab", [LONG_ARRAY // 2, LONG_ARRAY * 3])
def test_card_equals_the_stock_reader_with_short_and_long_vocabularies(tmp_path: Path, n_vocab: int) -> None:
    path = tmp_path / "meta.gguf"
    write_metadata_only(path, n_vocab)
    card = read_model_card(path)
    stock = gguf.GGUFReader(str(path))
    assert card.n_vocab == n_vocab == len(stock.get_field("tokenizer.ggml.tokens").data)
    assert (card.architecture, card.name, card.n_layer, card.n_embd) == ("llama", "long-vocab", 3, 96)
    assert (card.n_head, card.n_head_kv, card.n_ctx_train) == (8, 2, 4096)
    assert card.file_type == "F16" and card.family == "llama"


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.gguf"
    write_metadata_only(path, LONG_ARRAY * 2)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:40_000])
    with pytest.raises(ModelFileError, match="could not be read as GGUF"):
        read_model_card(cut)
