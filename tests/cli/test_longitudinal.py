"""The foundation's promise, end to end through `rapport chat` with the real model:
a changed view six months later gets a follow-up that quotes the earlier words; a paraphrase
does not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.cli.test_cli import cli, write
from tests.helpers import Conversation, seed

pytestmark = pytest.mark.model

FIRST = "Support answered within an hour and onboarding was smooth."
SECOND = "Support takes days to reply now and nobody follows up on tickets."
THIRD = "These days support needs several days to respond, and no one follows up on our tickets."


@pytest.fixture
def real_model_cli(embedder, db_url: str, tmp_path: Path):
    # The CLI builds its own embedder; it shares the process-wide model the fixture loaded.
    roster = "id,name,email,timezone,owner,programs\nann,Ann,ann@example.com,Europe/Berlin,o@example.com,customers\n"
    assert cli(db_url, "people", "import", str(write(tmp_path, "people.csv", roster))).exit_code == 0
    return db_url


def test_two_checkins_six_months_apart_then_a_paraphrase(real_model_cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # `chat --at` refuses the future: today is pinned after the last check-in, whatever the date.
    monkeypatch.setattr("bot.cli.core.utcnow", lambda: dt.datetime(2027, 6, 1, tzinfo=dt.UTC))
    db = real_model_cli
    first = cli(db, "chat", "ann", "--at", "2026-03-02T10:00:00Z", input=f"9\n{FIRST}\n")
    assert first.exit_code == 0, first.output
    assert "What changed?" not in first.output

    second = cli(db, "chat", "ann", "--at", "2026-09-01T10:00:00Z", input=f"3\n{SECOND}\nA new account manager.\n")
    assert second.exit_code == 0, second.output
    followup = next(line for line in second.output.splitlines() if "What changed?" in line)
    assert "Support answered within an hour" in followup
    assert "March 2026" in followup

    third = cli(db, "chat", "ann", "--at", "2027-03-01T10:00:00Z", input=f"3\n{THIRD}\n")
    assert third.exit_code == 0, third.output
    assert "What changed?" not in third.output
    assert "everything" in third.output

    data = json.loads(cli(db, "history", "ann", "--json").stdout)
    checkins = data["checkins"]
    assert [c["started_at"][:10] for c in checkins] == ["2026-03-02", "2026-09-01", "2027-03-01"]
    assert [[a["rating"] for a in c["answers"] if a["question"] == "recommend"] for c in checkins] == [[9], [3], [3]]
    assert [next(a["text"] for a in c["answers"] if a["question"] == "reason") for c in checkins] == [
        FIRST, SECOND, THIRD,
    ]  # fmt: skip
    (fu,) = checkins[1]["followups"]
    assert "Support answered within an hour" in fu["question"]
    assert fu["answer"] == "A new account manager."
    assert any(r["kind"] == "rating" for r in fu["reasons"])
    assert fu["reasons"][0]["text"]
    assert checkins[0]["followups"] == []
    assert checkins[2]["followups"] == []


@pytest.mark.parametrize(
    ("before", "after", "asks"),
    [
        ("I like the new dashboard", "I dislike the new dashboard", True),
        ("The reporting is great and saves us hours every week.",
         "The reports are excellent and save us many hours each week.", False),
        ("Your team always answers quickly and knows our setup.",
         "Billing errors every month and invoices we cannot understand.", True),
    ],
)  # fmt: skip
def test_follow_up_only_when_the_view_changed(make_app, before: str, after: str, asks: bool) -> None:
    app = make_app(real_model=True)
    seed(app)
    import datetime as dt

    t0 = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
    conv = Conversation(app)
    conv.start(t0)
    conv.say("8", t0)
    conv.say(before, t0)
    later = t0 + dt.timedelta(days=182)
    conv.start(later)
    conv.say("8", later)  # same rating: only the words can tell
    replies = conv.say(after, later)
    followups = [m for m in replies if m.kind == "followup"]
    assert bool(followups) is asks, [m.text for m in replies]
    if asks:
        assert before.split()[1] in followups[0].text
