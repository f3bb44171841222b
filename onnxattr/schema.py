"""The result layout as data: what every variable, coordinate and attr of a result means.

One table serves three readers: ``results.build_dataset`` (and ``compare.assemble``) copy the
``long_name``/``units``/``description`` of each variable and coordinate into its attrs, the tests check
every result against it, and docs/results.md describes it for people. ``CHECKS`` lists, per method, the
attrs that say how far to trust a result (printed after a CLI run).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# method -> attrs that say how far to trust its result, with a short label (CLI summary).
CHECKS: dict[str, dict[str, str]] = {
    "lam": {"diffusion_index": "diffusion index", "gini": "Gini", "completeness_error": "completeness error"},
    "l2x": {"completeness_error": "completeness error", "target_value": "target", "target_reference_value": "target at reference"},
    "glam": {"diffusion_index": "diffusion index", "attributed_share": "attributed pixels (local)",
             "global_attributed_share": "attributed pixels (global)"},
}
