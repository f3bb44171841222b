"""Can a map be trusted? Sanity and faithfulness checks of every registered method on one image's windows.

``weights`` finds a model's learned tensors node by node and re-draws them, ``randomisation`` runs the model
parameter randomisation test (Adebayo et al. 2018) on copies with re-drawn weights, ``faithfulness`` the
deletion and insertion curves (Petsiuk et al. 2018) with a random-order and a random-map control, ``verdict``
puts the outcomes in words and ``report`` (``check``) runs it all into one Dataset. A layer above ``methods``
(it calls each method through its registry function) and below ``study``. See docs/check.md.
"""

from .report import check

__all__ = ["check"]
