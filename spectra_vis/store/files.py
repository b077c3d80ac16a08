"""Store stage: writing files atomically (a temporary file in the same folder, then a rename), so a
reader never sees half a file and an interrupted write leaves the old file as it was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write_with(target: Path, write: Callable[[str], object]) -> None:
    """``write(path)`` fills a temporary file beside ``target``; it is synced, given the permissions
    an ordinary new file gets (mkstemp makes 0600) and renamed over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(target: Path, payload: bytes) -> None:
    """Write bytes to ``target`` atomically."""
    atomic_write_with(target, lambda path: Path(path).write_bytes(payload))
