"""Encryption at rest, in detail: the stored form, odd values, bad keys, and ``rapport keys``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli_app
from bot.cli import main
from memory import crypto, rekey
from memory.db import transaction
from memory.errors import EncryptionKeyInvalid
from memory.models import Answer, Person, Promise
from memory.promises import add_promise
from tests.conftest import ROOT
from tests.helpers import T0, seed
from tests.history_builder import History
from tests.privacy.world import ANN_MARK, build_world

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    def use(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(crypto.ENV, raising=False)
        else:
            monkeypatch.setenv(crypto.ENV, value)
        crypto.load()

    yield use
    crypto.reset()


def stored(app: App, column: object, where: object) -> list[object]:
    with transaction(app.sessions) as s:
        return list(s.scalars(select(rekey.raw_column(column)).where(where)))  # type: ignore[arg-type]


def promise(app: App, text: str) -> str:
    """Store ``text`` as a promise and read it back through the model."""
    with transaction(app.sessions) as s:
        person = s.scalars(select(Person).where(Person.key == "ann")).one()
        pid = add_promise(s, person=person, owner=None, text=text, now=T0).id
    with transaction(app.sessions) as s:
        return s.get_one(Promise, pid).text


def test_a_plain_text_that_looks_encrypted_is_kept_as_typed(
    make_app: Callable[..., App], env: Callable[[str | None], None]
) -> None:
    env(None)
    app = make_app()
    seed(app)
    for text in (f"{crypto.MARK}gAAAAAnot-a-token", f"{crypto.ESCAPE}twice", "plain words"):
        assert promise(app, text) == text
    raw = stored(app, Promise.__table__.c.text, Promise.id > 0)
    escaped = [f"{crypto.ESCAPE}{crypto.MARK}gAAAAAnot-a-token", f"{crypto.ESCAPE}{crypto.ESCAPE}twice"]
    assert raw == [*escaped, "plain words"]
    env(KEY_A)
    assert promise(app, f"{crypto.MARK}typed by someone") == f"{crypto.MARK}typed by someone"


def test_nothing_and_empty_stay_visible_to_sql(make_app: Callable[..., App], env: Callable[[str | None], None]) -> None:
    env(KEY_A)
    app = make_app()
    seed(app)
    with transaction(app.sessions) as s:
        ann = s.scalars(select(Person).where(Person.key == "ann")).one()
        History(s).checkin(ann, "customers", T0, rating=7, text="")
    with transaction(app.sessions) as s:
        assert s.scalars(select(Answer.text).where(Answer.kind == "text")).all() == [""]
        assert s.scalars(select(Answer.id).where(Answer.kind == "text", Answer.text != "")).all() == []


def test_a_malformed_key_is_named_by_position_never_shown(env: Callable[[str | None], None]) -> None:
    with pytest.raises(EncryptionKeyInvalid) as refused:
        env(f"{KEY_A}, not-a-key-secret-ish")
    message = str(refused.value)
    assert message.startswith(f"{crypto.ENV}: key 2 of 2 is not a Fernet key")
    assert "not-a-key-secret-ish" not in message
    assert KEY_A not in message


def cli(config: Path, db_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(cli_app, ["--config", str(config), "--database", db_url, *args])


def write_config(tmp_path: Path, encryption: str = "off") -> Path:
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "  encryption: off\n" in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("  encryption: off\n", f"  encryption: {encryption}\n"), encoding="utf-8")
    return path


def test_keys_generate_status_and_rotate(
    make_app: Callable[..., App], env: Callable[[str | None], None], db_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    made = cli(config, db_url, "keys", "generate")
    assert made.exit_code == 0, made.output
    Fernet(made.output.strip().encode())  # a usable key, alone on its line

    env(None)
    build_world(make_app(), tmp_path / "digests")
    env(KEY_A)
    before = json.loads(cli(config, db_url, "keys", "status", "--json").output)
    assert before["keys"] == 1
    assert before["columns"]["answers.text"]["plain"] == 4
    assert set(before["columns"]) == {
        "checkins.state", "answers.text", "answers.embedding", "followups.question", "followups.reasons",
        "followups.prompt", "followups.answer_text", "promises.text", "outcomes.comment", "outbox_contents.body",
        "wave_views.view",
    }  # fmt: skip
    rotated = cli(config, db_url, "keys", "rotate", "--batch", "3")
    assert rotated.exit_code == 0, rotated.output
    plain = sum(c["plain"] for c in before["columns"].values())
    assert rotated.output.startswith(f"rotated: {plain} value(s) rewritten with the newest key")
    shown = cli(config, db_url, "keys", "status")
    assert shown.exit_code == 0
    total = shown.output.strip().splitlines()[-1].split()
    assert total == ["total", "0", str(plain), "0", "0"]
    assert KEY_A not in shown.output + rotated.output

    env(KEY_B)  # the key that wrote everything is gone: status says so, rotate refuses in one line
    lost = json.loads(cli(config, db_url, "keys", "status", "--json").output)
    assert lost["columns"]["answers.text"]["unreadable"] == 4
    refused = cli(config, db_url, "keys", "rotate")
    assert refused.exit_code == 1
    assert "value(s) cannot be read with any key" in refused.output


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["rapport", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), capsys.readouterr().err


def test_the_command_line_refuses_in_one_line(
    make_app: Callable[..., App],
    env: Callable[[str | None], None],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env(KEY_A)
    build_world(make_app(), tmp_path / "digests")
    base = ("--database", db_url, "--config")

    env(None)  # encryption on, no key
    code, err = run_main(monkeypatch, capsys, *base, str(write_config(tmp_path, "on")), "status")
    assert code == 1
    assert err == (
        "error: privacy.encryption is on but RAPPORT_ENCRYPTION_KEYS is not set; "
        "make a key with `rapport keys generate`\n"
    )
    code, err = run_main(monkeypatch, capsys, *base, str(write_config(tmp_path)), "status")
    assert code == 1
    assert err == "error: words in the database are encrypted but RAPPORT_ENCRYPTION_KEYS is not set\n"

    env(KEY_B)  # a wrong key
    code, err = run_main(monkeypatch, capsys, *base, str(write_config(tmp_path)), "export", "ann")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("error: an encrypted value cannot be read with the keys in RAPPORT_ENCRYPTION_KEYS")
    assert ANN_MARK not in err
    assert KEY_B not in err
