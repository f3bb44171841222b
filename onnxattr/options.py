"""The names and defaults of every choice a user makes: LAM paths, L2X targets, GL-AM layers,
window frames, masking ratios, figure formats and styles.

Pure Python, no torch: the method modules take their defaults from here, and the CLI builds its commands
from here without importing torch, onnx or onnxruntime (``onnxattr lam --help`` stays fast).
"""

from __future__ import annotations

FRAMES = ("hr", "sr")  # window coordinates: HR-image pixels (LR x scale) or output pixels

PATHS = ("lam", "ig_blur", "ig_black", "i_gradient", "gradient")  # LAM's integration paths
BASELINES = ("gaussian", "bilateral", "median", "blur", "black")  # i_gradient's baseline: LAM_Demo IG_baseline
# 'gaus', 'bif', 'mean', GaussianLinearPath's blur (--sigma, --kernel-size) and LinearPath's black
OBJECTIVES = ("grad", "intensity", "gabor")  # the window's objective D: LAM_Demo attr_grad, attr_id, attr_gabor
REDUCTIONS = ("sum", "mean")  # how D reduces the window (LAM_Demo reduce_func)
SMOOTH_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")  # noise tunnel: mean, mean of squares, variance
DEFAULT_MEMORY_FRACTION = 0.5  # share of free memory LAM's batch may use

TARGETS = ("detector", "sum", "pixel")  # L2X's explained quantity ("detector": the window objective D)
ERF_MASSES = (0.2, 0.5, 0.95)  # ERF: shares of the mass whose radii a result holds
UNKNOWN_OPS = ("error", "gradient")  # L2X on an op without a rule

DEFAULT_LAYERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # GL-AM's explained op types
VARIATIONS = ("abs", "signed")  # GL-AM's variation term (eqs. 2 and 5)

DEFAULT_SEEDS = 5  # masking: random pixel orders averaged
DEFAULT_RATIOS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)  # masking: shares of the support replaced

FORMATS = (".png", ".pdf", ".svg")  # figure files
DEFAULT_DPI = 200
STYLE_NAMES = ("overview", "paper")  # plot.common.STYLES holds their sizes
WIDTHS = ("single", "double")  # paper figures: one journal column (3.4 in) or two (7.0 in)
