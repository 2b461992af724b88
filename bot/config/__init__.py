"""Rapport's configuration: ``config.yaml`` validated by pydantic.

Every model forbids unknown keys, so a typo is an error, not a silent default. Secrets are never
written in the file: a secret field holds a reference such as ``${SLACK_BOT_TOKEN}`` and is read
from the environment when it is used (``resolve_secret``). Loading reports *every* problem at once,
each with its YAML path, by raising :class:`ConfigError`; only the CLI turns that into exit code 2.

The settings models live by area, and every name is imported from here (``from bot.config import
Config, ProgramConfig``): ``base`` (strict models, secrets), ``service`` (database, embeddings,
change detection, conversation, logs, privacy), ``programs``, ``channels`` (and the web server),
``schedules`` (scheduler, digests, e-mail); ``rules`` holds the operator-facing parts of loading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from bot.config.base import ENV_IN_STRING, ENV_REF, SecretRef, Strict, expand_env, resolve_secret, secret_name
from bot.config.channels import (
    ChannelsConfig,
    DashboardConfig,
    SlackConfig,
    TelegramConfig,
    WebChannelConfig,
    WebConfig,
)
from bot.config.programs import (
    DEFAULT_CHANNELS,
    WORKDAYS,
    Cadence,
    ChannelName,
    ProgramConfig,
    Question,
    SendWindow,
    Weekday,
)
from bot.config.rules import in_our_words, relative_to
from bot.config.schedules import (
    CronExpr,
    DigestChannel,
    DigestSchedule,
    DigestsConfig,
    EmailConfig,
    SchedulerConfig,
)
from bot.config.service import (
    ChangesConfig,
    ConversationConfig,
    DatabaseConfig,
    EmbeddingsConfig,
    LoggingConfig,
    PrivacyConfig,
    RetentionConfig,
)
from bot.errors import ConfigError

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_CONFIG_PATH",
    "ENV_IN_STRING",
    "ENV_REF",
    "WORKDAYS",
    "Cadence",
    "ChangesConfig",
    "ChannelName",
    "ChannelsConfig",
    "Config",
    "ConversationConfig",
    "CronExpr",
    "DashboardConfig",
    "DatabaseConfig",
    "DigestChannel",
    "DigestSchedule",
    "DigestsConfig",
    "EmailConfig",
    "EmbeddingsConfig",
    "LoggingConfig",
    "PrivacyConfig",
    "ProgramConfig",
    "Question",
    "RetentionConfig",
    "SchedulerConfig",
    "SecretRef",
    "SendWindow",
    "SlackConfig",
    "TelegramConfig",
    "WebChannelConfig",
    "WebConfig",
    "Weekday",
    "expand_env",
    "load_config",
    "parse_config",
    "resolve_secret",
    "secret_name",
]


class Config(Strict):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    changes: ChangesConfig = Field(default_factory=ChangesConfig)
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)
    programs: dict[str, ProgramConfig] = Field(min_length=1)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    digests: DigestsConfig = Field(default_factory=DigestsConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @field_validator("programs")
    @classmethod
    def _program_names(cls, programs: dict[str, ProgramConfig]) -> dict[str, ProgramConfig]:
        bad = [name for name in programs if not re.match(r"^[a-z][a-z0-9_-]*$", name)]
        if bad:
            raise ValueError(f"program names are lower-case words; not: {', '.join(bad)}")
        return programs

    @model_validator(mode="after")
    def _digest_programs(self) -> Config:
        unknown = [
            (i, sched.program)
            for i, sched in enumerate(self.digests.schedules)
            if sched.program is not None and sched.program not in self.programs
        ]
        if unknown:
            where = ", ".join(f"digests.schedules[{i}].program: {name!r}" for i, name in unknown)
            raise ValueError(f"no such program ({where}); configured: {', '.join(self.programs)}")
        return self

    def program(self, name: str) -> ProgramConfig:
        try:
            return self.programs[name]
        except KeyError:
            raise ConfigError([(f"programs.{name}", "no such program")]) from None

    @property
    def database_url(self) -> str:
        return expand_env(self.database.url)


DEFAULT_CONFIG_PATH = Path("config.yaml")


def _yaml_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_config(data: Any, *, source: str = "config.yaml") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("(top level)", "expected a mapping of settings")], source=source)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # Drop pydantic's internal tags ("function-after[...]") from the path.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
            problems.append((_yaml_path(loc), in_our_words(err, loc)))
        raise ConfigError(problems, source=source) from None


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError listing every problem."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not path.exists():
        raise ConfigError([("(file)", f"{path} does not exist")], source=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([(where, f"not valid YAML: {problem}")], source=str(path)) from None
    return relative_to(parse_config(data, source=str(path)), path.resolve().parent)
