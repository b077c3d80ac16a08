"""Wizard: turn what a user pastes or drags into a terminal into a model path, and check it.

Drag and drop pastes the path quoted ('/a b/m.gguf', "C:\\m.gguf"), backslash-escaped
(/a\\ b/m.gguf), as a file:// URL, or (PowerShell) as ``& 'C:\\m.gguf'``; users type ``~``.
The GGUF check itself is the library's (``profiles.check_gguf_file``: exists, is a file,
starts with the GGUF magic bytes). Imports no UI package.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from spectra_vis.record.profiles import ModelFileError, check_gguf_file

__all__ = ["ModelFileError", "check_model", "clean_path"]

_QUOTES = ("'", '"')


def clean_path(text: str) -> Path:
    """The path a pasted or typed string means (quotes, escapes, file:// and ~ resolved)."""
    s = text.strip()
    if s.startswith("& "):  # PowerShell pastes a dropped file as a call: & 'C:\path'
        s = s[2:].strip()
    quoted = len(s) >= 2 and s[0] == s[-1] and s[0] in _QUOTES
    if quoted:
        s = s[1:-1]
    if s.lower().startswith("file://"):
        s = _from_file_url(s)
    elif not quoted and os.sep == "/" and "\\" in s:
        s = re.sub(r"\\(.)", r"\1", s)  # shell escapes: '/a\ b' -> '/a b' (not on Windows: \ is the separator)
    return Path(os.path.expanduser(s))


def _from_file_url(url: str) -> str:
    parsed = urlparse(url)
    path = unquote(parsed.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/models/m.gguf
        path = path[1:]
    if parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"  # a UNC share
    return path


def check_model(text: str | os.PathLike[str]) -> Path:
    """The cleaned path if it is a GGUF file; else ModelFileError with a one-line reason."""
    path = clean_path(text) if isinstance(text, str) else Path(text)
    if not str(path).strip() or str(path) == ".":
        raise ModelFileError("no model path given; type or drag the path of a .gguf file")
    return check_gguf_file(path)
