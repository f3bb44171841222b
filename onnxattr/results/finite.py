"""No NaN or Inf result is ever marked valid: find where a non-finite value first appeared and say so.

``check_result`` runs on every method's output and attribution before the Dataset is built. A non-finite
SR output is traced to the first graph node that produced one (``SRModel.first_nonfinite_node``) and compared
with onnxruntime, so the
message says whether the model itself or the conversion makes it; a non-finite path objective names the
LAM path step; a non-finite attribution with a finite output names the method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import OnnxAttrError


def _count(a: Any) -> tuple[int, int]:
    """(non-finite values, values) of a tensor or array; one reduction where all are finite, as they are."""
    t = a.detach() if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    finite = torch.isfinite(t)
    return (0 if bool(finite.all()) else int((~finite).sum())), t.numel()


def nonfinite_output_message(model: Any, x: torch.Tensor, bad: int, total: int, where: str = "this input") -> str:
    """Why the model's output on ``x`` holds ``bad`` of ``total`` non-finite values: the model or the conversion."""
    node = model.first_nonfinite_node(x)
    at = f", first at node {node}" if node else ""
    try:
        ort_finite = bool(np.isfinite(model.run_ort(x[:1].detach().cpu().numpy())).all())
    except Exception:  # noqa: BLE001  (diagnosis only)
        ort_finite = None
    if ort_finite is False:
        cause = "onnxruntime gives NaN/Inf too, so the model itself makes them (not a converter)"
    elif ort_finite:
        cause = "onnxruntime's output is finite, so the conversion is wrong there (a converter in converters/)"
    else:
        cause = "onnxruntime could not be asked"
    return (
        f"{model.path.name} outputs NaN or Inf on {where} ({bad} of {total} values{at}); {cause}; "
        "check the image and --value-range, or use another model; no result written"
    )


def check_result(
    model: Any,
    image: torch.Tensor,
    output: torch.Tensor,
    method: str,
    attribution: Any = None,
    path_objective: Any = None,
) -> None:
    """Refuse a result whose output, path objective (LAM: D(F(x_i)), i = 0..m) or attribution is not finite."""
    bad, total = _count(output)
    if bad:
        raise OnnxAttrError(nonfinite_output_message(model, image, bad, total))
    if path_objective is not None:
        values = np.asarray(path_objective)  # (..., step): one row per window
        values = values.reshape(-1, values.shape[-1])
        steps = np.flatnonzero(~np.isfinite(values).all(axis=0))
        if steps.size:
            raise OnnxAttrError(
                f"{method}: the objective D(F(x_i)) is NaN or Inf at path step {int(steps[0])} of {values.shape[1] - 1} "
                f"({steps.size} step(s)): {model.path.name} itself returns NaN or Inf on that blurred input (its output "
                "on the image is finite); use another baseline (--path ig_blur or ig_black, a smaller --sigma) or "
                "another image; no result written"
            )
    if attribution is not None:
        bad, total = _count(attribution)
        if bad:
            raise OnnxAttrError(
                f"{method}: the attribution holds NaN or Inf ({bad} of {total} values) although the output is finite "
                "(its gradients overflow or divide by zero); try another --path or method; no result written"
            )
