"""A built-in dataset of scientific-looking figures with copy-move forgeries of every kind.

With no Kaggle data, this is what the pipeline first trains and measures on, so it imitates the
real thing rather than a toy: western blots and gels, fluorescence micrographs, stained tissue,
electron micrographs and multi-panel figures, each full of repeats that are NOT forgeries
(similar cells, regular lanes, panel letters, scale bars, split-channel panels beside their
merge). Forgeries copy objects (maybe rotated), rectangular patches, blot lanes and whole panels.

Everything is drawn from per-case child seeds of `synth.seed` with NumPy and SciPy pixel
operations of the package's own (`raster`, `text`, `png`), so the same params give
byte-identical files whatever OpenCV or Pillow is installed, and case i never depends on how many
cases come before it.

Layout: `figures` is the registry of figure kinds (one module each: `blot`, `fluorescence`,
`histology`, `em`, `panels`); `forge` holds the forgery kinds; `dataset` writes the whole set.
"""
from .canvas import Box, Figure
from .dataset import (
    MODES, CasePlan, GenerationSummary, SyntheticCase, check_synth_params, generate_dataset, make_case, plan_cases,
)
from .figures import KINDS, render_figure
from .forge import FORGERY_KINDS, MAX_FORGED_FRACTION, MIN_FORGED_FRACTION, Forgery, ForgeryError, forge

__all__ = [
    "Box", "CasePlan", "FORGERY_KINDS", "Figure", "Forgery", "ForgeryError", "GenerationSummary", "KINDS",
    "MAX_FORGED_FRACTION", "MIN_FORGED_FRACTION", "MODES", "SyntheticCase", "check_synth_params", "forge",
    "generate_dataset", "make_case", "plan_cases", "render_figure",
]
