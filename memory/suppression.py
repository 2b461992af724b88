"""Complementary suppression over a partition: the pure rule behind every anonymous view.

A program's respondents in one wave are split into cells (one per owner's team, and one for
people without an owner). Owners see their cell, admins and digests the whole; anyone who sees
the whole and some cells can subtract. The rule, as survey tools such as Viva Glint apply it:

1. a cell below ``k`` is hidden (primary suppression);
2. while the hidden cells add up to between 1 and ``k - 1`` people, the smallest cell still shown
   is hidden too (complementary suppression), so "the whole minus every shown cell" is always
   either nobody or a group of at least ``k``;
3. the whole is hidden below ``k``.

The same rule runs on each count a view shows separately: respondents (scores), people who
answered both this wave and the previous one (movement), and people who wrote a comment (with
the higher comment threshold).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

SMALL = "fewer than {k} {what}"
COMPLEMENT = "withheld with a smaller group, so that no subtraction reveals fewer than {k} {what}"


def hidden_cells(cells: Mapping[K, int], k: int, *, what: str = "respondents") -> dict[K, str]:
    """The cells to hide, with why. Cells of size 0 are not shown and never hidden by rule 2."""
    hidden: dict[K, str] = {c: SMALL.format(k=k, what=what) for c, n in cells.items() if 0 < n < k}
    shown = sorted(((n, repr(c), c) for c, n in cells.items() if n >= k), key=lambda t: (t[0], t[1]))
    while 0 < sum(cells[c] for c in hidden) < k and shown:
        _, _, smallest = shown.pop(0)
        hidden[smallest] = COMPLEMENT.format(k=k, what=what)
    return hidden


def whole_hidden(total: int, k: int, *, what: str = "respondents") -> str | None:
    """Why the whole must be hidden, or None."""
    return SMALL.format(k=k, what=what) if total < k else None
