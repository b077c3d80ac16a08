"""Comparing stage: the same tokens through two models (teacher forcing), as one capture.

``capture_pair(A, B, prompt)`` captures A generating (the reference), then B reading A's exact
tokens, prompt and response, one step per token (the candidate, ``forced``). B's sampled tokens
are what it would have chosen greedily at each step, so disagreements show as well. Both run
on one collector, so the two trials share one tensor catalogue and one vectors file; each trial
carries its own model card and its logit lens through its own model's head, and the candidate
stores the exact next-token comparison (KL, top-1 agreement) computed while both GGUF files are
at hand, so that the pair compares later without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from spectra_vis.capturing.chat import ChatMode
from spectra_vis.capturing.lens import LogitLens, add_lens
from spectra_vis.capturing.session import RunOptions, Session
from spectra_vis.comparing import next_token_block
from spectra_vis.errors import InvalidArgument, ModelFileError, Unsupported
from spectra_vis.store.capture_file import Capture, validate


def capture_pair(
    model_a: str | os.PathLike[str],
    model_b: str | os.PathLike[str],
    prompt: str,
    *,
    preset: str = "standard",
    max_tokens: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
    n_ctx: int = 512,
    n_threads: int | None = None,
    chat: ChatMode = "auto",
    out: str | os.PathLike[str] | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    **preset_options: Any,
) -> Capture:
    """Trial 0: ``model_a`` generating from ``prompt``; trial 1: ``model_b`` forced through the same
    tokens. InvalidArgument when the vocabularies differ. Saved to ``out`` when given; on Ctrl-C
    what was captured is saved (and attached to the KeyboardInterrupt as ``.capture``)."""
    if not prompt:
        raise ValueError("give a non-empty prompt")
    opts = RunOptions(max_tokens=max_tokens, temperature=temperature, seed=seed, n_ctx=n_ctx, n_threads=n_threads)
    options = {**opts.to_dict(), "chat": chat, "pair": f"{os.path.basename(model_a)} vs {os.path.basename(model_b)}"}
    emit = on_event or (lambda kind, payload: None)
    with Session(model_a, preset, n_ctx=n_ctx, n_threads=n_threads, seed=seed, lens=False, **preset_options) as s:
        emit("collector", s.collector)
        card_a = s.collector.model_card
        vocab_a = s.vocabulary()
        sent = s.format(prompt, chat)
        try:
            emit("model", card_a)
            emit("trial_start", (0, prompt))
            ref = s.run(prompt, opts.max_tokens, opts.temperature, opts.seed, emit, chat=sent)
            s.swap_model(model_b)
            card_b = s.collector.model_card
            vocab_b = s.vocabulary()
            if vocab_b != vocab_a:
                raise InvalidArgument(
                    f"{card_b.file_name} has another vocabulary than {card_a.file_name} ({vocab_b[0]} and "
                    f"{vocab_a[0]} tokens, {'same' if vocab_a[0] == vocab_b[0] else 'different'} size): "
                    "a quantization comparison needs the same tokenizer"
                )
            emit("model", card_b)
            emit("trial_start", (1, prompt))
            cand = s.force(prompt, ref.token_ids, ref.n_prompt, emit)
            cand.chat, cand.prompt_text, cand.template = ref.chat, ref.prompt_text, ref.template
        except KeyboardInterrupt as interrupt:
            s.collector.model_card = card_a
            interrupt.capture = _finish(s.capture(None, options), card_a, None, model_a, None, s, out)  # type: ignore[attr-defined]
            raise
        s.collector.model_card = card_a  # the capture's card is the reference's
        return _finish(s.capture(None, options), card_a, card_b, model_a, model_b, s, out)


def _finish(cap: Capture, card_a: Any, card_b: Any, model_a: Any, model_b: Any, s: Session, out: Any) -> Capture:
    """Mark the pair, add each trial's lens through its own model and the candidate's next-token
    block, validate, save."""
    trials = cap.data["trials"]
    text_of = s.collector.token_text
    add_lens(cap, model_a, text_of, trials=[0])
    trials[0]["model"] = card_a.to_dict()
    if len(trials) > 1 and card_b is not None:
        add_lens(cap, model_b, text_of, trials=[1])
        trials[1]["model"] = card_b.to_dict()
        trials[0]["pair"] = {"role": "reference", "candidate": 1, "forced": False}
        trials[1]["pair"] = {"role": "candidate", "reference": 0, "forced": True}
        n = min(len(trials[0]["tokens"]["ids"]), len(trials[1]["tokens"]["ids"]))
        if cap.arrays:
            try:
                heads = (LogitLens.from_gguf(model_a), LogitLens.from_gguf(model_b))
                block = next_token_block(cap, 0, cap, 1, heads, n)
                trials[1]["pair"]["next_token"] = _json_block(block)
            except (Unsupported, ModelFileError, InvalidArgument) as exc:
                cap.data["options"]["compare"] = f"no next-token comparison: {exc}"
            except Exception as exc:  # noqa: BLE001 - the vectors may lack the final norm: keep the capture
                cap.data["options"]["compare"] = f"no next-token comparison: {type(exc).__name__}: {exc}"
    validate(cap.data)
    if out is not None:
        cap.save(out)
    return cap


def _json_block(block: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for k, v in block.items():
        if k.startswith("top1"):
            out[k] = [None if x != x else int(x) for x in v.tolist()]
        else:
            out[k] = [None if x != x else round(float(x), 8) for x in v.tolist()]
    return out
