"""Facts every stage shares, stated once: the special layers, the statistics and metrics, the depth levels.

Stage: none (every stage may import it); it imports nothing of Spectra Vis. The viewer does not
retype them: the API sends them (``/api/models``: ``special_layers``, ``metrics``, ``depth_levels``).
"""

from __future__ import annotations

from typing import Literal, get_args

# Layer convention (as the original Spectra Vis): -1 embedding, 0..N-1 blocks, 998 final norm, 999 output.
EMBED_LAYER = -1
FINAL_NORM_LAYER = 998
OUTPUT_LAYER = 999
SPECIAL_LAYERS = {"embedding": EMBED_LAYER, "final_norm": FINAL_NORM_LAYER, "output": OUTPUT_LAYER}

# The statistics kept per tensor and per token row, in the order the capture stores them.
STAT_NAMES = ("l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite")
# What the views can colour by: a statistic, or how often a node was evaluated.
Metric = Literal["l2", "mean", "std", "min", "max", "absmax", "sparsity", "nonfinite", "count"]
METRICS: tuple[str, ...] = get_args(Metric)
assert METRICS == (*STAT_NAMES, "count")

# Depth levels of the viewer's depth selector: each level adds to the one before it.
DEPTH_OUTPUTS = 0  # layer outputs (residual stream), embedding, logits
DEPTH_BLOCKS = 1  # + attention and FFN outputs, attention probabilities
DEPTH_PROJECTIONS = 2  # + Q/K/V, gate/up, attention scores
DEPTH_NORMS = 3  # + norms
DEPTH_ALL = 4  # everything (views, cache writes, unattributed nodes)
MAX_DEPTH = DEPTH_ALL
DEPTH_LEVELS = ("Layer outputs only", "+ attention and FFN", "+ projections", "+ norms", "Everything")
