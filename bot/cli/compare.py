"""``rapport compare``: see what the memory sees when it compares an answer with an earlier one.

    rapport compare "The onboarding was fast" "Getting started took weeks"
    rapport compare --pairs pairs.tsv > assessments.jsonl

A pairs file is tab-separated, one pair per line, with a header naming at least ``previous`` and
``current`` (and optionally ``previous_rating`` and ``current_rating``; other columns are ignored).
Fields are taken as they are: no quoting, so a text cannot hold a tab or a line break.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli._app import _globals, app, fail, load
from memory.errors import RapportError

if TYPE_CHECKING:
    from memory.changes import Assessment, ChangeDetector

REQUIRED = ("previous", "current")
RATINGS = ("previous_rating", "current_rating")


@dataclass(frozen=True)
class Pair:
    line: int
    previous: str
    current: str
    previous_rating: int | None
    current_rating: int | None


class PairsFileError(RapportError):
    """A pairs file that cannot be read; the message names the line."""


def _rating(value: str, column: str, line: int) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise PairsFileError(f"line {line}: {column} {value!r} is not a whole number") from None


def read_pairs(path: Path) -> list[Pair]:
    """Every pair of the file, in order, or a :class:`PairsFileError` naming the first bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PairsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PairsFileError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    rows: Iterator[list[str]] = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(rows, None)
    if header is None:
        raise PairsFileError("line 1: the file is empty; expected a header with previous and current")
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise PairsFileError(
            f"line 1: the header lacks {' and '.join(missing)} (found: {', '.join(names) or 'nothing'}); "
            "columns are separated by tabs"
        )
    where = {c: names.index(c) for c in (*REQUIRED, *RATINGS) if c in names}
    needed = max(where[c] for c in REQUIRED) + 1
    pairs: list[Pair] = []
    for line, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) < needed:
            raise PairsFileError(f"line {line}: {len(row)} column(s), expected at least {needed} (tab-separated)")
        ratings = {c: _rating(row[where[c]], c, line) if c in where and where[c] < len(row) else None for c in RATINGS}
        pairs.append(
            Pair(
                line=line,
                previous=row[where["previous"]],
                current=row[where["current"]],
                previous_rating=ratings["previous_rating"],
                current_rating=ratings["current_rating"],
            )
        )
    return pairs


def _detector(ctx: typer.Context) -> ChangeDetector:
    """The detector as the service builds it: from config.yaml when there is one, else the defaults."""
    from bot.app import embedder_from, make_detector, make_embedder
    from bot.config import EmbeddingsConfig
    from memory.changes import ChangeDetector

    if not _globals(ctx).config_path.exists():
        return ChangeDetector(embedder=embedder_from(EmbeddingsConfig()))

    config = load(ctx)
    return make_detector(config, make_embedder(config))


def _as_row(assessment: Assessment) -> dict[str, Any]:
    row: dict[str, Any] = {
        "changed": assessment.changed,
        "score": round(assessment.score, 6),
        "reasons": [r.text for r in assessment.reasons],
    }
    if assessment.stance is not None:
        row["stance_change"] = assessment.stance["change"]
    return row


def _stance_line(stance: dict[str, Any]) -> str:
    """What the learned stance head read in each answer, e.g. "earlier: praise 91%; now: criticism 85%"."""

    def read(p: dict[str, float]) -> str:
        label = max(p, key=lambda k: p[k])
        return f"{label} {p[label]:.0%}"

    earlier, now = read(stance["previous"]), read(stance["current"])
    return f"stance read: earlier {earlier}; now {now} (change {stance['change']:.2f})"


@app.command()
def compare(
    ctx: typer.Context,
    previous: Annotated[str | None, typer.Argument(help="The earlier answer.", show_default=False)] = None,
    current: Annotated[str | None, typer.Argument(help="The new answer.", show_default=False)] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="A tab-separated file with a header naming previous and current (and optionally "
            "previous_rating, current_rating). Writes one JSON object per row to stdout.",
            show_default=False,
        ),
    ] = None,
    previous_rating: Annotated[int | None, typer.Option(help="The earlier rating, if any.")] = None,
    current_rating: Annotated[int | None, typer.Option(help="The new rating, if any.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the assessment as JSON.")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Pairs embedded per batch with --pairs.")] = 1000,
) -> None:
    """Compare two answers (or a file of pairs) the way Rapport's memory does: decision, score, reasons."""
    if pairs is not None:
        if previous is not None or current is not None:
            fail("give either two texts or --pairs FILE, not both", 2)
        _compare_pairs(ctx, pairs, batch)
        return
    if previous is None or current is None:
        fail('give two texts (rapport compare "earlier answer" "new answer") or --pairs FILE', 2)
    detector = _detector(ctx)
    [assessment] = detector.assess_pairs([(previous, current)], [(previous_rating, current_rating)])
    if as_json:
        out = {**_as_row(assessment), "reasons": [r.as_dict() for r in assessment.reasons]}
        out["similarity"] = assessment.similarity
        out["stance"] = assessment.stance
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    s = detector.settings
    verdict = "changed" if assessment.changed else "not changed"
    typer.echo(f"{verdict}: score {assessment.score:.2f} (threshold {s.threshold:.2f})")
    if assessment.similarity is not None:
        typer.echo(f"cosine similarity: {assessment.similarity:.2f}")
    if assessment.stance is not None:
        typer.echo(_stance_line(assessment.stance))
    if not assessment.reasons:
        typer.echo("no signal fired")
    for reason in assessment.reasons:
        typer.echo(f"- {reason.kind}: {reason.text} (strength {reason.strength:.2f})")


def _compare_pairs(ctx: typer.Context, path: Path, batch: int) -> None:
    try:
        rows = read_pairs(path)
    except PairsFileError as exc:
        fail(f"{path}: {exc}", 2)
    detector = _detector(ctx)
    from bot.cli._progress import progress_bar

    progress = progress_bar("comparing")
    out = sys.stdout
    with progress:
        task = progress.add_task("pairs", total=len(rows))
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            found = detector.assess_pairs(
                [(p.previous, p.current) for p in chunk], [(p.previous_rating, p.current_rating) for p in chunk]
            )
            out.write("".join(json.dumps(_as_row(a), ensure_ascii=False) + "\n" for a in found))
            out.flush()
            progress.advance(task, len(chunk))
