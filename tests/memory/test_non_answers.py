"""Replies to "What changed?" that give no reason are told apart from reasons, in any language."""

from __future__ import annotations

import pytest

from memory.changes import is_non_answer


@pytest.mark.parametrize(
    "reply",
    [
        "yes", "Yes.", "YES!!!", "yesss", "no", "Nooo", "nope", "idk", "IDK?", "I don't know", "i dont know",
        "dunno", "not sure", "Not sure...", "no idea", "ok", "k", "nothing", "n/a", "N/A", ".", "...", "?", "-",
        "", "   ", "\n", "👍", "🤷", "🤷‍♀️", "😀😀", ":)", "5", "10", "hmm", "meh",
        "ja", "Nein", "weiß nicht", "Keine Ahnung", "oui", "je ne sais pas", "sí", "no sé", "não", "não sei",
        "non lo so", "nie wiem", "не знаю", "да", "нет", "はい", "わからない", "不知道", "geen idee",
    ],
)  # fmt: skip
def test_a_bare_reply_is_not_an_answer(reply: str) -> None:
    assert is_non_answer(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "price", "The price went up", "new manager", "They fixed the app", "Support is slow now",
        "yes, the new manager listens", "no one answers the phone any more", "I don't know anyone there now",
        "nothing works since the update", "Der Preis ist gestiegen", "le support est lent", "el precio subió",
        "Waited for hours", "👍 the team is better", "2 weeks without an answer", "稼働時間が長い",
    ],
)  # fmt: skip
def test_a_reason_is_an_answer_even_when_short(reply: str) -> None:
    assert not is_non_answer(reply)


def test_none_is_not_an_answer() -> None:
    assert is_non_answer(None)
