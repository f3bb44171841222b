"""Values on two inputs at once and the three propagation primitives every L2X rule is built from.

A :class:`Pair` holds a tensor computed on the input x (differentiable) and the same tensor
computed on the reference x_ref (no gradient). The backward pass through the x side gives the
*multiplier* m_t(h) of every hidden value h: the target difference Delta t = sum m * Delta h.

* :func:`linear`    - an op linear (affine) in its varying inputs: the ordinary gradient, exact.
* :func:`rescale`   - an element-wise nonlinearity y = f(h): m = Delta y / Delta h (paper Sec. 3.3,
  DeepLIFT's Rescale rule), the derivative at the midpoint where |Delta h| is tiny.
* :func:`midpoint`  - a function of degree <= 2 in its varying inputs (a*b, A@B, einsum, a*a):
  the gradient at the midpoint ((h + h_ref) / 2); for a product this is the symmetric split
  m_a = (b + b_ref) / 2, m_b = (a + a_ref) / 2, and it is exact for every quadratic function.

Every composite rule (Softmax, LayerNorm, max, ...) is a chain of these, so that completeness
sum_i m_i Delta x_i = Delta t holds exactly up to floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

#: |Delta h| below RESCALE_RTOL * max(|h|, |h_ref|) + RESCALE_ATOL uses the midpoint derivative.
RESCALE_RTOL = 1e-3
RESCALE_ATOL = 1e-7


@dataclass
class Pair:
    """A value on the input (``x``, carries the gradient) and on the reference (``ref``, detached).

    ``x`` and ``ref`` are tensors, or tuples of tensors for multi-output ops.
    """

    x: Any
    ref: Any

    @property
    def delta(self) -> torch.Tensor:
        """Delta h = h(x) - h(x_ref)."""
        return self.x.detach() - self.ref


def side(value: Any, which: str) -> Any:
    """One side ('x' or 'ref') of a Pair; constants are the same on both sides."""
    return getattr(value, which) if isinstance(value, Pair) else value


def constant(value: Any) -> Pair:
    """A constant seen as a Pair with no difference."""
    return Pair(value, value)


def linear(fn: Callable[..., Any], *args: Any) -> Pair:
    """y = fn(args) on both sides; the backward is fn's own gradient (exact for affine fn)."""
    y = fn(*(side(a, "x") for a in args))
    with torch.no_grad():
        y_ref = fn(*(side(a, "ref") for a in args))
    return Pair(y, y_ref)


def _elementwise_derivative(f: Callable[[torch.Tensor], torch.Tensor], at: torch.Tensor) -> torch.Tensor:
    """f'(at) for an element-wise f, one backward of sum f(at); non-finite values (sqrt'(0)) -> 0."""
    with torch.enable_grad():
        h = at.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(h).sum(), h)
    return torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)


def secant(
    h: torch.Tensor,
    h_ref: torch.Tensor,
    y: torch.Tensor,
    y_ref: torch.Tensor,
    tangent: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """m = (y - y_ref) / (h - h_ref), or ``tangent()`` = f'((h + h_ref) / 2) where |h - h_ref| is tiny (paper Sec. 3.3)."""
    dh = h - h_ref
    small = dh.abs() <= RESCALE_RTOL * torch.maximum(h.abs(), h_ref.abs()) + RESCALE_ATOL
    m = (y - y_ref) / torch.where(small, torch.ones_like(dh), dh)
    if bool(small.any()):
        m = torch.where(small, tangent(), m)
    return m


def rescale_multiplier(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    h_ref: torch.Tensor,
    y: torch.Tensor,
    y_ref: torch.Tensor,
) -> torch.Tensor:
    """The secant of an element-wise f, its derivative at the midpoint (by autograd) where |h - h_ref| is tiny."""
    return secant(h, h_ref, y, y_ref, lambda: _elementwise_derivative(f, (h + h_ref) / 2))


class _Rescale(torch.autograd.Function):
    """Forward y = f(h); backward grad * rescale multiplier."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, h_ref: torch.Tensor, y_ref: torch.Tensor, f: Callable) -> torch.Tensor:
        y = f(h)
        ctx.f = f
        ctx.save_for_backward(h, h_ref, y, y_ref)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, h_ref, y, y_ref = ctx.saved_tensors
        return grad * rescale_multiplier(ctx.f, h, h_ref, y, y_ref), None, None, None


def rescale(f: Callable[[torch.Tensor], torch.Tensor], h: Pair) -> Pair:
    """y = f(h) for an element-wise f (output shape = input shape); multiplier Delta y / Delta h."""
    with torch.no_grad():
        y_ref = f(h.ref)
    if y_ref.shape != h.ref.shape:
        raise ValueError(f"rescale needs an element-wise function, got shape {tuple(h.ref.shape)} -> {tuple(y_ref.shape)}")
    return Pair(_Rescale.apply(h.x, h.ref, y_ref, f), y_ref)


class _Midpoint(torch.autograd.Function):
    """Forward y = f(*h); backward the vector-Jacobian product of f at the midpoints (h + h_ref) / 2."""

    @staticmethod
    def forward(ctx, f: Callable, n: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.f, ctx.n = f, n
        ctx.save_for_backward(*tensors)
        return f(*tensors[:n])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        xs, refs = saved[: ctx.n], saved[ctx.n :]
        with torch.enable_grad():
            mids = [((a + b) / 2).requires_grad_(True) for a, b in zip(xs, refs)]
            grads = torch.autograd.grad(ctx.f(*mids), mids, grad, allow_unused=True)
        grads = [torch.zeros_like(m) if g is None else g for m, g in zip(mids, grads)]
        return (None, None, *grads, *([None] * ctx.n))


def midpoint(f: Callable[..., torch.Tensor], *args: Any) -> Pair:
    """y = f(*args) for f of degree <= 2 in its varying args: multipliers = gradient at the midpoint.

    Exact: for quadratic f, f(x) - f(x_ref) = grad f((x + x_ref) / 2) . (x - x_ref).
    """
    slots = [i for i, a in enumerate(args) if isinstance(a, Pair)]

    def on_varying(*vs: torch.Tensor) -> torch.Tensor:
        full = list(args)
        for i, v in zip(slots, vs):
            full[i] = v
        return f(*full)

    with torch.no_grad():
        y_ref = on_varying(*(args[i].ref for i in slots))
    y = _Midpoint.apply(on_varying, len(slots), *(args[i].x for i in slots), *(args[i].ref for i in slots))
    return Pair(y, y_ref)


# ------------------------------------------------------------------ composites used by several rules
def product(a: Any, b: Any) -> Pair:
    """a * b: linear when one factor is constant, else the symmetric split (midpoint rule)."""
    if isinstance(a, Pair) and isinstance(b, Pair):
        return midpoint(torch.mul, a, b)
    return linear(torch.mul, a, b)


def reciprocal(h: Pair) -> Pair:
    """1 / h by rescale: m = -1 / (h h_ref)."""
    return rescale(torch.reciprocal, h)


def maximum(a: Any, b: Any, sign: float = 1.0) -> Pair:
    """max(a, b) = (a + b + |a - b|) / 2 (sign = -1 gives min): linear ops and one |.| rescale, exact."""
    a, b = (v if isinstance(v, Pair) else constant(v) for v in (a, b))
    spread = rescale(torch.abs, linear(torch.sub, a, b))
    return linear(lambda p, q, s: (p + q + sign * s) / 2, a, b, spread)


def reduce_max(h: Pair, dim: int, sign: float = 1.0) -> Pair:
    """max over ``dim`` (keepdim) as a pairwise tree of :func:`maximum`: ceil(log2 n) levels."""
    while h.ref.shape[dim] > 1:
        n = h.ref.shape[dim]
        half = n // 2
        top = maximum(
            linear(lambda t: t.narrow(dim, 0, half), h), linear(lambda t: t.narrow(dim, half, half), h), sign
        )
        h = top if n % 2 == 0 else linear(lambda p, t: torch.cat([p, t.narrow(dim, n - 1, 1)], dim), top, h)
    return h


def square(h: Pair) -> Pair:
    """h^2 by the midpoint rule: m = h + h_ref, exact."""
    return midpoint(lambda t: t * t, h)
