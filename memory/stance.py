"""Lexical signals of stance for change detection: polarity, negation, opposite words, clauses.

Sentence embeddings place "I like the new dashboard" and "I dislike the new dashboard" side by
side (cosine 0.90): they measure topic, not stance. The signals here look at the words instead,
and are cheap (no model):

* :func:`polarity`: VADER's compound score in [-1, 1] (MIT, ships its lexicon), which handles
  negation ("not good") and intensifiers itself.
* :func:`contrast`: two texts about the same thing that disagree in words: one is negated where
  the other is not ("is playing" / "is not playing", "there is no ..."), or a word stands where
  the other text has its opposite ("fast" / "slow", "helpful" / "unhelpful").
* :func:`clauses`: an answer split into the ideas it mentions, for the theme diff.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

NEGATIONS = frozenset(
    {
        "not", "no", "never", "nobody", "none", "nothing", "nowhere", "neither", "nor", "without",
        "cannot", "hardly", "barely", "lack", "lacks", "lacking",
    }
)  # fmt: skip

# Pairs of opposite words, for answers about products, services and workplaces, plus common
# spatial and size opposites. Prefixed opposites (helpful/unhelpful, like/dislike) are derived, so
# they need not be listed here.
_OPPOSITES: tuple[tuple[str, str], ...] = (
    ("good", "bad"), ("great", "terrible"), ("great", "awful"), ("excellent", "poor"),
    ("better", "worse"), ("best", "worst"), ("improved", "worsened"), ("improving", "worsening"),
    ("love", "hate"), ("loved", "hated"), ("like", "hate"), ("liked", "hated"),
    ("easy", "hard"), ("easy", "difficult"), ("easier", "harder"), ("simple", "complicated"),
    ("simple", "complex"), ("clear", "confusing"), ("clear", "unclear"),
    ("fast", "slow"), ("quick", "slow"), ("faster", "slower"), ("quickly", "slowly"),
    ("cheap", "expensive"), ("affordable", "expensive"), ("cheaper", "pricier"),
    ("helpful", "useless"), ("friendly", "rude"), ("polite", "rude"), ("kind", "rude"),
    ("calm", "stressful"), ("relaxed", "stressed"), ("happy", "sad"), ("happy", "unhappy"),
    ("satisfied", "dissatisfied"), ("pleased", "disappointed"), ("reliable", "unreliable"),
    ("stable", "unstable"), ("safe", "unsafe"), ("clean", "dirty"), ("quiet", "noisy"),
    ("more", "less"), ("more", "fewer"), ("many", "few"), ("increase", "decrease"),
    ("increased", "decreased"), ("rise", "fall"), ("up", "down"), ("high", "low"),
    ("higher", "lower"), ("always", "never"), ("all", "none"), ("everyone", "nobody"),
    ("everything", "nothing"), ("agree", "disagree"), ("accept", "reject"), ("win", "lose"),
    ("won", "lost"), ("success", "failure"), ("start", "stop"), ("started", "stopped"),
    ("open", "closed"), ("on", "off"), ("in", "out"), ("into", "out"), ("inside", "outside"),
    ("indoors", "outdoors"), ("near", "far"), ("big", "small"), ("large", "small"),
    ("long", "short"), ("full", "empty"), ("early", "late"), ("day", "night"), ("hot", "cold"),
    ("young", "old"), ("same", "different"), ("present", "absent"), ("with", "without"),
    ("strong", "weak"), ("enough", "insufficient"), ("responsive", "unresponsive"),
)  # fmt: skip

_OPPOSITE: dict[str, frozenset[str]] = {}
for _a, _b in _OPPOSITES:
    _OPPOSITE[_a] = _OPPOSITE.get(_a, frozenset()) | {_b}
    _OPPOSITE[_b] = _OPPOSITE.get(_b, frozenset()) | {_a}

_PREFIXES = ("un", "dis", "in", "im", "ir", "il", "non")
# Words that begin like a negating prefix without being one ("interesting" is not "not eresting").
_MIN_STEM = 4


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


# Words too common to say what an answer is about.
_STOP = frozenset(
    {
        "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "of", "to", "in", "on", "at",
        "by", "for", "with", "from", "and", "or", "as", "it", "its", "this", "that", "these", "those", "there",
        "here", "i", "we", "you", "he", "she", "they", "me", "us", "my", "our", "your", "his", "her", "their",
    }
)  # fmt: skip


def overlap(a: str, b: str, ignore: Iterable[str] = ()) -> float:
    """Jaccard overlap of the content words of two texts, in [0, 1], negations left out."""
    skip = _STOP | NEGATIONS | set(ignore)
    x = {t for t in words(a) if t not in skip and not t.endswith("n't")}
    y = {t for t in words(b) if t not in skip and not t.endswith("n't")}
    return len(x & y) / len(x | y) if x or y else 1.0


def negation_count(tokens: Iterable[str]) -> int:
    return sum(1 for t in tokens if t in NEGATIONS or t.endswith("n't"))


def _opposite(a: str, b: str) -> bool:
    if b in _OPPOSITE.get(a, ()):
        return True
    for x, y in ((a, b), (b, a)):
        for p in _PREFIXES:
            if x == p + y and len(y) >= _MIN_STEM:
                return True
    # helpful / helpless, careful / careless
    return any(x.endswith("ful") and y.endswith("less") and x[:-3] == y[:-4] for x, y in ((a, b), (b, a)))


@dataclass(frozen=True)
class Contrast:
    """Two texts on the same topic that disagree in words."""

    kind: str  # "negation" or "opposite"
    words: tuple[str, ...]

    def describe(self) -> str:
        if self.kind == "negation":
            return "one answer negates what the other says (" + ", ".join(f"“{w}”" for w in self.words) + ")"
        return f"“{self.words[0]}” became “{self.words[1]}”"

    def as_data(self) -> dict[str, Any]:
        return {"signal": self.kind, "words": list(self.words)}


def contrast(before: str, after: str) -> Contrast | None:
    """The first lexical disagreement between two texts, or None.

    A negation counts when exactly one side is negated (a double negation or "no ... no" on both
    sides cancels). An opposite counts when a word only in one text has its opposite only in the
    other.
    """
    a, b = words(before), words(after)
    na, nb = negation_count(a), negation_count(b)
    if (na > 0) != (nb > 0):
        neg = [t for t in (a if na else b) if t in NEGATIONS or t.endswith("n't")]
        return Contrast("negation", tuple(dict.fromkeys(neg)))
    only_a = [t for t in dict.fromkeys(a) if t not in b]
    only_b = set(t for t in b if t not in a)
    for x in only_a:
        for y in only_b:
            if _opposite(x, y):
                return Contrast("opposite", (x, y))
    return None


class _Polarity:
    """Sentence polarity in [-1, 1] from VADER's lexicon (MIT), which handles negation."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def __call__(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])


_polarity: _Polarity | None = None


@lru_cache(maxsize=8192)
def polarity(text: str) -> float:
    global _polarity
    if _polarity is None:
        _polarity = _Polarity()
    return _polarity(text)


# Words whose full stop does not end a sentence ("Dr. Lee was kind"); single letters (initials)
# are handled alike.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "mt", "approx"}
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)]*\s+")


def sentences(text: str) -> list[str]:
    """The sentences of a text, in order, each on one line. A line break ends a sentence too."""
    out: list[str] = []
    for line in text.splitlines():
        flat = " ".join(line.split())
        start = 0
        for end in _SENTENCE_END.finditer(flat):
            word = flat[start : end.start()].rsplit(" ", 1)[-1].lower()
            if flat[end.start()] == "." and (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
                continue
            out.append(flat[start : end.end()].strip())
            start = end.end()
        if flat[start:].strip():
            out.append(flat[start:].strip())
    return out


# Where one idea ends and the next begins inside a sentence: semicolons, and the connectives people
# use to contrast a point or add one after a comma ("..., but support was slow").
_CLAUSE_BREAK = re.compile(
    r"\s*;\s*|,?\s+\b(?:but|however|although|though|whereas)\b\s+|,\s+(?:and|plus|also)\s+",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^(?:(?:and|but|also|plus|however|so|then|although|though)\b[\s,]*)+", re.IGNORECASE)
_MIN_CLAUSE_WORDS = 2


def clauses(text: str, limit: int = 12) -> list[str]:
    """The ideas in an answer, in order: at most ``limit`` clauses of at least two words each.

    A short piece ("Fast.") joins its neighbour rather than standing alone.
    """
    pieces = [
        _LEADING.sub("", p.strip(" ,;:-–—")).rstrip(".!")
        for sentence in sentences(text)
        for p in _CLAUSE_BREAK.split(sentence)
    ]
    out: list[str] = []
    for p in pieces:
        if not p:
            continue
        if out and (len(p.split()) < _MIN_CLAUSE_WORDS or len(out[-1].split()) < _MIN_CLAUSE_WORDS):
            out[-1] = f"{out[-1]} {p}"
        else:
            out.append(p)
    if len(out) > limit:
        out = [*out[: limit - 1], " ".join(out[limit - 1 :])]
    return out
