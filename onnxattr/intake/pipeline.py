"""The pre- and post-processing ends of an SR graph, read from its nodes (I/O only, no torch).

Image pipelines (onnxruntime-extensions' ``PrePostProcessor``, OpenCV-style exports) wrap the network in ops that
move an image's values without changing them: a uint8 H x W x 3 input is split and concatenated in reverse order
(BGR -> RGB), transposed and unsqueezed before its Cast to float, and the output leaves its Cast to uint8 through
the mirror ops. This module finds

- ``integer_flow``: every data-movement op a uint8 input passes through to its Casts to float;
- ``uint8_tail``: the data-movement ops between the Casts to uint8 and a uint8 output;
- ``channel_flips``: the reversals of the channel axis (Split + Concat in reverse order, Gather or Slice with step -1
  on the channel axis) at either end, through ops that keep each channel's values apart (data movement, Cast, Round,
  Clip, arithmetic with constants).

Data movement: Split, Concat, Transpose, Reshape, Squeeze, Unsqueeze, Slice, Gather with constant indices, Identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import OnnxAttrError
from .onnxfile import opset_of

DATA_MOVEMENT = {"Split", "Concat", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Gather", "Identity"}
SHAPE_READERS = {"Shape", "Size"}  # read a value's shape, not its values: any dtype will do
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
PER_VALUE = {"Identity", "Cast", "Round", "Clip", "Floor", "Ceil", "Relu", "Neg", "Abs"}  # keep channels apart
WITH_CONSTANT = {"Mul", "Div", "Add", "Sub", "Pow", "Max", "Min"}  # the same, with a constant operand


@dataclass
class Graph:
    """A model's nodes indexed by the values they make and read, and its constants."""

    proto: onnx.ModelProto
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)
    constants: dict[str, onnx.TensorProto | onnx.AttributeProto] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for t in self.proto.graph.initializer:
            self.constants[t.name] = t
        for n in self.proto.graph.node:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
            if n.op_type == "Constant" and n.attribute:
                self.constants[n.output[0]] = n.attribute[0]
        self.opset = opset_of(self.proto)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        v = self.constants.get(name) if name else None
        if v is None:
            return None
        if isinstance(v, TensorProto):
            return numpy_helper.to_array(v)
        if v.type == onnx.AttributeProto.TENSOR:
            return numpy_helper.to_array(v.t)
        value = onnx.helper.get_attribute_value(v)
        return np.asarray(value) if isinstance(value, (int, float, list)) else None

    def users(self, value: str) -> list[onnx.NodeProto]:
        """The nodes that read ``value``'s values (shape readers aside)."""
        return [n for n in self.consumers.get(value, []) if n.op_type not in SHAPE_READERS]

    def ints(self, node: onnx.NodeProto, attribute: str, index: int) -> list[int] | None:
        """An int list given as ``attribute`` (older opsets) or as constant input ``index`` (newer): None if absent
        or not constant."""
        for a in node.attribute:
            if a.name == attribute:
                return [int(v) for v in onnx.helper.get_attribute_value(a)]
        if len(node.input) > index and node.input[index]:
            v = self.constant(node.input[index])
            return [int(i) for i in np.atleast_1d(v)] if v is not None else None
        return None


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _carries(graph: Graph, node: onnx.NodeProto, value: str) -> bool:
    """Whether ``node`` moves ``value``'s values (it is the data input of a data-movement op, Gather's indices
    constant)."""
    if node.op_type == "Concat":
        return True
    if node.input[0] != value:
        return False
    return node.op_type != "Gather" or graph.constant(node.input[1]) is not None


def integer_flow(graph: Graph, value: str, name: str) -> list[onnx.NodeProto]:
    """The data-movement nodes a uint8 input ``value`` passes through to its Casts to float; a one-line error naming
    the first node that computes with the integers (or mixes them with other values), or when no Cast is met."""
    moved: list[onnx.NodeProto] = []
    casts: list[onnx.NodeProto] = []
    flow, todo = {value}, [value]
    while todo:
        v = todo.pop()
        for node in graph.users(v):
            if node in moved or node in casts:
                continue
            if node.op_type == "Cast" and attribute(node, "to") in FLOAT_TYPES:
                casts.append(node)
            elif node.op_type in DATA_MOVEMENT and _carries(graph, node, v):
                moved.append(node)
                flow.update(node.output)
                todo += list(node.output)
            else:
                through = f" through {', '.join(dict.fromkeys(n.op_type for n in moved))}" if moved else ""
                raise OnnxAttrError(
                    f"{name} feeds its uint8 input{through} to {node.op_type} {node.name!r}, not to a Cast to float; "
                    "onnxattr cannot attribute through integer ops (re-export with a float input)"
                )
    for node in moved:
        if node.op_type == "Concat" and not set(node.input) <= flow:
            raise OnnxAttrError(
                f"{name} concatenates its uint8 input with other values at Concat {node.name!r}; onnxattr cannot "
                "take that end to float (re-export with a float input)"
            )
    if not casts:
        raise OnnxAttrError(f"{name} never casts its uint8 input to float; onnxattr cannot attribute through integer "
                            "ops (re-export with a float input)")
    return moved


def uint8_tail(graph: Graph, output: str, name: str) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """The data-movement nodes between a uint8 ``output`` and the Casts to uint8 that make its values, and those
    Casts; a one-line error when a value on the way is made by anything else."""
    moved: list[onnx.NodeProto] = []
    casts: list[onnx.NodeProto] = []
    todo = [output]
    while todo:
        node = graph.producer.get(todo.pop())
        if node is None or node in moved or node in casts:
            continue
        if node.op_type == "Cast" and attribute(node, "to") == TensorProto.UINT8:
            casts.append(node)
        elif node.op_type in DATA_MOVEMENT and (node.op_type != "Gather" or graph.constant(node.input[1]) is not None):
            moved.append(node)
            todo += list(node.input) if node.op_type == "Concat" else [node.input[0]]
        else:
            last = "its last op" if not moved else f"{node.op_type} {node.name!r}, before its {moved[-1].op_type},"
            raise OnnxAttrError(
                f"{name} returns uint8 but {last} is not a Cast to uint8; onnxattr cannot take the output back to float "
                "(re-export with a float output)"
            )
    return moved, casts


# ---------------------------------------------------------------------------------- channel flips
@dataclass(frozen=True)
class Axis:
    """Where the channel axis of an image value lies: the value, its rank, the axis."""

    value: str
    rank: int
    axis: int


def _reversal(values: list[int], channels: int) -> bool | None:
    """True for the reversal of range(channels), False for range(channels) itself, None for anything else."""
    if values == list(range(channels))[::-1] and channels > 1:
        return True
    return False if values == list(range(channels)) else None


def _slice_reverses(graph: Graph, node: onnx.NodeProto, at: Axis, channels: int) -> bool | None:
    """Whether a Slice reverses the whole channel axis (True), leaves it whole (False), or does anything else."""
    if graph.opset < 10:
        starts, ends, axes, steps = (attribute(node, k) for k in ("starts", "ends", "axes", "steps"))
    else:
        starts, ends, axes, steps = (graph.ints(node, "", i) for i in (1, 2, 3, 4))
    if starts is None or ends is None:
        return None
    axes = [a % at.rank for a in (axes if axes is not None else range(len(starts)))]
    if at.axis not in axes:
        return False
    k = axes.index(at.axis)
    if len(axes) != 1 or not steps or steps[k] != -1:
        return None
    start, end = starts[k] + (channels if starts[k] < 0 else 0), ends[k] + (channels if ends[k] < 0 else 0)
    return True if min(start, channels - 1) == channels - 1 and max(end, -1) == -1 else None


def _split_sizes_ok(graph: Graph, split: onnx.NodeProto, channels: int) -> bool:
    """A Split of the channel axis into single channels."""
    sizes = graph.ints(split, "split", 1)
    return len(split.output) == channels and (sizes is None or sizes == [1] * channels)


def _step_forward(graph: Graph, at: Axis, channels: int) -> tuple[Axis, str | None] | None:
    """The image value after the one op that reads ``at.value`` (the new channel axis, and the flip it makes or
    None), or None where the walk stops."""
    users = graph.users(at.value)
    if len(users) != 1:
        return None
    node = users[0]
    op, rank, axis = node.op_type, at.rank, at.axis
    if op == "Split" and attribute(node, "axis", 0) % rank == axis and _split_sizes_ok(graph, node, channels):
        concat = {id(n): n for o in node.output for n in graph.users(o)}
        if len(concat) != 1:
            return None
        (joined,) = concat.values()
        if joined.op_type != "Concat" or attribute(joined, "axis") % rank != axis:
            return None
        order = [list(node.output).index(i) if i in node.output else -1 for i in joined.input]
        flip = _reversal(order, channels)
        return (Axis(joined.output[0], rank, axis), "Split + Concat" if flip else None) if flip is not None else None
    if op == "Gather" and node.input[0] == at.value and attribute(node, "axis", 0) % rank == axis:
        idx = graph.constant(node.input[1])
        flip = _reversal([int(i) for i in idx.reshape(-1)], channels) if idx is not None and idx.ndim == 1 else None
        return (Axis(node.output[0], rank, axis), "Gather" if flip else None) if flip is not None else None
    if op == "Slice" and node.input[0] == at.value:
        flip = _slice_reverses(graph, node, at, channels)
        return (Axis(node.output[0], rank, axis), "Slice" if flip else None) if flip is not None else None
    if op == "Transpose":
        perm = [int(p) for p in attribute(node, "perm", list(range(rank))[::-1])]
        return Axis(node.output[0], rank, perm.index(axis)), None
    if op == "Unsqueeze":
        new = rank + len(graph.ints(node, "axes", 1) or [])
        inserted = {a % new for a in graph.ints(node, "axes", 1) or []}
        return (Axis(node.output[0], new, [i for i in range(new) if i not in inserted][axis]), None) if inserted else None
    if op == "Squeeze":
        gone = {a % rank for a in graph.ints(node, "axes", 1) or []}
        if not gone or axis in gone:
            return None
        return Axis(node.output[0], rank - len(gone), axis - sum(g < axis for g in gone)), None
    if op in PER_VALUE and node.input[0] == at.value:
        return Axis(node.output[0], rank, axis), None
    if op in WITH_CONSTANT and len(node.input) == 2:
        other = node.input[1] if node.input[0] == at.value else node.input[0]
        c = graph.constant(other)
        return (Axis(node.output[0], rank, axis), None) if c is not None and c.ndim <= rank else None
    return None


def _step_backward(graph: Graph, at: Axis, channels: int) -> tuple[Axis, str | None] | None:
    """The image value before the op that makes ``at.value`` (as ``_step_forward``, walking to the input)."""
    node = graph.producer.get(at.value)
    if node is None:
        return None
    op, rank, axis = node.op_type, at.rank, at.axis
    if op == "Concat" and attribute(node, "axis") % rank == axis:
        splits = {id(graph.producer.get(i)): graph.producer.get(i) for i in node.input}
        if len(splits) != 1:
            return None
        (split,) = splits.values()
        if split is None or split.op_type != "Split" or attribute(split, "axis", 0) % rank != axis \
                or not _split_sizes_ok(graph, split, channels) or any(len(graph.users(o)) != 1 for o in split.output):
            return None
        flip = _reversal([list(split.output).index(i) for i in node.input], channels)
        return (Axis(split.input[0], rank, axis), "Split + Concat" if flip else None) if flip is not None else None
    if op == "Gather" and attribute(node, "axis", 0) % rank == axis:
        idx = graph.constant(node.input[1])
        flip = _reversal([int(i) for i in idx.reshape(-1)], channels) if idx is not None and idx.ndim == 1 else None
        return (Axis(node.input[0], rank, axis), "Gather" if flip else None) if flip is not None else None
    if op == "Slice":
        flip = _slice_reverses(graph, node, at, channels)
        return (Axis(node.input[0], rank, axis), "Slice" if flip else None) if flip is not None else None
    if op == "Transpose":
        perm = [int(p) for p in attribute(node, "perm", list(range(rank))[::-1])]
        return Axis(node.input[0], rank, perm[axis]), None
    if op == "Unsqueeze":
        inserted = {a % rank for a in graph.ints(node, "axes", 1) or []}
        if not inserted or axis in inserted:
            return None
        return Axis(node.input[0], rank - len(inserted), axis - sum(i < axis for i in inserted)), None
    if op == "Squeeze":
        gone_n = len(graph.ints(node, "axes", 1) or [])
        old = rank + gone_n
        gone = {a % old for a in graph.ints(node, "axes", 1) or []}
        return (Axis(node.input[0], old, [i for i in range(old) if i not in gone][axis]), None) if gone else None
    if op in PER_VALUE:
        return Axis(node.input[0], rank, axis), None
    if op in WITH_CONSTANT and len(node.input) == 2:
        a, b = node.input
        data, c = (a, graph.constant(b)) if graph.constant(b) is not None else (b, graph.constant(a))
        return (Axis(data, rank, axis), None) if c is not None and c.ndim <= rank else None
    return None


MAX_STEPS = 64  # pre/post-processing is a few ops; the walk stops at the network in any case


def channel_flips(graph: Graph, start: Axis, channels: int, forward: bool) -> list[str]:
    """The reversals of the channel axis (one name per reversal: 'Split + Concat', 'Gather', 'Slice') between an
    image end and the network: from the input forward, or from the output backward, through ops that keep each
    channel's values apart; the walk stops at the first other op or where the image value branches."""
    step = _step_forward if forward else _step_backward
    flips, at = [], start
    for _ in range(MAX_STEPS):
        moved = step(graph, at, channels)
        if moved is None:
            break
        at, flip = moved
        if flip:
            flips.append(flip)
    return flips
