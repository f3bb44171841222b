"""Studies: one method on every model x image x window, resumable cell by cell, on Dask.

``plan`` checks a study before anything runs, ``tasks`` is what a worker runs, ``scheduler`` where tasks run,
``cells`` the unit a study keeps (and its on-disk record), ``assemble`` the cells -> one Dataset, and ``compare``
puts them together (``onnxattr.compare``).
"""
