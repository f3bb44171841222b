"""ONNX -> torch.fx conversion for SR networks: cleanup, extra onnx2torch converters, export."""

from .export import export_onnx

__all__ = ["export_onnx"]
