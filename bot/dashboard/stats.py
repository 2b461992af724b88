"""Net promoter arithmetic for the program page, with its margin of error.

NPS (eNPS for employees) is promoters (9-10) minus detractors (0-6), in percent, on a 0-10
scale; :func:`memory.anonymity.enps` computes it. Its 95% margin of error, in points, is
``1.96 * sqrt((p + d - (p - d)^2) / n) * 100`` with p and d the promoter and detractor shares:
the standard error of a difference of two proportions from one multinomial sample. That normal
approximation needs a sample: below ``MIN_FOR_MARGIN`` ratings the margin is None ("too few").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from memory.anonymity import enps

MIN_FOR_MARGIN = 10


@dataclass(frozen=True, kw_only=True)
class Nps:
    score: float
    margin: float | None
    n: int


def nps(ratings: Sequence[int]) -> Nps | None:
    score = enps(ratings)
    if score is None:
        return None
    n = len(ratings)
    p = sum(r >= 9 for r in ratings) / n
    d = sum(r <= 6 for r in ratings) / n
    margin = 1.96 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n) * 100
    return Nps(score=score, margin=round(margin, 1) if n >= MIN_FOR_MARGIN else None, n=n)


def nps_from_distribution(distribution: dict[int, int]) -> Nps | None:
    return nps([rating for rating, count in distribution.items() for _ in range(count)])
