"""Export a PyTorch SR module to one self-contained ONNX file (dynamo or TorchScript)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

import onnx
import torch

TORCHSCRIPT_OPSET = 17
MIN_DYNAMO_OPSET = 18
_DYN_AXES = {0: "batch", 2: "height", 3: "width"}


def export_onnx(
    module: torch.nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    exporter: Literal["dynamo", "torchscript"] = "dynamo",
    opset: int | None = None,
    dynamic: bool = True,
) -> Path:
    """Export ``module`` (put in eval mode) with input ``input`` and output ``output``.

    ``dynamic`` makes batch, height and width symbolic; when the dynamo exporter cannot
    keep them symbolic it warns and exports a static file instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    example = torch.rand(*input_shape)
    names = {"input_names": ["input"], "output_names": ["output"]}
    if exporter == "torchscript":
        axes = {"input": _DYN_AXES, "output": _DYN_AXES} if dynamic else None
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, dynamic_axes=axes,
            opset_version=opset or TORCHSCRIPT_OPSET, **names,
        )
    elif exporter == "dynamo":
        if opset is not None and opset < MIN_DYNAMO_OPSET:
            raise ValueError(f"the dynamo exporter needs opset >= {MIN_DYNAMO_OPSET}, got {opset}")
        program = None
        if dynamic:
            try:
                program = _dynamo(module, example, opset, names, dynamic=True)
            except Exception as err:  # noqa: BLE001 - any export failure falls back to static
                cause = err.__cause__ or err
                first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).split("\n")[0]
                warnings.warn(f"dynamic dynamo export failed ({type(cause).__name__}: {first_line}); "
                              f"exporting with the fixed shape {tuple(input_shape)}", stacklevel=2)
        if program is None:
            program = _dynamo(module, example, opset, names, dynamic=False)
        program.save(str(path), external_data=False)
    else:
        raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    onnx.checker.check_model(str(path))
    return path


def _dynamo(module: torch.nn.Module, example: torch.Tensor, opset: int | None,
            names: dict[str, list[str]], *, dynamic: bool) -> torch.onnx.ONNXProgram:
    """Run the dynamo exporter; with ``dynamic`` batch, H and W must stay symbolic."""
    shapes = None
    if dynamic:
        dim = torch.export.Dim.DYNAMIC
        shapes = ({0: dim, 2: dim, 3: dim},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
            external_data=False, report=False, verbose=False, **names,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program
