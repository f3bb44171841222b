"""Methods: the attribution methods and what they share.

``registry`` declares every method (its function, parameter check, memory estimate, schema variables and figure);
``lam``, ``l2x`` and ``glam`` are the methods; ``paths`` (LAM's integration paths), ``blur`` (Gaussian kernels)
and ``memory`` (free memory, peak laws, refusals) are their shared pieces. Nothing is imported here, so the CLI
reads the registry without loading torch.
"""
