"""How a child process ended: the one rule shared by the setup script and the library's probe.

Standard library only: ``scripts/llama_build.py`` loads this file by path before Spectra Vis
or any of its dependencies is installed.
"""

from __future__ import annotations

import signal


def died_by_signal(returncode: int) -> str | None:
    """The signal (or Windows exception) a child died of; None when it exited by itself."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    if returncode >= 0xC0000000:  # an NTSTATUS: 0xC0000005 access violation, 0xC000001D illegal instruction
        return f"exception 0x{returncode:08X}"
    return None
