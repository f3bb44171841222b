"""``ForwardModel``: an ``SRModel`` without a torch graph, for forward-only work (CEM, masking curves) that
onnxruntime runs on the file itself. ``intake.load.load_model(..., forward_only=True)`` makes it; every
gradient method refuses it in one line naming why it has no graph."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import OnnxAttrError
from .model import SRModel


class ForwardModel(SRModel):
    """An SR file probed (sizes, output law, units) but not converted: ``graph`` is None and ``graph_error`` says
    why (not converted, or the op no converter handles). ``run_ort`` and the onnxruntime session work as for every
    ``SRModel``; a batch runs image by image (``batch_mode`` 'loop'); torch passes are refused."""

    def __init__(self, *, graph_error: str, **kw: Any) -> None:
        super().__init__(graph=None, op_table={}, conversion_error=None, **kw)
        self.graph_error = graph_error

    def refusal(self) -> OnnxAttrError:
        return OnnxAttrError(f"{self.path.name} has no torch graph ({self.graph_error}): LAM, L2X, GL-AM and CEM's "
                             "torch backend need one; load it with load_model(path), not forward_only")

    @property
    def batch_mode(self) -> str:
        return "loop"

    @property
    def fast(self) -> Any:
        raise self.refusal()

    @property
    def nodes(self) -> Any:
        raise self.refusal()  # also where the file's cache entry holds a full load's node list

    def run(self, x: torch.Tensor, watch: Any, on_node: Any) -> torch.Tensor:
        raise self.refusal()

    def first_nonfinite_node(self, x: torch.Tensor) -> str | None:
        return None
