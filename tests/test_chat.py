"""Chat-formatted prompts on real llama-cpp-python: tiny GGUF models that carry a chat template.

What is checked against what: the text sent against the template rendered by plain jinja2;
the prompt tokens against what llama-cpp-python's own ``create_chat_completion`` evaluates;
the template/user marks by detokenizing the tokens again; the end of turn by a model that
generates ``<|end|>`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import llama_cpp
import numpy as np
import orjson
import pytest

from spectra_vis import Session, capture, load_capture
from spectra_vis.analysis import trial_detail
from spectra_vis.capturing.chat import format_prompt, marks_from_pieces
from spectra_vis.store.capture_file import Capture
from spectra_vis.testing.tiny_gguf import CHAT_TEMPLATE, END_OF_TURN, vocabulary, write_tiny_model

PROMPT = "What is the capital of France?"
TRICKY = "user assistant end"  # words of the template's own markers: the user's span must not be found there


def _bos_eos() -> tuple[str, str]:
    tokens = vocabulary()[0]
    return tokens[1], tokens[2]


def _plain(path: Path) -> Any:
    return llama_cpp.Llama(model_path=str(path), n_ctx=128, verbose=False)


@pytest.fixture(scope="module")
def end_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Templated, and greedy decoding picks <|end|>: what an instruct model does with a bare prompt."""
    out = tmp_path_factory.mktemp("end") / "end.gguf"
    return write_tiny_model(out, seed=2, chat_template=CHAT_TEMPLATE, prefer_token=END_OF_TURN)


@pytest.fixture(scope="module")
def chat_trials(tiny_chat_model: Path) -> dict[str, dict[str, Any]]:
    prompts = [PROMPT, TRICKY]
    cap = capture(tiny_chat_model, prompts, preset="observe", max_tokens=3, n_ctx=128)
    raw = capture(tiny_chat_model, [PROMPT], preset="observe", max_tokens=3, n_ctx=128, chat=False)
    return {"auto": cap.trials[0], "tricky": cap.trials[1], "raw": raw.trials[0], "options": cap.data["options"]}


def _detok(model: Any, ids: list[int]) -> str:
    return model.detokenize(ids, special=True).decode("utf-8")


# ----- what is sent -----------------------------------------------------------------------------
def test_auto_uses_the_template_and_records_the_exact_text(
    tiny_chat_model: Path, chat_trials: dict[str, dict[str, Any]]
) -> None:
    trial = chat_trials["auto"]
    bos, eos = _bos_eos()
    expected = jinja2.Template(CHAT_TEMPLATE).render(
        messages=[{"role": "user", "content": PROMPT}], bos_token=bos, eos_token=eos, add_generation_prompt=True
    )
    assert trial["chat"] is True and trial["prompt"] == PROMPT
    assert trial["prompt_text"] == expected and expected != PROMPT
    assert chat_trials["options"]["chat"] == "auto"
    n = trial["tokens"]["n_prompt"]
    llm = _plain(tiny_chat_model)
    assert trial["tokens"]["ids"][:n] == llm.tokenize(expected.encode(), add_bos=False, special=True)
    # llama-cpp-python's own chat path evaluates the same prompt tokens
    llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], max_tokens=1, temperature=0.0)
    assert [int(i) for i in llm.input_ids[:n]] == trial["tokens"]["ids"][:n]
    assert trial["tokens"]["ids"][:2].count(llm.token_bos()) == 1  # no second BOS


def test_raw_when_the_model_has_no_template(tiny_llama: Path) -> None:
    cap = capture(tiny_llama, [PROMPT], preset="observe", max_tokens=2, n_ctx=128)
    (trial,) = cap.trials
    assert trial["chat"] is False and trial["prompt_text"] == PROMPT
    assert cap.model["chat_template"] is False
    n = trial["tokens"]["n_prompt"]
    assert trial["tokens"]["ids"][:n] == _plain(tiny_llama).tokenize(PROMPT.encode(), add_bos=True, special=True)


def test_chat_false_sends_the_raw_text_to_a_templated_model(
    tiny_chat_model: Path, chat_trials: dict[str, dict[str, Any]]
) -> None:
    trial = chat_trials["raw"]
    assert trial["chat"] is False and trial["prompt_text"] == PROMPT
    n = trial["tokens"]["n_prompt"]
    assert not {"<|user|>", "<|assistant|>", "<|end|>"} & set(trial["tokens"]["texts"][:n])
    assert trial["tokens"]["ids"][:n] == _plain(tiny_chat_model).tokenize(PROMPT.encode(), add_bos=True, special=True)


# ----- template tokens and the user's ---------------------------------------------------------------
@pytest.mark.parametrize("which, prompt", [("auto", PROMPT), ("tricky", TRICKY), ("raw", PROMPT)])
def test_template_marks_leave_exactly_the_users_tokens(
    tiny_chat_model: Path, chat_trials: dict[str, dict[str, Any]], which: str, prompt: str
) -> None:
    trial = chat_trials[which]
    n = trial["tokens"]["n_prompt"]
    ids, texts = trial["tokens"]["ids"][:n], trial["tokens"]["texts"][:n]
    marks = np.array(trial["tokens"]["template"], dtype=bool)
    assert marks.shape == (n,)
    user = np.flatnonzero(~marks)
    assert user.size and np.all(np.diff(user) == 1)  # one contiguous run
    llm = _plain(tiny_chat_model)
    assert _detok(llm, [ids[i] for i in user]) == prompt
    # outside the user's run: the template's text (raw: the BOS llama-cpp-python adds), give or take
    # SentencePiece's inserted spaces
    text = trial["prompt_text"]
    start = text.index(prompt) if which != "tricky" else text.rindex(prompt)
    before, after = _detok(llm, ids[: user[0]]), _detok(llm, ids[user[-1] + 1 :])
    added = "" if trial["chat"] else _bos_eos()[0]
    assert before.replace(" ", "") == (added + text[:start]).replace(" ", "")
    assert after.replace(" ", "") == text[start + len(prompt) :].replace(" ", "")
    specials = {llm.token_bos(), *llm.tokenize(b"<|user|><|end|><|assistant|>", add_bos=False, special=True)}
    assert all(marks[i] for i, t in enumerate(ids) if t in specials)
    assert trial["chat"] == (which != "raw") == ("<|user|>" in texts)


def test_marks_of_known_pieces_are_pure() -> None:
    """A token that straddles the user's span is the template's; inserted bytes match nothing."""
    text = "<s>[ab|cd]"
    pieces = [b"<s>", b" ", b"[", b"ab", b"|c", b"d", b"]"]
    assert marks_from_pieces(pieces, text, (4, 6)) == [True, True, True, False, True, True, True]
    assert marks_from_pieces(pieces, text, None) == [True] * len(pieces)
    assert marks_from_pieces([b"\xc3", b"\xa9t\xc3\xa9"], "été", (0, 3)) == [False, False]  # split UTF-8


def test_captures_without_the_new_fields_still_load(chat_capture_path: Path) -> None:
    doc = load_capture(chat_capture_path).data
    assert doc["trials"][0]["chat"] is True
    for t in doc["trials"]:
        del t["chat"], t["prompt_text"], t["tokens"]["template"]
    del doc["model"]["chat_template"]
    old = Capture.from_bytes(orjson.dumps(doc))  # validated against the schema
    detail = trial_detail(old, 0)
    assert detail["chat"] is False and detail["prompt_text"] == detail["prompt"]
    assert not any(t["template"] for t in detail["tokens"])


# ----- errors: one line, nothing captured --------------------------------------------------------
def test_chat_true_without_a_template_is_a_one_line_error(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.json"
    with pytest.raises(ValueError) as info:
        capture(tiny_llama, [PROMPT], max_tokens=2, n_ctx=128, chat=True, out=out)
    message = str(info.value)
    assert "\n" not in message and "no chat template" in message and "--raw" in message
    assert not out.exists()
    with pytest.raises(ValueError, match="chat must be"):
        capture(tiny_llama, [PROMPT], chat="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{% for m in messages %}{{ m['content'] | shout }}{% endfor %}", "shout"),
        ("{{ raise_exception('this template refuses user messages') }}", "refuses user messages"),
        ("{% for m in messages %}{{ m['content'] }}", "endfor"),
    ],
)
def test_a_template_that_fails_is_a_one_line_error(template: str, problem: str, tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "broken.gguf", seed=1, chat_template=template)
    out = tmp_path / "never.json"
    with pytest.raises(ValueError) as info:
        capture(model, [PROMPT, "second"], max_tokens=2, n_ctx=128, out=out)
    message = str(info.value)
    assert "\n" not in message and "chat template" in message and problem in message and "--raw" in message
    assert not out.exists()
    raw = capture(model, [PROMPT], max_tokens=2, n_ctx=128, chat=False)  # raw still works
    assert raw.trials[0]["chat"] is False


# ----- the end of turn ----------------------------------------------------------------------------
def test_generation_stops_at_the_end_of_turn_token(end_model: Path) -> None:
    llm = _plain(end_model)
    (end_id,) = llm.tokenize(END_OF_TURN.encode(), add_bos=False, special=True)
    assert int(llm.metadata["tokenizer.ggml.eot_token_id"]) == end_id
    assert llama_cpp.llama_vocab_is_eog(llm._model.vocab, end_id)
    with Session(end_model, preset="observe", n_ctx=128) as s:
        trial = s.run(PROMPT, max_tokens=16)
        # the same logits without the end of turn would go on: the greedy choice is <|end|> at every step
        forced = s.model(s.format(PROMPT).tokens, max_tokens=3, temperature=0.0, logit_bias={end_id: -1e9})
    assert trial.chat and trial.sampled == [end_id]
    assert trial.response == "" and [st.phase for st in trial.steps] == ["prefill"]
    assert forced["choices"][0]["finish_reason"] == "length"


def test_session_format_is_what_run_sends(tiny_chat_model: Path) -> None:
    with Session(tiny_chat_model, preset="observe", n_ctx=128) as s:
        sent = s.format(PROMPT)
        trial = s.run(PROMPT, max_tokens=2, chat=sent)
        assert trial.prompt_text == sent.text and trial.token_ids[: trial.n_prompt] == sent.tokens
        assert sent.stop == [s.model.detokenize([s.model.token_eos()], special=True).decode()]
        assert format_prompt(s.model, PROMPT, chat=False).text == PROMPT


# ----- how generation stops ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def byte_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Greedy decoding picks the byte token 0xE2 at every step: a UTF-8 lead byte whose sequence
    never completes, so llama-cpp-python holds the text back and skips its max_tokens check."""
    out = tmp_path_factory.mktemp("byte") / "byte.gguf"
    return write_tiny_model(out, seed=3, prefer_token="<0xE2>")


def test_max_tokens_holds_while_the_text_is_incomplete_utf8(byte_model: Path) -> None:
    plain = _plain(byte_model)
    first = next(plain.generate(plain.tokenize(b"hello"), temp=0.0))
    assert plain.detokenize([first]) == b"\xe2"  # the premise: greedy decoding makes the lone lead byte
    with Session(byte_model, preset="observe", n_ctx=128) as s:
        trial = s.run("hello", max_tokens=5, chat=False)
    # llama-cpp-python evaluates each held-back token before it samples the next, so the guard
    # stops one decode later than its own check would: at most max_tokens + 1, never the context.
    assert 5 <= len(trial.token_ids) - trial.n_prompt <= 6
    assert trial.errors == []


def test_a_run_longer_than_the_context_stops_at_the_context(byte_model: Path) -> None:
    with Session(byte_model, preset="observe", n_ctx=128) as s:
        n_ctx = s._n_ctx()
        trial = s.run("hello", max_tokens=n_ctx + 50, chat=False)
    # the context full, not llama_decode's failure: n_ctx tokens evaluated, and the one sampled last
    assert len(trial.token_ids) == n_ctx + 1
    assert trial.errors == []
