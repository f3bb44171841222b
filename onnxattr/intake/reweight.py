"""A loaded model with other weights: the same prepared ONNX graph with other initializer values, converted,
run in onnxruntime and verified exactly as a load does, so that everything that reads a model (the torch graph,
the ONNX proto L2X's rules read, the onnxruntime session forward-only measures use) sees the same weights.

The sanity checks (``onnxattr.checks``) explain such copies with re-drawn weights through the methods' own code.
"""

from __future__ import annotations

import numpy as np
import onnx

from .convert import convert, op_table
from .model import SRModel
from .session import ort_session
from .units import ValueRange
from .verify import conversion_error


def reweighted(model: SRModel, proto: onnx.ModelProto) -> SRModel:
    """``model`` with the weights of ``proto``: ``model.proto`` with other initializer values (same nodes, names,
    shapes and dtypes). The copy's conversion is checked against onnxruntime on the model's probe as a load's
    (``verify.conversion_error``: a one-line error above its tolerance); its file facts (path, SHA-256, size rule,
    units) are the model's. ``model`` itself is not touched."""
    name = model.path.name
    graph, prepared = convert(proto, name)
    graph = graph.to(model.device).eval().requires_grad_(False)
    ops = op_table(prepared, graph)
    session = ort_session(prepared.SerializeToString(), name, model.device)
    units = (model.value_range, model.output_range)
    y_ort = session.run(None, {model.spec.input_name: (model.probe * units[0]).astype(np.float32)})[0] / units[1]
    error = conversion_error(name, prepared, graph, ops, model.spec.input_name, units, model.adapter.precision,
                             model.probe, y_ort, model.device)
    return SRModel(
        path=model.path, sha256=model.sha256, proto=prepared, graph=graph, op_table=ops, spec=model.spec,
        adapter=model.adapter, scale=model.scale, offset=model.offset, size_rule=model.size_rule,
        units=ValueRange(units[0], units[1], model.value_range_source, model.output_range_source,
                         dict(model.value_range_scores)),
        session=session, device=model.device, probe=model.probe, conversion_error=error,
        precision_gap=model.precision_gap,
    )
