"""onnxattr: attribution maps (LAM, L2X, GL-AM) for super-resolution networks exported to ONNX."""

__version__ = "0.1.0"

from .compare import compare  # noqa: E402
from .errors import OnnxAttrError, UnsupportedOpError  # noqa: E402
from .glam import glam  # noqa: E402
from .image import read_image  # noqa: E402
from .l2x import l2x  # noqa: E402
from .lam import lam  # noqa: E402
from .model import SRModel, load_model  # noqa: E402
from .results import load, save  # noqa: E402
from .target import Grid, Window  # noqa: E402

__all__ = ["Grid", "OnnxAttrError", "SRModel", "UnsupportedOpError", "Window", "compare", "glam", "l2x", "lam", "load", "load_model", "read_image", "save"]
