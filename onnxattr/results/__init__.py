"""Results: the one Dataset layout every method returns, and results on disk.

``schema`` (the layout as data), ``build`` (a method's tensors -> a Dataset; ``finite`` refuses NaN/Inf first),
``combine`` (several runs on one model and image), ``files`` (``save``/``load`` of ``.nc`` runs and ``.zarr``
studies), ``studystore`` (study stores that resume, cell by cell) and ``locking`` (their locks and temp names).
Nothing is imported here, so the CLI reads the layout without loading torch.
"""
