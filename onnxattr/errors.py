"""User-facing errors: each one is a single line that names the problem and the fix."""


def first_line(value: object) -> str:
    """The first non-blank line of ``str(value)``, stripped ('' when there is none)."""
    return next((s.strip() for s in str(value).splitlines() if s.strip()), "")


def clip_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, '...' marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rstrip()
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:(") + "..."


def error_line(err: BaseException, limit: int = 300) -> str:
    """A library error's first line (its type name when it has no message), cut at a word boundary to at most
    ``limit`` characters."""
    return clip_words(first_line(err) or type(err).__name__, limit)


def beside(value: float, limit: float) -> tuple[str, str]:
    """``value`` and ``limit`` as text with the same significant digits, as many as it takes (2 to 6) for them to
    read differently, so that "1.04e-02, more than 0.01" never reads as "0.01 > 0.01"."""
    for digits in range(2, 7):
        a, b = f"{value:.{digits}g}", f"{limit:.{digits}g}"
        if a != b:
            break
    return a, b


class OnnxAttrError(Exception):
    """A problem with the user's input (file, model, image, window, option).

    The CLI prints ``str(err)`` as one line on stderr and exits with status 2;
    anything else escaping is a bug in onnxattr.
    """


class UnsupportedOpError(OnnxAttrError):
    """The ONNX graph holds an op that no converter handles.

    ``version`` is the op's definition in force (its schema's since_version at the file's opset), ``opset``
    the file's opset for the op's domain, ``converted`` the definitions of the op that onnxattr does convert.
    """

    def __init__(self, op_type: str, version: int, node: str, detail: str = "", opset: int | None = None,
                 converted: tuple[int, ...] = ()) -> None:
        self.op_type, self.version, self.node, self.opset = op_type, version, node, opset
        where = f"opset {opset}, {op_type}-{version}" if opset is not None and opset != version else f"opset {version}"
        other = [f"{op_type}-{v}" for v in converted if v != version]
        if detail == "no converter is registered" and other:  # another definition of the op is converted
            fix = f"re-export the model with an opset whose {op_type} is converted ({', '.join(other)})"
        else:
            fix = "add a converter in converters/ (re-exporting does not change this)"
        super().__init__(f"unsupported ONNX op {op_type} ({where}) at node {node!r}{': ' + detail if detail else ''}; {fix}")


class CellsFailed(OnnxAttrError):
    """Some cells of a study failed while the others completed: ``errors`` holds one line per failed cell,
    ``dataset`` the study with the failed cells NaN and their errors in ``cell_error`` (None when every
    cell failed). Raised where it is made (it does not cross processes)."""

    def __init__(self, errors: list[str], total: int, where: str, dataset: object = None) -> None:
        self.errors, self.total, self.where, self.dataset = errors, total, where, dataset
        n = len(errors)
        more = f" (and {n - 1} more)" if n > 1 else ""
        kept = f"the other {total - n} are in {where}, each failure in cell_error" if n < total else "nothing was computed"
        super().__init__(f"{n} of {total} cells failed, first {errors[0]}{more}; {kept}; fix the cause and rerun")
