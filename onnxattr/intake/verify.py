"""Two checks of a load against onnxruntime, on the verification image.

* ``conversion_error``: max |torch - ORT| / max |ORT| between the converted graph and onnxruntime on the core;
  above ``VERIFY_TOLERANCE`` the load is refused naming the first diverging node (``diagnose``).
* ``precision_gap``: the same measure between onnxruntime on the *original* file (fed what it takes: float16,
  uint8, NHWC, BGR) and on the core; reported, never refused, warned about above what the file's precision
  explains (``PRECISION_TOLERANCE``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import fx

from ..errors import OnnxAttrError, beside, error_line
from .adapters import Adapter
from .convert import OpTable
from .diagnose import first_divergence, relative_error

VERIFY_TOLERANCE = 1e-4
# relative error a file's own rounding explains, by precision (the precision gap is warned above it)
PRECISION_TOLERANCE = {"float32": VERIFY_TOLERANCE, "float16": 1e-2, "bfloat16": 1e-1}
UINT8_TOLERANCE = 1e-2  # a uint8 output rounds to 1/255 of the range, plus the float16-like steps before it


def conversion_error(
    name: str, proto: onnx.ModelProto, graph: fx.GraphModule, ops: OpTable, input_name: str,
    units: tuple[float, float], precision: str, x: np.ndarray, y_ort: np.ndarray, device: torch.device,
) -> float:
    """max |torch - ORT| / max |ORT| of the full graph on ``x`` ([0, 1]) against onnxruntime's ``y_ort`` ([0, 1] units;
    ``units`` = (input range, output range)); refused above VERIFY_TOLERANCE, naming the cause."""
    with torch.no_grad():
        # the full graph, one plain forward: a fast copy specialised to the probe's shape would cost two runs and
        # serve no method (each fast copy is checked against the full graph at its own shape, fastgraph.specialise)
        got = (graph(torch.from_numpy(x).to(device) * units[0]) / units[1]).cpu().numpy()
    if got.shape != y_ort.shape:
        raise OnnxAttrError(f"converted {name} returns shape {got.shape}, onnxruntime {y_ort.shape}; a converter is wrong")
    err = relative_error(got, y_ort)
    if np.isfinite(err) and err <= VERIFY_TOLERANCE:
        return err

    def where() -> str:
        return first_divergence(proto, graph, ops, input_name, (x * units[0]).astype(np.float32), VERIFY_TOLERANCE)

    if not np.isfinite(got).all():
        raise OnnxAttrError(
            f"converted {name} returns NaN/Inf where onnxruntime is finite: {where()}; a converter in converters/ is wrong"
        )
    if precision != "float32" and err <= PRECISION_TOLERANCE[precision]:
        raise OnnxAttrError(
            f"converted {name} differs from onnxruntime by {err:.2e}, within the {precision} file's own precision "
            f"({PRECISION_TOLERANCE[precision]:g}) but above the float32 check ({VERIFY_TOLERANCE:g}): part of the "
            "graph still computes in low precision; pass --no-verify to accept it"
        )
    raise OnnxAttrError(
        f"converted {name} differs from onnxruntime by {err:.2e} (relative max, limit "
        f"{VERIFY_TOLERANCE:g}): {where()}; a converter in converters/ is wrong"
    )


def precision_gap(
    name: str, adapter: Adapter, file_session: ort.InferenceSession, units: tuple[float, float], x: np.ndarray,
    y_core: np.ndarray,
) -> tuple[float, str | None]:
    """max |ORT on the original file - ORT on the core| / max |core| on ``x``, in [0, 1] units, and a warning (or
    None) when the file fails, is not finite, or differs more than its precision explains."""
    a = adapter
    try:
        y = a.from_file(file_session.run(None, {a.input_name: a.to_file(x * units[0])})[0]) / units[1]
    except Exception as err:  # noqa: BLE001
        return float("nan"), f"{name}: the original file fails in onnxruntime on the probe ({error_line(err)})"
    if y.shape != y_core.shape or not np.isfinite(y).all():
        what = f"shape {y.shape}" if y.shape != y_core.shape else "NaN/Inf"
        return float("inf"), (
            f"onnxruntime returns {what} on the {a.precision} file {name} itself (the float32 core "
            "graph, which all attribution uses, is finite): the file's own precision fails on this probe"
        )
    gap = relative_error(y, y_core)
    tol = max(PRECISION_TOLERANCE[a.precision], UINT8_TOLERANCE if "uint8" in (a.input_dtype, a.output_dtype) else 0)
    if gap > tol:
        gap_text, tol_text = beside(gap, tol)
        return gap, (
            f"{name}: the {a.precision} file differs from its float32 graph by {gap_text} on the probe, "
            f"more than its precision explains ({tol_text}); attributions follow the float32 graph"
        )
    return gap, None
