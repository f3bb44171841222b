"""Opset bumps 16-25 that only widened the type lists: reuse onnx2torch's converter of the
previous version (checked: same attributes, inputs and outputs in onnx 1.23's schemas).
Likewise the old definitions (opsets 1-8) that legacy exports hold, where the next definition
only widened types or broadcasting: reuse the converter of that next definition."""

from __future__ import annotations

from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OperationConverterResult

from .registration import converter, released

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
    **{op: (since, (22,)) for op, since in [("Elu", 6), ("HardSigmoid", 6), ("HardSwish", 14), ("Selu", 6),
                                             ("Softplus", 1), ("Softsign", 1), ("Round", 11), ("Sin", 7),
                                             ("Cos", 7), ("Tan", 7), ("Acos", 7), ("Asin", 7), ("Atan", 7)]},
}

# op type -> (version onnx2torch converts, older versions it also converts exactly in inference)
OLD_FORMS: dict[str, tuple[int, tuple[int, ...]]] = {
    "Cast": (9, (6,)),  # 9 added string types
    "Dropout": (10, (7,)),  # 10 added the mask output's bool type; identity in inference either way
    "Flatten": (9, (1,)),  # 9 added types
    "Gemm": (9, (7,)),  # 7: C required, 9 added integer types
    **{op: (8, (6,)) for op in ("Max", "Min", "Mean", "Sum")},  # 8 added multidirectional broadcasting
}

for _table in (TYPE_ONLY_BUMPS, OLD_FORMS):
    for _op, (_known, _other) in _table.items():
        converter(_op, *_other)(released(_op, _known))


@converter("BatchNormalization", 7)
def convert_batch_norm7(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """BatchNormalization-7 (opsets 7-8) is -9 plus ``spatial``: 1 (per channel, the default) is -9."""
    if not node.attributes.get("spatial", 1):
        raise NotImplementedError("BatchNormalization with spatial=0 (per-activation statistics) is not implemented")
    return released("BatchNormalization", 9)(node, graph)


@converter("Cast", 19, 21, 23, 24, 25)
def convert_cast(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``saturate`` and ``round_mode`` (19+) only matter for float8/float4 targets, which torch refuses."""
    return released("Cast", 13)(node, graph)

