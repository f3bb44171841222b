"""Windows: where on the SR output a method looks.

``geometry`` (``Window``, ``Grid``, the HR and SR frames, validation, coordinates), ``detector`` (LAM's gradient
detector on a window, the objective every method explains) and ``csvfile`` (windows files). Nothing is imported
here, so the CLI reads windows files without loading torch.
"""
