"""Is a reply to "What changed?" an answer at all?

People reply "yes", "idk", "no", "." or a thumbs-up to a follow-up question. Stored as the
explanation, that shows up in a digest as "What changed, in their words: yes". This module tells
such replies apart from reasons, so the conversation can re-ask once and the digest can say that
no reason was given. It is deliberately narrow: anything with a content word is an answer, even a
short one ("price", "new manager"), because a wrongly refused reason is worse than a re-ask.
"""

from __future__ import annotations

import re
import unicodedata

# Replies that say nothing about *why*, in the languages people most often write to Rapport in.
# Compared after case-folding, with accents removed, punctuation and emoji dropped and runs of a
# repeated letter shortened ("nooo" -> "no").
_NON_ANSWERS = frozenset(
    {
        # English
        "yes", "yeah", "yep", "yup", "ya", "y", "no", "nope", "nah", "n", "ok", "okay", "k", "kk", "sure",
        "maybe", "perhaps", "idk", "dunno", "dont know", "i dont know", "i do not know", "not sure", "no idea",
        "no clue", "unsure", "no comment", "nothing", "nothing really",
        "na", "n a", "none", "whatever", "hm", "hmm", "meh", "eh", "same", "dk", "pass", "skip", "lol",
        "thanks", "thank you", "fine", "good", "bad",
        # German, Dutch
        "ja", "nein", "nee", "jein", "weiss nicht", "weis nicht", "keine ahnung", "ich weiss nicht",
        "weet niet", "geen idee", "ik weet het niet", "nichts", "niets", "egal",
        # French
        "oui", "non", "ouais", "je ne sais pas", "sais pas", "jsp", "aucune idee", "rien", "bof",
        # Spanish, Portuguese, Italian
        "si", "sim", "nao", "no se", "ni idea", "nada", "nao sei", "nao sei dizer", "non lo so", "boh",
        "niente", "nulla",
        # Polish, Russian, Ukrainian
        "tak", "nie", "nie wiem", "da", "net", "нет", "да", "не знаю", "ні", "так",
        # Japanese, Chinese, Korean
        "はい", "いいえ", "わからない", "分からない", "是", "不", "不知道", "没有", "네", "아니요", "모르겠어요",
    }
)  # fmt: skip

_REPEAT = re.compile(r"(.)\1{2,}")


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    kept = []
    for ch in folded:
        category = unicodedata.category(ch)
        if category == "Mn":  # accents: "não" -> "nao", "weiß" stays (folded to "weiss")
            continue
        kept.append(ch if category[0] in "LN" or ch == "'" else " ")
    words = " ".join("".join(kept).replace("'", "").split())
    return _REPEAT.sub(r"\1", words)


def is_non_answer(text: str | None) -> bool:
    """True when a reply gives no reason: empty, only punctuation or emoji, a bare yes/no/"don't know"
    (in several languages), or a bare number."""
    if text is None:
        return True
    words = _normalise(text)
    if not words:
        return True
    if words.replace(" ", "").isdigit():
        return True
    return words in _NON_ANSWERS or words.replace(" ", "") in _NON_ANSWERS
