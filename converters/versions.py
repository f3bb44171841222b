"""Opset bumps 16-25 that only widened the type lists: reuse onnx2torch's converter of the
previous version (checked: same attributes, inputs and outputs in onnx 1.23's schemas)."""

from __future__ import annotations

from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OperationConverterResult

from ._registry import converter, released

# op type -> (version onnx2torch converts, newer versions with the same signature)
TYPE_ONLY_BUMPS: dict[str, tuple[int, tuple[int, ...]]] = {
    "Constant": (13, (19, 21, 23, 24, 25)),
    "ConstantOfShape": (9, (20, 21, 23, 24, 25)),
    "Flatten": (13, (21, 23, 24, 25)),
    "Identity": (16, (19, 21, 23, 24, 25)),
    "Shape": (15, (19, 21, 23, 24, 25)),
    "Squeeze": (21, (23, 24, 25)),
    "Transpose": (13, (21, 23, 24, 25)),
    "Unsqueeze": (13, (21, 23, 24, 25)),
    "Equal": (13, (19,)),
    "GreaterOrEqual": (12, (16,)),
    "LessOrEqual": (12, (16,)),
    "IsInf": (10, (20,)),
    "IsNaN": (13, (20,)),
    "TopK": (11, (24,)),
    "GlobalAveragePool": (1, (22,)),
    "InstanceNormalization": (6, (22,)),
    "Dropout": (13, (22,)),
    "EyeLike": (9, (22,)),
    "RoiAlign": (16, (22,)),
    **{op: (since, (22,)) for op, since in [("Elu", 6), ("HardSigmoid", 6), ("HardSwish", 14), ("Selu", 6),
                                             ("Softplus", 1), ("Softsign", 1), ("Round", 11), ("Sin", 7),
                                             ("Cos", 7), ("Tan", 7), ("Acos", 7), ("Asin", 7), ("Atan", 7)]},
}

for _op, (_known, _newer) in TYPE_ONLY_BUMPS.items():
    converter(_op, *_newer)(released(_op, _known))


@converter("Cast", 19, 21, 23, 24, 25)
def convert_cast(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``saturate`` and ``round_mode`` (19+) only matter for float8/float4 targets, which torch refuses."""
    return released("Cast", 13)(node, graph)

