"""Every digest format says "no reason given" when the answer to "What changed?" gave none, and
never shows a bare "yes" as the person's explanation."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.digests import FORMATS, render_digest
from memory.digests import Digest, PersonChange

T = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def digest(**change: object) -> Digest:
    base: dict[str, object] = dict(
        person="p0", name="Dana", program="customers", at=T, old_rating=9, new_rating=4,
        old_reason="Support is fast", new_reason="Support is slow", followup_answer=None, view_changed=True,
    )  # fmt: skip
    base.update(change)
    return Digest(owner="o", owner_name="Owen", since=T - dt.timedelta(days=7), until=T,
                  summary="1 person changed (1 down).", changes=(PersonChange(**base),))  # type: ignore[arg-type]  # fmt: skip


def body(d: Digest, fmt: str) -> str:
    rendered = render_digest(d, fmt)  # type: ignore[arg-type]
    text = rendered.body + (rendered.html or "")
    if fmt == "slack":
        text = "\n".join(b["text"]["text"] for b in json.loads(text)["blocks"] if "text" in b)
    return text


PROSE = [f for f in FORMATS if f != "csv"]


@pytest.mark.parametrize("fmt", PROSE)
def test_no_reason_given_is_said(fmt: str) -> None:
    text = body(digest(followup_no_reason=True), fmt)
    assert "What changed: no reason given" in text
    assert "in their words" not in text


@pytest.mark.parametrize("fmt", PROSE)
def test_a_reason_is_shown_in_their_words_and_not_called_missing(fmt: str) -> None:
    text = body(digest(followup_answer="Our account manager left"), fmt)
    assert "Our account manager left" in text
    assert "no reason given" not in text


@pytest.mark.parametrize("fmt", PROSE)
def test_no_follow_up_says_nothing_about_a_reason(fmt: str) -> None:
    text = body(digest(), fmt)
    assert "What changed" not in text


def test_a_bare_yes_does_not_rank_a_change_as_if_it_were_explained() -> None:
    from memory.digest_rows import CheckinRow, LastFollowUp
    from memory.digests import _change

    now = CheckinRow(id=2, person_id=1, program="customers", status="completed", started_at=T, completed_at=T,
                     rating=4, reason="Support is slow")  # fmt: skip
    before = CheckinRow(id=1, person_id=1, program="customers", status="completed", started_at=T, completed_at=T,
                        rating=9, reason="Support is fast")  # fmt: skip

    def ranked(answer: str) -> float:
        change = _change(now, before, [9, 4], LastFollowUp(reasons=[], answer=answer), {1: "p0"}, {1: "Dana"},
                         threshold=2, quote_chars=120, broken=0)  # fmt: skip
        assert change is not None
        return change.importance

    assert ranked("Our account manager left") > ranked("yes")
