"""Untapped fast path: a copy of the converted graph specialised to one input shape.

onnx2torch keeps the ONNX graph's shape arithmetic (Shape, Gather, Concat, Reshape chains) and wraps plain torch
ops in modules (Reshape re-reads its shape tensor with ``.tolist()``, Slice rebuilds its slices from tensors,
Expand multiplies by a tensor of ones). For one input shape every value that depends only on constants and
shapes is a constant, so ``specialise``:

1. runs the graph node by node on an input of that shape (``fold_static``: which nodes are static,
   their values, every node's output shape and dtype; that run's output is the caller's);
2. rebuilds it with static values folded into constants, wrapper modules replaced by the native torch call of
   the same semantics (``NATIVE``), and four fusions (``fuse``): MatMul + Add -> ``F.linear``, the Erf
   formula of GELU -> ``F.gelu``, x * tanh(softplus(x)) -> ``F.mish``, x * sigmoid(x) -> ``F.silu``;
3. for a single image, checks the copy's output against the full graph's (``SPECIALISE_TOLERANCE``).

``FastGraphs`` builds a shape's copy on its second call (a shape used once runs the full graph) and caches the
copies by (shape, dtype, device), least recently used out beyond ``CACHE_SIZE``.
Taps keep using the full graph (every node there); the copy shares its weights.
"""

from __future__ import annotations

import inspect
import math
import operator
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx

CACHE_SIZE = 8  # input shapes kept (LAM's batches, the last crop sizes)
SPECIALISE_TOLERANCE = 1e-5  # max |fast - full| / max |full| on the example; above it the full graph runs
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
DATA_SHAPED_OPS = {"NonZero", "Unique", "Compress", "NonMaxSuppression"}  # output shapes depend on values


@dataclass
class Facts:
    """What one run of the full graph on an example says: static nodes' values, every node's shape and dtype."""

    static: dict[fx.Node, Any]
    shape: dict[fx.Node, tuple[int, ...]]
    dtype: dict[fx.Node, torch.dtype]
    output: Any  # the graph's output: a tensor, or a tuple of them


def _is_literal(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, torch.dtype)) or (
        isinstance(value, (tuple, list)) and all(_is_literal(v) for v in value))


class _Folder(fx.Interpreter):
    """Runs the graph, marking each node static (depends on constants and input shapes only) or not."""

    def __init__(self, gm: fx.GraphModule, op_types: dict[str, str]):
        super().__init__(gm)
        self.op_types = op_types
        self.facts = Facts({}, {}, {}, torch.empty(0))
        self.data_shaped: set[fx.Node] = set()

    def _is_static(self, n: fx.Node, op: str) -> bool:
        if n.op == "get_attr":
            return True
        if n.op in ("placeholder", "output") or op in RANDOM_OPS:
            return False
        if op in ("Shape", "Size"):
            return n not in self.data_shaped
        return all(i in self.facts.static for i in n.all_input_nodes)

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        op = self.op_types.get(n.name, "")
        if op in DATA_SHAPED_OPS or any(i in self.data_shaped for i in n.all_input_nodes):
            self.data_shaped.add(n)
        if isinstance(out, torch.Tensor):
            self.facts.shape[n], self.facts.dtype[n] = tuple(out.shape), out.dtype
        if self._is_static(n, op) and (isinstance(out, torch.Tensor) or _is_literal(out)):
            self.facts.static[n] = out.detach() if isinstance(out, torch.Tensor) else out
        if n.op == "output":
            self.facts.output = out
        return out


def fold_static(gm: fx.GraphModule, op_types: dict[str, str], *inputs: torch.Tensor) -> Facts:
    """One run of ``gm`` on ``inputs`` (autograd as the caller has it; ``Facts.output`` is the graph's output):
    the static nodes' values and every node's shape and dtype."""
    folder = _Folder(gm, op_types)
    folder.run(*inputs)
    return folder.facts


# ----------------------------------------------------------------------------- native replacements
# Each rule takes (node, module, facts) and returns (function, args) in terms of the node's fx inputs and
# Python constants, or None when the node's case is not covered (the module then stays). A rule meets every
# form the converters write for its op: attribute forms of old opsets (the bounds of Slice-1 are the module's),
# optional inputs left out (onnx2torch passes those after a gap as keywords), negative axes and indices, steps.
# A rule that raises declines as well (``_native``): a rule's slip never stops a load.
Rule = Callable[[fx.Node, torch.nn.Module, Facts], "tuple[Callable, tuple] | None"]


def _const(n: Any, facts: Facts) -> Any:
    """The static value behind an fx argument, or KeyError."""
    return facts.static[n] if isinstance(n, fx.Node) else n


def _operands(n: fx.Node, module: torch.nn.Module) -> list[Any]:
    """The node's inputs in the order of ``module.forward``'s parameters, None where an optional one is absent."""
    names = list(inspect.signature(module.forward).parameters)
    values = list(n.args) + [None] * (len(names) - len(n.args))
    for name, v in n.kwargs.items():
        values[names.index(name)] = v
    return values


def _ints(v: Any, facts: Facts) -> list[int] | None:
    """A static 1-D integer input (or Python list) as ints; None when absent; KeyError when not static."""
    if v is None:
        return None
    v = _const(v, facts)
    return [int(i) for i in (v.tolist() if isinstance(v, torch.Tensor) else v)]


def _to_shape(n: fx.Node, module: torch.nn.Module, facts: Facts):
    return torch.reshape, (n.args[0], facts.shape[n])


def _transpose(n: fx.Node, module: torch.nn.Module, facts: Facts):
    rank = len(facts.shape[n])
    perm = module.perm if module.perm is not None else list(range(rank))[::-1]
    return torch.permute, (n.args[0], tuple(int(p) % rank for p in perm))


def _gather(n: fx.Node, module: torch.nn.Module, facts: Facts):
    data, index = _operands(n, module)[:2]
    try:
        idx = _const(index, facts)
    except KeyError:
        return None
    if not isinstance(idx, torch.Tensor) or idx.is_floating_point():
        return None
    rank = len(facts.shape[data])
    axis = int(getattr(module, "_axis", 0)) % rank
    size = facts.shape[data][axis]
    if idx.ndim == 0:
        return torch.select, (data, axis, int(idx) % size)
    index = torch.remainder(idx.long().reshape(-1), size)  # negative indices count from the end
    if idx.ndim == 1:
        return torch.index_select, (data, axis, index)
    return gather_rows, (data, axis, index, facts.shape[n])


def gather_rows(x: torch.Tensor, axis: int, index: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Gather with indices of any rank: rows ``index`` (flattened) along ``axis``, reshaped to ``shape``."""
    return x.index_select(axis, index).reshape(shape)


def flip_slice(x: torch.Tensor, flips: tuple[int, ...], index: tuple[slice, ...]) -> torch.Tensor:
    """``x`` flipped on ``flips``, then indexed: a Slice with negative steps (``_slice``)."""
    return (x.flip(flips) if flips else x)[index]


def _slice(n: fx.Node, module: torch.nn.Module, facts: Facts):
    """Slice-1 (``starts``, ``ends``, ``axes`` kept by the converted module) or Slice-10+ (inputs data, starts, ends
    and the optional axes, steps). ONNX clamps bounds as Python does for positive steps; a negative step on an axis
    of size d is a positive one on the flipped axis, with start -> -start - 1 and end -> -end - 1 (ONNX clamps a
    negative step's start to [0, d - 1] and end to [-1, d - 1], Python's negative indices of the flip agree)."""
    if hasattr(module, "starts") and hasattr(module, "ends"):  # converters.slices.OnnxSlice1
        data, starts, ends = n.args[0], list(module.starts), list(module.ends)
        axes, steps = getattr(module, "axes", None), None
    else:
        data, *bounds = _operands(n, module)[:5]
        try:
            starts, ends, axes, steps = (_ints(b, facts) for b in (bounds + [None] * 4)[:4])
        except KeyError:
            return None
        if starts is None or ends is None:
            return None
    rank = len(facts.shape[data])
    axes = [int(a) % rank for a in axes] if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps or len(set(axes)) != len(axes):
        return None
    index, flips = [slice(None)] * rank, []
    for axis, start, end, step in zip(axes, starts, ends, steps):
        if step < 0:
            flips.append(axis)
            start, end, step = -start - 1, -end - 1, -step
        index[axis] = slice(start, end, step)
    if flips:
        return flip_slice, (data, tuple(flips), tuple(index))
    return operator.getitem, (data, tuple(index))


_BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}


def _binary(fn: Callable) -> Rule:
    def rule(n: fx.Node, module: torch.nn.Module, facts: Facts):
        if getattr(module, "broadcast", None) == 1 and getattr(module, "axis", None) is not None:
            return None  # opset < 7 broadcasting
        if len(n.args) != 2:
            return None
        if not all(facts.dtype.get(a, torch.int64).is_floating_point for a in n.args if isinstance(a, fx.Node)):
            return None  # integer Div truncates; keep onnx2torch's
        return fn, tuple(n.args)

    return rule


def _pow(n: fx.Node, module: torch.nn.Module, facts: Facts):
    """x ** e; a constant one-element e as a Python float, which torch computes as x * x for 2 (a tensor e takes
    the generic kernel: SAFMN's LayerNorm Pow(x, 2) cost 10% of its forward + backward that way)."""
    base, exponent = n.args
    if not facts.dtype.get(base, torch.int64).is_floating_point:
        return None
    e = _scalar(exponent, facts) if facts.shape.get(n) == facts.shape.get(base) else None
    return torch.pow, ((base, e) if e is not None else (base, exponent))


def _concat(n: fx.Node, module: torch.nn.Module, facts: Facts):
    return torch.cat, (list(n.args), int(module.axis))


def _matmul(n: fx.Node, module: torch.nn.Module, facts: Facts):
    return torch.matmul, tuple(n.args)


def _expand(n: fx.Node, module: torch.nn.Module, facts: Facts):
    return torch.broadcast_to, (n.args[0], facts.shape[n])


NATIVE: dict[str, Rule] = {
    "Reshape": _to_shape, "Flatten": _to_shape, "Squeeze": _to_shape, "Unsqueeze": _to_shape,
    "Transpose": _transpose, "Gather": _gather, "Slice": _slice, "Concat": _concat, "MatMul": _matmul,
    "Expand": _expand, "Pow": _pow, **{op: _binary(fn) for op, fn in _BINARY.items()},
}
PASS_THROUGH = {"Identity"}  # nodes replaced by their input (also Cast to the dtype the input has)
KWARG_RULES = {"Slice", "Gather"}  # rules that read optional inputs given as keywords (``_operands``)


def _native(op: str, n: fx.Node, module: torch.nn.Module, facts: Facts) -> tuple[Callable, tuple] | None:
    """The native replacement of a module node, or None: no rule, a form the rule does not cover, or a rule
    that fails on this node (it declines; the node runs as converted)."""
    rule = NATIVE.get(op)
    if rule is None or (n.kwargs and op not in KWARG_RULES) or not isinstance(facts.shape.get(n), tuple):
        return None
    try:
        return rule(n, module, facts)
    except Exception:  # noqa: BLE001  (a form no rule foresaw: the converted module runs instead)
        return None


# ----------------------------------------------------------------------------------------- fusions
def _scalar(n: Any, facts: Facts) -> float | None:
    """A static one-element value as a float, else None."""
    try:
        v = _const(n, facts)
    except KeyError:
        return None
    if isinstance(v, torch.Tensor):
        return float(v) if v.numel() == 1 and v.is_floating_point() else None
    return float(v) if isinstance(v, (int, float)) else None


def _other(n: fx.Node, known: fx.Node) -> Any:
    a, b = n.args[:2]
    return b if a is known else a


def _sole_user(n: fx.Node, op: str, op_types: dict[str, str]) -> fx.Node | None:
    users = list(n.users)
    return users[0] if len(users) == 1 and op_types.get(users[0].name) == op else None


def _gelu(erf: fx.Node, op_types: dict[str, str], facts: Facts) -> tuple[fx.Node, Callable, tuple] | None:
    """0.5 * x * (1 + erf(x / sqrt 2)) in either order of the two multiplications -> (output node, F.gelu, (x,))."""
    scaled = erf.args[0]
    if not isinstance(scaled, fx.Node) or op_types.get(scaled.name) not in ("Div", "Mul"):
        return None
    x = scaled.args[0]
    c = _scalar(scaled.args[1], facts)
    want = math.sqrt(2) if op_types[scaled.name] == "Div" else 1 / math.sqrt(2)
    if c is None or not math.isclose(c, want, rel_tol=1e-6) or x in facts.static:
        return None
    add = _sole_user(erf, "Add", op_types)
    if add is None or _scalar(_other(add, erf), facts) != 1.0:
        return None
    mul = _sole_user(add, "Mul", op_types)
    if mul is None:
        return None
    y = _other(mul, add)
    if y is x:  # (x * (1 + erf)) * 0.5
        out = _sole_user(mul, "Mul", op_types)
        return (out, F.gelu, (x,)) if out is not None and _scalar(_other(out, mul), facts) == 0.5 else None
    if isinstance(y, fx.Node) and op_types.get(y.name) == "Mul" and x in y.args[:2] and _scalar(_other(y, x), facts) == 0.5:
        return mul, F.gelu, (x,)  # (0.5 * x) * (1 + erf)
    return None


def _linear(mm: fx.Node, op_types: dict[str, str], facts: Facts) -> tuple[fx.Node, Callable, tuple] | None:
    """MatMul(x, W) + b with constant 2-D W and 1-D b -> (the Add, F.linear, (x, W^T, b))."""
    x, w = mm.args[:2]
    weight = facts.static.get(w) if isinstance(w, fx.Node) else None
    if x in facts.static or not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
        return None
    add = _sole_user(mm, "Add", op_types)
    bias = facts.static.get(_other(add, mm)) if add is not None else None
    if not isinstance(bias, torch.Tensor) or bias.shape != weight.shape[1:] or facts.shape.get(add) != facts.shape[mm]:
        return None
    return add, F.linear, (x, weight.t().contiguous(), bias)


def _mish(softplus: fx.Node, op_types: dict[str, str], facts: Facts) -> tuple[fx.Node, Callable, tuple] | None:
    """x * tanh(softplus(x)) -> (the Mul, F.mish, (x,))."""
    x = softplus.args[0]
    tanh = _sole_user(softplus, "Tanh", op_types)
    mul = _sole_user(tanh, "Mul", op_types) if tanh is not None else None
    return (mul, F.mish, (x,)) if mul is not None and _other(mul, tanh) is x else None


def _silu(sigmoid: fx.Node, op_types: dict[str, str], facts: Facts) -> tuple[fx.Node, Callable, tuple] | None:
    """x * sigmoid(x) in either order (SiLU / swish as exports before opset 22's Swish write it) -> (the Mul,
    F.silu, (x,)): one kernel forward and backward where the pair keeps both maps for the backward."""
    x = sigmoid.args[0]
    mul = _sole_user(sigmoid, "Mul", op_types)
    return (mul, F.silu, (x,)) if mul is not None and _other(mul, sigmoid) is x else None


FUSIONS = {"Erf": _gelu, "MatMul": _linear, "Softplus": _mish, "Sigmoid": _silu}  # keyed by the pattern's first op


def fuse(gm: fx.GraphModule, op_types: dict[str, str], facts: Facts) -> dict[fx.Node, tuple[Callable, tuple]]:
    """Fusible patterns: the pattern's output node -> (function, args); the pattern's inner nodes, left
    without users, are dropped as dead code."""
    found: dict[fx.Node, tuple[Callable, tuple]] = {}
    for n in gm.graph.nodes:
        rule = FUSIONS.get(op_types.get(n.name, ""))
        if rule is not None and n not in facts.static:
            hit = rule(n, op_types, facts)
            if hit is not None:
                found[hit[0]] = hit[1:]
    return found


# -------------------------------------------------------------------------------------- rebuilding
def _rebuild(gm: fx.GraphModule, op_types: dict[str, str], facts: Facts) -> fx.GraphModule:
    """The specialised GraphModule (sharing ``gm``'s modules and weights)."""
    graph, env, attrs = fx.Graph(), {}, {}
    fused = fuse(gm, op_types, facts)

    consts: dict[int, fx.Node] = {}

    def constant(t: torch.Tensor) -> fx.Node:
        if id(t) not in consts:
            name = f"_folded_{len(consts)}"
            attrs[name] = t
            consts[id(t)] = graph.get_attr(name)
        return consts[id(t)]

    def value(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            return constant(a)
        if not isinstance(a, fx.Node):
            return a
        if a not in env:  # a static value a dynamic node reads
            v = facts.static[a]
            env[a] = constant(v) if isinstance(v, torch.Tensor) else v
        return env[a]

    def mapped(args: Any) -> Any:
        return fx.node.map_aggregate(args, value)

    for n in gm.graph.nodes:
        if n in facts.static and n.op != "output":
            continue  # emitted on first use by a dynamic node
        op = op_types.get(n.name, "")
        if n in fused:
            fn, args = fused[n]
            env[n] = graph.call_function(fn, mapped(args))
            continue
        if n.op == "call_module":
            module = gm.get_submodule(n.target)
            if op in PASS_THROUGH or (op == "Cast" and facts.dtype.get(n.args[0]) == getattr(module, "torch_dtype", None)):
                env[n] = value(n.args[0])
                continue
            native = _native(op, n, module, facts)
            if native is not None:
                env[n] = graph.call_function(native[0], mapped(native[1]))
                continue
            attrs[n.target] = module
        env[n] = graph.node_copy(n, value)
    graph.eliminate_dead_code(is_impure_node=lambda node: node.op in ("placeholder", "output"))
    return fx.GraphModule(attrs, graph)


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a graph's output (one tensor, or a tuple or list of them), in order."""
    return [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]


def relative_gap(got: Any, ref: Any) -> float:
    """max |got - ref| / max |ref| over every output tensor; inf when their shapes differ."""
    got, ref = _tensors(got), _tensors(ref)
    if [g.shape for g in got] != [r.shape for r in ref]:
        return math.inf
    if not ref:
        return 0.0
    scale = max(max((r.abs().max().item() for r in ref if r.numel()), default=0.0), 1e-12)
    return max(((g - r).abs().max().item() for g, r in zip(got, ref) if r.numel()), default=0.0) / scale


def specialise(gm: fx.GraphModule, op_types: dict[str, str], *inputs: torch.Tensor) -> tuple[fx.GraphModule | None, Any]:
    """``gm`` specialised to the shapes of ``inputs`` (the image; graphs of several inputs take them all), and
    ``gm(*inputs)`` (from the run that found the facts, autograd as the caller has it).

    The copy of a single plain image is checked against that output (one more forward, without autograd):
    None (with a warning) when they differ by more than SPECIALISE_TOLERANCE (relative max), or when the copy
    cannot be built. A batch's copy (N > 1, or inside vmap) is not checked: its rules are those checked at batch 1
    and N enters only through shapes."""
    x = inputs[0]
    facts = fold_static(gm, op_types, *inputs)
    ref = facts.output
    try:
        fast = _rebuild(gm, op_types, facts)
    except Exception as err:  # noqa: BLE001  (the fast path is an optimisation: the full graph runs instead)
        warnings.warn(f"the specialised graph cannot be built at input shape {tuple(x.shape)} ({type(err).__name__}: "
                      f"{err}); running the full graph", stacklevel=3)
        return None, ref
    if x.shape[0] > 1 or torch._C._functorch.is_batchedtensor(x):
        return fast, ref
    with torch.no_grad():
        try:
            err = relative_gap(fast(*(i.detach() for i in inputs)), [r.detach() for r in _tensors(ref)])
        except Exception:  # noqa: BLE001  (a copy that fails to run is a copy that differs)
            err = math.inf
    if not err <= SPECIALISE_TOLERANCE:
        warnings.warn(f"the specialised graph differs from the full graph by {err:.1e} at input shape "
                      f"{tuple(x.shape)}; running the full graph", stacklevel=3)
        return None, ref
    return fast, ref


class FastGraphs:
    """Specialised copies of one converted graph by input (shape, dtype, device), ``CACHE_SIZE`` at most.

    A shape's first call runs the full graph; its second runs it node by node (its output is the caller's) and
    builds the copy from what that run saw; later calls at the shape run the copy. A shape used once (a LAM
    call's last partial batch, its baseline) is not worth a copy: building one costs several forwards."""

    def __init__(self, gm: fx.GraphModule, op_types: dict[str, str], size: int = CACHE_SIZE):
        self.gm, self.op_types, self.size = gm, op_types, size
        self.cache: OrderedDict[tuple, fx.GraphModule] = OrderedDict()
        self.seen: OrderedDict[tuple, None] = OrderedDict()  # shapes run once, on the full graph
        self.lock = threading.Lock()  # threads sharing a model (compare)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        with self.lock:
            graph = self.cache.get(key)
            if graph is None and key not in self.seen:
                _remember(self.seen, key, None, self.size)
                graph = self.gm
            elif graph is None:
                del self.seen[key]
                fast, out = specialise(self.gm, self.op_types, x)
                _remember(self.cache, key, fast or self.gm, self.size)
                return out
            else:
                self.cache.move_to_end(key)
        return graph(x)


def _remember(table: OrderedDict, key: tuple, value: Any, size: int) -> None:
    """``table[key] = value``, the least recently used entries out beyond ``size``."""
    table[key] = value
    while len(table) > size:
        table.popitem(last=False)
