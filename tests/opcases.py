"""The ONNX models the converter tests build, as builders that other tests can enumerate.

A test module registers each builder with the grid of parameters its test runs it on (``Builders``); the test
parametrizes over ``builder.grid`` and checks the model its way, and ``tests/test_fastgraph.py`` runs every
registered model's fast graph against its full graph (``Builders.cases``), so no model is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import onnx


@dataclass(frozen=True)
class OpCase:
    """An ONNX model, the op it tests and its inputs: one feed dict per input size (one for fixed-size graphs)."""

    model: onnx.ModelProto
    feeds: tuple[dict[str, np.ndarray], ...]
    op_type: str


class Builders:
    """The builders of one test module: ``@builders("a, b", [(1, 2), ...])`` registers ``fn(a, b) -> OpCase`` and
    sets ``fn.grid`` to pytest's ``parametrize`` arguments."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.registered: list[Callable[..., OpCase]] = []

    def __call__(self, names: str = "", values: Sequence[Any] = ((),)) -> Callable[[Callable[..., OpCase]], Callable[..., OpCase]]:
        def register(fn: Callable[..., OpCase]) -> Callable[..., OpCase]:
            fn.grid = (names, list(values))  # type: ignore[attr-defined]
            self.registered.append(fn)
            return fn

        return register

    def cases(self) -> list[tuple[str, Callable[[], OpCase]]]:
        """(id, thunk) for every builder at every point of its grid."""
        out = []
        for fn in self.registered:
            names, values = fn.grid  # type: ignore[attr-defined]
            keys = [k.strip() for k in names.split(",") if k.strip()]
            for i, v in enumerate(values):
                args = () if not keys else (v,) if len(keys) == 1 else tuple(v)
                label = "-".join(str(a) if isinstance(a, (int, float, str, type(None))) else f"{k}{i}"
                                 for k, a in zip(keys, args))
                out.append((f"{self.module}.{fn.__name__}" + (f"[{label}]" if keys else ""),
                            lambda fn=fn, args=args: fn(*args)))
        return out
