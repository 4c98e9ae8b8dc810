"""The one rule for "the best model", used by register, compare, the sweep parent run and `rnnlab generate`.

The best candidate has the highest score (`higher_is_better`) or the lowest; a missing or NaN score never
wins; among equal scores the name that sorts first wins (so `bilstm` beats `lstm` on a tie, whatever order
the candidates come in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rnnlab.errors import RnnlabError


def best(scores: Mapping[str, object], higher_is_better: bool, what: str = "score") -> str:
    """The name of the best candidate in `scores` ({name: score}); `what` names the score in the error."""
    scored = {name: float(value) for name, value in scores.items() if _is_number(value)}
    if not scored:
        raise RnnlabError(f"no candidate has a {what} to rank by: {dict(scores)}")
    sign = -1.0 if higher_is_better else 1.0
    return min(sorted(scored), key=lambda name: sign * scored[name])


def _is_number(value: object) -> bool:
    if value is None or isinstance(value, bool | str | bytes):
        return False
    try:
        return not math.isnan(float(value))  # numbers and numpy scalars
    except (TypeError, ValueError):
        return False
