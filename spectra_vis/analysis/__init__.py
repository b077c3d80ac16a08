"""Analysis stage: the views the viewer shows, computed from a loaded ``Capture``.

Pure functions (one module per group of views: ``overview``, ``grid``, ``trials``,
``attention``) returning plain JSON-ready dicts: the tensor grid, heat maps, per-layer and
per-category analysis, trial and step details, attention per token and the trial's
interpretation. The REST API (``backend/``) serves these payloads unchanged, so a script
gets the same numbers from ``spectra_vis.analysis`` as from the server. Fingerprints,
zones and cognitive states come from ``interpret`` (defined once there). Depends on the
capture, profiles and interpret stages only; imports no web or UI package.

Lookups of things a capture does not have (trial, step, layer, head, token) raise
``NotFound``; invalid arguments raise ``InvalidArgument`` (a ValueError). Messages are one line.
"""

from spectra_vis.analysis._common import (
    HEATMAP_AXES,
    INTENSITY_SCALE,
    STATE_COLORS,
    TOP_TENSORS,
    ZONE_COLORS,
    HeatmapAxis,
    InvalidArgument,
    NotFound,
)
from spectra_vis.analysis.attention import attention, interpretation
from spectra_vis.analysis.grid import heatmap, tensor_grid
from spectra_vis.analysis.logit_lens import lens_cell, lens_grid
from spectra_vis.analysis.overview import analyze, colors, flows, models, summary
from spectra_vis.analysis.steering import projection
from spectra_vis.analysis.trials import step_detail, trial_detail
from spectra_vis.constants import MAX_DEPTH, METRICS

__all__ = [
    "HEATMAP_AXES",
    "INTENSITY_SCALE",
    "MAX_DEPTH",
    "METRICS",
    "STATE_COLORS",
    "TOP_TENSORS",
    "ZONE_COLORS",
    "HeatmapAxis",
    "InvalidArgument",
    "NotFound",
    "analyze",
    "attention",
    "colors",
    "flows",
    "heatmap",
    "interpretation",
    "lens_cell",
    "lens_grid",
    "models",
    "projection",
    "step_detail",
    "summary",
    "tensor_grid",
    "trial_detail",
]
