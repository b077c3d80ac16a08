"""The errors Spectra Vis raises on purpose: each message is one line saying what was wrong and what to do.

Stage: none (every stage may import it); it imports nothing of Spectra Vis.
"""

from __future__ import annotations


class SpectraVisError(Exception):
    """Base class of the errors Spectra Vis raises with a one-line, actionable message."""


class LlamaBuildError(SpectraVisError, RuntimeError):
    """The installed llama.cpp build crashes on this CPU (seen by the probe in a child process)."""


class ProbeUnavailable(SpectraVisError, RuntimeError):
    """The build probe could not run at all (no space for its model, a child that failed to start)."""
