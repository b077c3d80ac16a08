"""Capture overhead against plain llama-cpp-python, measured in one interleaved run (issue 7).

    python benchmarks/bench_overhead.py                 # demo Gemma 3 270M; writes docs/PERFORMANCE.md
    python benchmarks/bench_overhead.py --big           # also a generated ~1B-parameter random llama
    python benchmarks/bench_overhead.py --quick --model m.gguf   # a short run, no file written

Same as ``spectra-vis bench``; the code is ``spectra_vis.bench``. Reports ratios; asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectra_vis.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
