"""ONNX -> torch.fx conversion for SR networks: cleanup, extra onnx2torch converters, export.

Importing this package registers the converters in the sibling modules with onnx2torch.
"""

from __future__ import annotations

import logging
import sys
import types
import warnings

import onnx


def _skip_detection_converters() -> None:
    """Keep onnx2torch from importing torchvision. Its NonMaxSuppression and RoiAlign converters import
    torchvision, which imports torch._dynamo: 5-7 s of every load on the shared 2-core machine (1.8 s for the
    whole onnx2torch import without them; benchmarks/README.md "Start-up"). SR graphs hold neither op; a graph
    that does is refused as holding an unsupported op. Nothing is skipped when onnx2torch was imported first.
    """
    if "onnx2torch" in sys.modules:
        return
    for name in ("nms", "roialign"):
        module = f"onnx2torch.node_converters.{name}"
        sys.modules.setdefault(module, types.ModuleType(module, "skipped by onnxattr: detection ops, not SR"))


_skip_detection_converters()

import onnx2torch  # noqa: E402
from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, get_converter  # noqa: E402
from onnx2torch.onnx_graph import OnnxGraph  # noqa: E402
from torch import fx  # noqa: E402

from ..errors import UnsupportedOpError  # noqa: E402

from . import (  # noqa: F401  (imported for their converter registrations)
    activations, conv, depth_space, grid_sample, layer_norm, pad, pool, reduce, reshape, resize, scatter, slices, split,
    versions,
)
from .export import export_onnx  # noqa: E402

__all__ = ["build", "export_onnx", "prepare", "to_torch", "unsupported_op"]

# onnx2torch's Slice indexes with a list, which torch flags on every call; the result is right.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing", module="onnx2torch")


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """A cleaned copy of ``model``: functions inlined, constants folded (with ONNX shape inference) and lifted
    to initializers, Identity chains and unused nodes removed. Node names are kept.

    These are onnxscript.optimizer.optimize's passes without its pattern rewriter, which the conversion does not
    need and which took 72% of loading a transformer (DAT-light: 24 s of 33; benchmarks/README.md). The
    optimizer's notes on what it leaves unfolded are silenced: they concern no user.
    """
    import onnx_ir.passes.common as common
    from onnxscript import ir
    from onnxscript.optimizer import _constant_folding as folding

    passes = ir.passes.Sequential(
        common.InlinePass(),
        folding.FoldConstantsPass(shape_inference=True, input_size_limit=folding.DEFAULT_CONSTANT_FOLD_INPUT_SIZE_LIMIT,
                                  output_size_limit=folding.DEFAULT_CONSTANT_FOLD_OUTPUT_SIZE_LIMIT),
        common.IdentityEliminationPass(),
        common.RemoveUnusedNodesPass(),
        common.RemoveUnusedFunctionsPass(),
        common.RemoveUnusedOpsetsPass(),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.LiftSubgraphInitializersToMainGraphPass(),
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
        common.OutputFixPass(),
        common.NameFixPass(),
    )
    log = logging.getLogger("onnxscript.optimizer")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        model_ir = ir.serde.deserialize_model(model)
        passes(model_ir)
        return ir.serde.serialize_model(model_ir)
    finally:
        log.setLevel(level)


def to_torch(model: onnx.ModelProto) -> tuple[fx.GraphModule, onnx.ModelProto]:
    """Convert ``model`` to an eval-mode GraphModule; also return the prepared proto it came from.

    The GraphModule's ``call_module`` targets are the keys of
    ``onnx2torch.onnx_graph.OnnxGraph(prepared.graph).nodes``.
    Raises UnsupportedOpError naming the first node no converter handles.
    """
    prepared = prepare(model)
    return build(prepared), prepared


def build(prepared: onnx.ModelProto) -> fx.GraphModule:
    """The eval-mode GraphModule of a model ``prepare`` cleaned (the same graph ``to_torch`` returns for it).
    Raises UnsupportedOpError naming the first node no converter handles."""
    try:
        module = onnx2torch.convert(prepared)
    except NotImplementedError as err:
        raise _first_unsupported(prepared, err) from err
    return module.eval()


def _schema_version(op_type: str, domain: str, opset: int) -> int:
    try:
        return onnx.defs.get_schema(op_type, max_inclusive_version=opset, domain=domain).since_version
    except onnx.defs.SchemaError:
        return opset


def _converted_versions(op_type: str, domain: str) -> tuple[int, ...]:
    """The definitions of an op that some registered converter handles."""
    return tuple(sorted({d.version for d in _CONVERTER_REGISTRY if d.domain == domain and d.operation_type == op_type
                         and _schema_version(d.operation_type, d.domain, d.version) == d.version}))


def unsupported_op(model: onnx.ModelProto) -> UnsupportedOpError | None:
    """Without converting: the UnsupportedOpError for the first node of ``model``'s main graph whose op no converter
    is registered for (ops of the model's local functions are looked up in their bodies), else None. Converters
    that refuse a node's particular attributes are found only by converting (``to_torch``)."""
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    local = {(f.domain, f.name): f for f in model.functions}
    nodes, expanded = list(model.graph.node), set()
    while nodes:
        node = nodes.pop(0)
        key = (node.domain, node.op_type)
        if key in local:
            if key not in expanded:  # a function's body is checked once, however often it is called
                expanded.add(key)
                nodes[:0] = list(local[key].node)
            continue
        opset = opsets.get(node.domain, 1)
        try:
            get_converter(node.op_type, opset, node.domain)
        except NotImplementedError:
            return UnsupportedOpError(node.op_type, _schema_version(node.op_type, node.domain, opset),
                                      node.name or node.output[0], "no converter is registered", opset,
                                      _converted_versions(node.op_type, node.domain))
    return None


def _first_unsupported(model: onnx.ModelProto, err: NotImplementedError) -> Exception:
    """The UnsupportedOpError for the first node whose converter is missing or refuses it, naming the file's
    opset, the op's definition in force and the definitions we do convert."""
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    graph = OnnxGraph(model.graph)
    for name, node in graph.nodes.items():
        opset = opsets.get(node.domain, 1)
        version = _schema_version(node.operation_type, node.domain, opset)
        converted = _converted_versions(node.operation_type, node.domain)
        label = node.name or name
        try:
            convert_node = get_converter(node.operation_type, opset, node.domain)
        except NotImplementedError:
            return UnsupportedOpError(node.operation_type, version, label, "no converter is registered", opset, converted)
        try:
            convert_node(node, graph)
        except NotImplementedError as node_err:
            return UnsupportedOpError(node.operation_type, version, label, str(node_err), opset, converted)
    return err
