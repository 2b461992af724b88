"""Configuration: every problem reported at once with its YAML path, secrets only from the env."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import BaseModel

from bot.config import Config, load_config, parse_config, resolve_secret
from bot.errors import ConfigError
from tests.conftest import ROOT


def base() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_is_valid_and_has_the_default_programs() -> None:
    config = load_config(ROOT / "config.yaml")
    customers, employees = config.programs["customers"], config.programs["employees"]
    assert [(q.key, q.kind) for q in customers.questions] == [("recommend", "rating"), ("reason", "text")]
    assert customers.questions[0].text == "How likely are you to recommend us to a colleague?"
    assert customers.questions[1].text == "What is the main reason for your score?"
    assert customers.privacy == "attributed"
    assert customers.cadence.every == "6 months"
    assert [(q.key, q.kind) for q in employees.questions] == [("enps", "rating"), ("reason", "text")]
    assert (employees.privacy, employees.k) == ("anonymous", 5)


def test_every_problem_is_reported_with_its_path() -> None:
    data = base()
    data["programs"]["customers"]["questions"][0]["kind"] = "stars"
    data["programs"]["customers"]["questions"][0]["max"] = "ten"
    data["changes"]["threshold"] = 2
    data["databse"] = {}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    paths = [p for p, _ in err.value.problems]
    assert "programs.customers.questions[0].kind" in paths
    assert "programs.customers.questions[0].max" in paths
    assert "changes.threshold" in paths
    assert "databse" in paths


def test_secrets_must_come_from_the_environment() -> None:
    data = base()
    data["channels"]["slack"]["bot_token"] = "xoxb-123-literal"
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.problems[0][0] == "channels.slack.bot_token"
    assert "environment" in err.value.problems[0][1]


def test_secret_references_resolve_from_the_environment() -> None:
    assert resolve_secret("${X_TOKEN}", {"X_TOKEN": "abc"}) == "abc"
    assert resolve_secret("${X_TOKEN}", {}) is None


def test_semantic_checks() -> None:
    data = base()
    program = data["programs"]["customers"]
    program["questions"].append({"key": "reason", "kind": "text", "text": "again"})
    program["cadence"] = {"every": "6 months", "cron": "0 9 * * *"}
    program["window"] = {"start": "18:00", "end": "09:00"}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    text = str(err.value.problems)
    assert "repeated: reason" in text
    assert "exactly one of 'every' or 'cron'" in text
    assert "must be before end" in text


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_check_config_exits_2_without_traceback(tmp_path: Path) -> None:
    data = base()
    data["programs"]["employees"]["k"] = 1
    data["web"]["port"] = 99999
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = run_cli("--config", str(bad), "check-config")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "programs.employees.k" in result.stderr
    assert "web.port" in result.stderr


def test_broken_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("programs:\n  customers: [unclosed\n")
    result = run_cli("--config", str(bad), "check-config")
    assert result.returncode == 2
    assert re.search(r"line \d+", result.stderr)
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), "check-config")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _fields(model: type[BaseModel]) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        out.append(name)
        for sub in _models(field.annotation):
            out += _fields(sub)
    return out


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    # A setting counts as documented when its name appears in code: `changes.threshold`, `k: 5`.
    fenced = re.findall(r"```.*?```", docs, re.S)
    prose = re.sub(r"```.*?```", "", docs, flags=re.S)
    documented = set(re.findall(r"\w+", " ".join(re.findall(r"`([^`\n]+)`", prose))))
    documented |= {m for block in fenced for m in re.findall(r"^\s*(\w+):", block, re.M)}
    missing = sorted({f for f in _fields(Config) if f not in documented})
    assert not missing, f"settings missing from README.md / docs/: {missing}"


def test_digest_schedules_name_configured_programs() -> None:
    data = base()
    data.setdefault("digests", {})["schedules"] = [{"program": "customres", "cron": "0 8 * * mon"}]
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert "digests.schedules[0].program: 'customres'" in str(err.value.problems)
