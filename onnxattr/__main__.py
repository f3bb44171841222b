"""``python -m onnxattr`` = the ``onnxattr`` command."""

from .cli import main

main()
