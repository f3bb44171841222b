"""The learned weights of a model's graph, node by node, and copies with some of them re-drawn: the material of
the model parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3.1).

A **parametrised node** is a node of the prepared ONNX graph (``SRModel.proto``; the converted torch graph's
modules are its nodes) with a learned tensor among its inputs: a float initializer of at least 2 values in one
of its op type's weight slots (``WEIGHT_SLOTS``): the kernel and bias of a Conv, the matrices of a MatMul or
Gemm, the scale and bias of a normalisation, the tensor of an elementwise Add/Sub/Mul (biases, layer scales,
a mean added back), the table of a Gather (position biases). Shapes, axes, scales and indices (the inputs of
Reshape, Resize, Slice...) are never weights, nor scalar constants (an attention's 1/sqrt(d)), nor the running
statistics of a BatchNormalization (not learned, and a re-drawn variance could turn negative).

**Layers** are the parametrised nodes in graph order, grouped for the test: one node a layer, or, to thin the
test to n steps, n groups of consecutive nodes of (nearly) equal count (``layer_groups``).

**Re-drawing** a tensor W: values from N(mean W, std W) (population std), the same shape and dtype, seeded by
(seed, the tensor's name), so a tensor gets the same values in every copy made with one seed (``redrawn``).
A tensor that a node left trained also reads (the prepared graph merges identical initializers) is copied
under a new name for the re-drawn nodes, so the other node keeps the trained values.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import OnnxAttrError

# ONNX op type -> the input slots that hold learned tensors.
WEIGHT_SLOTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1), "Einsum": tuple(range(8)),
    "LayerNormalization": (1, 2), "InstanceNormalization": (1, 2), "GroupNormalization": (1, 2),
    "BatchNormalization": (1, 2), "PRelu": (1,), "Add": (0, 1), "Sub": (0, 1), "Mul": (0, 1), "Gather": (0,),
}
MIN_VALUES = 2  # a learned tensor holds at least this many values (scalars are constants)
SUFFIX = "::redrawn"  # name of the re-drawn copy of a tensor that trained nodes also read


@dataclass(frozen=True)
class WeightNode:
    """A parametrised node: its position in ``proto.graph.node``, ONNX name and op type, the (slot, initializer
    name) of each learned input and the number of learned values."""

    index: int
    name: str
    op_type: str
    inputs: tuple[tuple[int, str], ...]
    values: int


def weight_nodes(proto: onnx.ModelProto) -> list[WeightNode]:
    """Every parametrised node of ``proto`` in graph order (input to output)."""
    floats = {i.name: i for i in proto.graph.initializer
              if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                                 onnx.TensorProto.BFLOAT16)}
    sizes = {name: int(np.prod(i.dims, dtype=np.int64)) for name, i in floats.items()}
    out = []
    for index, node in enumerate(proto.graph.node):
        slots = WEIGHT_SLOTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ()
        inputs = tuple((s, node.input[s]) for s in slots
                       if s < len(node.input) and sizes.get(node.input[s], 0) >= MIN_VALUES)
        if inputs:
            out.append(WeightNode(index, node.name or f"#{index}", node.op_type, inputs,
                                  sum(sizes[n] for _, n in inputs)))
    return out


def layer_groups(nodes: Sequence[WeightNode], count: int | None) -> list[list[WeightNode]]:
    """The layers of the test from the output towards the input: each node alone (``count`` None or at least the
    number of nodes), else ``count`` groups of consecutive nodes whose sizes differ by at most one, the nodes of
    group j from the end at positions round(j N / n) .. round((j + 1) N / n) - 1 counted from the output."""
    if not nodes:
        raise OnnxAttrError("the model has no learned weights (no Conv, MatMul, Gemm or normalisation with an "
                            "initializer weight); the randomisation test has nothing to re-draw")
    if count is not None and count < 1:
        raise OnnxAttrError(f"--layers {count}: the randomisation test needs at least 1 step")
    backward = list(reversed(nodes))
    n = len(backward) if count is None else min(count, len(backward))
    cuts = [round(j * len(backward) / n) for j in range(n + 1)]
    return [backward[cuts[j]:cuts[j + 1]] for j in range(n)]


def redraw(values: np.ndarray, seed: int, name: str) -> np.ndarray:
    """``values`` re-drawn: N(mean, std) of ``values`` (population std), same shape and dtype, seeded by
    (``seed``, ``name``)."""
    v = values.astype(np.float64)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return rng.normal(v.mean(), v.std(), size=v.shape).astype(values.dtype)


def redrawn(proto: onnx.ModelProto, nodes: Sequence[WeightNode], seed: int) -> onnx.ModelProto:
    """A copy of ``proto`` in which the learned inputs of ``nodes`` are re-drawn (``redraw``); every other node
    reads the trained values, ``proto`` itself is untouched."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    chosen = {n.index for n in nodes}
    readers: dict[str, set[int]] = {}
    for index, node in enumerate(out.graph.node):
        for name in node.input:
            readers.setdefault(name, set()).add(index)
    inits = {i.name: i for i in out.graph.initializer}
    done: dict[str, str] = {}  # trained name -> name of its re-drawn values
    for n in nodes:
        for slot, name in n.inputs:
            if name not in done:
                values = numpy_helper.to_array(inits[name])
                shared = not readers[name] <= chosen
                target = f"{name}{SUFFIX}" if shared else name
                tensor = numpy_helper.from_array(redraw(values, seed, name), target)
                if shared:
                    out.graph.initializer.append(tensor)
                else:
                    inits[name].CopyFrom(tensor)
                done[name] = target
            out.graph.node[n.index].input[slot] = done[name]
    return out
