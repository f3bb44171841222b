"""Intake: an ONNX file in, a verified ``SRModel`` out.

``onnxfile`` reads and validates the file, ``adapters`` maps its precision, layout, dtype and channel order onto
a float32 core graph, ``sizes`` and ``units`` learn from onnxruntime what sizes and units it takes (``session``
runs it), ``convert`` turns the core into a torch.fx graph, ``verify`` (with ``diagnose``) checks that graph
against onnxruntime, ``fastgraph`` specialises it per input shape, ``cache`` keeps what a load learned, ``model``
is the result and ``load`` puts the steps together.
"""

from .load import load_model
from .model import ModelFacts, NodeInfo, SRModel, Taps

__all__ = ["ModelFacts", "NodeInfo", "SRModel", "Taps", "load_model"]
