"""The errors Spectra Vis raises on purpose: each message is one line saying what was wrong and what to do.

Stage: none (every stage may import it); it imports nothing of Spectra Vis. What each error means
to an HTTP client is decided in one place, ``backend/server.py``; nothing here knows a status code.
"""

from __future__ import annotations


class SpectraVisError(Exception):
    """Base class of the errors Spectra Vis raises with a one-line, actionable message."""


class CaptureError(SpectraVisError, ValueError):
    """A capture (or trace) file that cannot be read: not JSON, truncated, wrong format or version."""


class ModelFileError(SpectraVisError, ValueError):
    """A model path that is not a readable GGUF file, or a model llama.cpp refuses to load."""


class NotFound(SpectraVisError, KeyError):
    """No such trial, step, layer, head, tensor type or loaded capture. A KeyError, so code that
    caught the KeyError of ``Capture.trial`` keeps working; printed without KeyError's quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgument(SpectraVisError, ValueError):
    """An argument outside what is accepted: an unknown metric or family, a malformed path."""


class WrongFileType(InvalidArgument):
    """A file of a kind that is not accepted here (an upload that is not a capture or trace)."""


class Unsupported(SpectraVisError, ValueError):
    """Something this model or capture cannot give, said plainly rather than answered wrongly
    (a logit lens for an architecture whose output path it does not mirror)."""


class Forbidden(SpectraVisError, PermissionError):
    """A path that leads outside the directories Spectra Vis may read."""


class TooLarge(SpectraVisError, ValueError):
    """A file or upload over the configured size limit."""


class NativeUnavailable(SpectraVisError, RuntimeError):
    """The native capture callback cannot be built or loaded here (the Python one is used instead)."""


class LlamaBuildError(SpectraVisError, RuntimeError):
    """The installed llama.cpp build crashes on this CPU (seen by the probe in a child process)."""


class ProbeUnavailable(SpectraVisError, RuntimeError):
    """The build probe could not run at all (no space for its model, a child that failed to start)."""


class Busy(SpectraVisError, RuntimeError):
    """A queue is full (or closing): the request may succeed later, unchanged."""
