#!/usr/bin/env python3
"""Capture what llama.cpp computes inside a GGUF model (step one; step two is ./start_server.sh).

    python capture_tensors.py                      # the wizard asks everything
    python capture_tensors.py --model m.gguf --prompt "What is the capital of France?"
    python capture_tensors.py --help

A thin entry point: all the work is in spectra_vis.wizard, which calls spectra_vis.capture.
Captures go to data/ beside this file (or $SPECTRA_DATA_DIR), where the viewer looks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))  # runs from a checkout even before `pip install -e .`
    os.environ.setdefault("SPECTRA_DATA_DIR", str(HERE / "data"))
    try:
        from spectra_vis.wizard import main
    except ImportError as exc:
        print(f"capture_tensors.py: error: {exc}; set up first: pip install -e .[cli,demo]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:], prog="capture_tensors.py"))
