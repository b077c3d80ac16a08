"""Chat formatting: what text a prompt becomes before llama.cpp sees it, and which of its tokens are the user's.

Most GGUF files are instruct models; given a bare prompt they often answer with their
end-of-turn token at once. ``format_prompt`` wraps a prompt as a one-message user
conversation with the model's own template (``tokenizer.chat_template``), exactly as
llama-cpp-python's ``create_chat_completion`` does: its ``Jinja2ChatFormatter`` with the
model's bos/eos token texts, the rendered text tokenized with special tokens parsed and no
extra BOS, the formatter's stop strings and stop-token criteria. ``template_marks`` says, for
every prompt token, whether the template (or the tokenizer) added it rather than the user's text.

Depends on llama-cpp-python's chat classes only; imports no UI package. Errors are one-line
ValueErrors saying what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

ChatMode = bool | Literal["auto"]
TEMPLATE_KEY = "tokenizer.chat_template"
_SENTINEL = "\u2063SPECTRA-VIS-USER-MESSAGE\u2063"  # located in a second rendering to find the user's span


@dataclass
class FormattedPrompt:
    """A prompt as sent: ``text`` (the exact text), ``chat`` (formatted with the template or not),
    ``user_span`` (character offsets of the user's own text in ``text``, None when not found),
    ``tokens`` (the ids to send; None: send ``text`` and let llama-cpp-python tokenize it),
    and what ends generation besides llama.cpp's end-of-generation tokens."""

    prompt: str
    text: str
    chat: bool
    user_span: tuple[int, int] | None
    tokens: list[int] | None = None
    stop: list[str] = field(default_factory=list)
    stopping_criteria: Any = None

    def generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Llama.__call__`` besides the sampling settings."""
        if not self.chat:
            return {}
        return {"stop": list(self.stop), "stopping_criteria": self.stopping_criteria}

    def prompt_input(self) -> str | list[int]:
        return self.tokens if self.tokens is not None else self.text


def check_mode(chat: Any) -> ChatMode:
    """``chat`` must be "auto", True or False."""
    if chat == "auto" or isinstance(chat, bool):
        return chat  # type: ignore[no-any-return]
    raise ValueError(f"chat must be 'auto', True or False, not {chat!r}")


def chat_template(model: Any) -> str | None:
    """The model's default chat template from its GGUF metadata, or None."""
    template = (getattr(model, "metadata", None) or {}).get(TEMPLATE_KEY)
    return template if isinstance(template, str) and template.strip() else None


def format_prompt(model: Any, prompt: str, chat: ChatMode = "auto") -> FormattedPrompt:
    """``prompt`` as the model will get it. ``chat="auto"`` uses the GGUF's template when there
    is one, else the raw text; True requires a template; False always sends the raw text."""
    mode = check_mode(chat)
    template = chat_template(model) if mode is not False else None
    if template is None:
        if mode is True:
            name = getattr(model, "model_path", "the model")
            raise ValueError(
                f"chat formatting was asked for, but {name} has no chat template ({TEMPLATE_KEY}) in its GGUF "
                "metadata; send the prompt raw (chat=False, or --raw)"
            )
        return FormattedPrompt(prompt=prompt, text=prompt, chat=False, user_span=(0, len(prompt)))
    formatter = _formatter(model, template)
    response = _render(formatter, prompt)
    text = response.prompt
    tokens = model.tokenize(text.encode("utf-8"), add_bos=not response.added_special, special=True)
    stop = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
    return FormattedPrompt(
        prompt=prompt,
        text=text,
        chat=True,
        user_span=_user_span(formatter, prompt, text),
        tokens=list(tokens),
        stop=[s for s in stop if s],
        stopping_criteria=response.stopping_criteria,
    )


@contextlib.contextmanager
def deferred_template_errors() -> Iterator[None]:
    """While a model loads: a chat template that does not compile is kept, not fatal.

    ``Llama.__init__`` compiles every GGUF chat template, so one with a syntax error or an
    unknown filter makes the whole load fail, raw prompts included. Inside this context such a
    template becomes a formatter that raises only when used; ``format_prompt`` then reports it
    in one line (and ``chat=False`` works). The module attribute is restored afterwards.
    """
    import jinja2
    from llama_cpp import llama_chat_format

    original = llama_chat_format.Jinja2ChatFormatter

    class Deferred(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.error: jinja2.TemplateError | None = None
            try:
                super().__init__(*args, **kwargs)
            except jinja2.TemplateError as exc:
                self.error = exc

        def __call__(self, **kwargs: Any) -> Any:
            if self.error is not None:
                raise self.error
            return super().__call__(**kwargs)

    llama_chat_format.Jinja2ChatFormatter = Deferred  # type: ignore[misc]
    try:
        yield
    finally:
        llama_chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]


def _formatter(model: Any, template: str) -> Any:
    """The formatter ``Llama.__init__`` builds for a GGUF template (same token texts and stop ids)."""
    import jinja2
    from llama_cpp import llama_chat_format

    eos_id, bos_id = model.token_eos(), model.token_bos()
    eos = model._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = model._model.token_get_text(bos_id) if bos_id != -1 else ""
    try:
        return llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]
        )
    except jinja2.TemplateError as exc:
        raise _template_error(exc) from None


def _render(formatter: Any, content: str) -> Any:
    import jinja2

    try:
        return formatter(messages=[{"role": "user", "content": content}])
    except (jinja2.TemplateError, ValueError, TypeError, KeyError) as exc:  # raise_exception() gives ValueError
        raise _template_error(exc) from None


def _template_error(exc: BaseException) -> ValueError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ValueError(
        f"the model's chat template ({TEMPLATE_KEY}) could not be rendered: {type(exc).__name__}: {reason}; "
        "send the prompt raw (chat=False, or --raw)"
    )


def _user_span(formatter: Any, prompt: str, text: str) -> tuple[int, int] | None:
    """Where the user's message is in ``text``: at the offset a sentinel message has in a second
    rendering (so a prompt such as "user" is not found inside ``<|user|>``), else its last occurrence."""
    try:
        probe = formatter(messages=[{"role": "user", "content": _SENTINEL}]).prompt
    except Exception:  # noqa: BLE001 - a template that refuses the sentinel: fall back to searching
        probe = ""
    start = probe.find(_SENTINEL)
    if start >= 0 and text.startswith(prompt, start):
        return start, start + len(prompt)
    found = text.rfind(prompt) if prompt else -1
    return (found, found + len(prompt)) if found >= 0 else None


def template_marks(model: Any, sent: FormattedPrompt, token_ids: list[int]) -> list[bool]:
    """For each prompt token: True when it is not the user's own text (the template's markers, BOS).

    The tokens' texts (detokenized one by one, special tokens included, as llama-cpp-python
    concatenates them) are aligned with the text sent, byte by byte; a token is the user's when
    it has text that matches the sent text and all of that text lies inside the user's span.
    Bytes the tokenizer inserted (a SentencePiece space prefix, an implicit BOS) match nothing.
    """
    pieces = [model.detokenize([t], special=True) for t in token_ids]
    return marks_from_pieces(pieces, sent.text, sent.user_span)


def marks_from_pieces(pieces: list[bytes], text: str, user_span: tuple[int, int] | None) -> list[bool]:
    """``template_marks`` on token texts already known (pure; tested without a model)."""
    if user_span is None:
        return [True] * len(pieces)
    sent = text.encode("utf-8")
    lo = len(text[: user_span[0]].encode("utf-8"))
    hi = lo + len(text[user_span[0] : user_span[1]].encode("utf-8"))
    joined = b"".join(pieces)
    where = _byte_map(joined, sent)  # joined byte index -> sent byte index, or -1
    marks, offset = [], 0
    for piece in pieces:
        mapped = [where[i] for i in range(offset, offset + len(piece)) if where[i] >= 0]
        offset += len(piece)
        marks.append(not mapped or not all(lo <= m < hi for m in mapped))
    return marks


def _byte_map(a: bytes, b: bytes) -> list[int]:
    """For each byte of ``a``, the index of the byte of ``b`` it matches (difflib), or -1."""
    if a == b:
        return list(range(len(a)))
    where = [-1] * len(a)
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            where[block.a + k] = block.b + k
    return where
