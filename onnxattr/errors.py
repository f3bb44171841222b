"""User-facing errors: each one is a single line that names the problem and the fix."""


class OnnxAttrError(Exception):
    """A problem with the user's input (file, model, image, window, option).

    The CLI prints ``str(err)`` as one line on stderr and exits with status 2;
    anything else escaping is a bug in onnxattr.
    """


class UnsupportedOpError(OnnxAttrError):
    """The ONNX graph holds an op that no converter handles."""

    def __init__(self, op_type: str, version: int, node: str, detail: str = "") -> None:
        self.op_type, self.version, self.node = op_type, version, node
        msg = (
            f"unsupported ONNX op {op_type} (opset {version}) at node {node!r}"
            f"{': ' + detail if detail else ''}; add a converter in converters/ "
            "or re-export the model with another opset"
        )
        super().__init__(msg)
