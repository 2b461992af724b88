"""Roster and history imports: ``rapport people import`` and ``rapport answers import``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli._app import app, build_app, fail, utcnow

people_app = typer.Typer(help="The roster: who Rapport talks to.", no_args_is_help=True)
answers_app = typer.Typer(help="Answers from before Rapport, so memory starts with history.", no_args_is_help=True)
app.add_typer(people_app, name="people")
app.add_typer(answers_app, name="answers")

DATA = Path(__file__).resolve().parent.parent / "data"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        fail(f"{path} does not exist")
    except IsADirectoryError:
        fail(f"{path} is a folder, not a CSV file")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    except OSError as exc:
        fail(f"{path} cannot be read: {exc.strerror or exc}")


def _report(report: Any, noun: str) -> None:
    typer.echo(
        f"{noun}: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.problems)} rejected"
    )
    for problem in report.problems:
        typer.echo(f"  line {problem.line}: {problem.message}", err=True)


def import_people_text(application: Any, text: str, now: dt.datetime) -> Any:
    from memory.importing import import_people

    return import_people(application.sessions, text, known_programs=application.config.programs, now=now)


def import_answers_text(application: Any, text: str, now: dt.datetime, progress: Any = None) -> Any:
    from memory.importing import import_answers

    questions = {
        name: {q.key: (q.kind, q.min, q.max) for q in program.questions}
        for name, program in application.config.programs.items()
    }
    return import_answers(
        application.sessions, text, questions=questions, embedder=application.embedder, now=now, progress=progress
    )


@people_app.command("import")
def people_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: id,name,email,timezone,owner,programs[,slack_user,out_of_office]")],
) -> None:
    """Import or update people. Bad rows are reported with line numbers; good rows still go in,
    and the exit code is 1 when any row was rejected."""
    from memory.errors import ImportProblem

    text = _read(file)
    application = build_app(ctx)
    try:
        report = import_people_text(application, text, utcnow())
    except ImportProblem as exc:
        fail(f"{file}: line {exc.line}: {exc.message}", 2)
    finally:
        application.close()
    _report(report, "people")
    if report.problems:  # some rows were rejected (the good ones went in): exit 1, as documented
        raise typer.Exit(1)


@answers_app.command("import")
def answers_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: person,program,question,answered_at,rating,text")],
) -> None:
    """Import past answers; free text is embedded in length-sorted batches (on a terminal, a
    progress bar shows the time left). Bad rows are reported; the exit code is 1 when any row was
    rejected."""
    from bot.cli._progress import progress_bar
    from memory.errors import ImportProblem

    text = _read(file)
    application = build_app(ctx)
    try:
        with progress_bar("importing answers") as bar:
            task = bar.add_task("answers", total=None)
            report = import_answers_text(
                application, text, utcnow(), progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    except ImportProblem as exc:
        fail(f"{file}: line {exc.line}: {exc.message}", 2)
    finally:
        application.close()
    _report(report, "answers")
    if report.problems:  # some rows were rejected (the good ones went in): exit 1, as documented
        raise typer.Exit(1)


def seed_demo(application: Any, now: dt.datetime) -> None:
    """The demo roster and an earlier wave six months ago, dated relative to now."""
    import_people_text(application, (DATA / "demo_people.csv").read_text(encoding="utf-8"), now)
    then = (now - dt.timedelta(days=182)).replace(microsecond=0).isoformat()
    answers = (DATA / "demo_answers.csv").read_text(encoding="utf-8").replace("{{six_months_ago}}", then)
    report = import_answers_text(application, answers, now)
    assert not report.problems, report.problems
