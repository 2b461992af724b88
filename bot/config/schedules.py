"""When things happen: the scheduler's tick and outbox, digests and their schedules, and the
SMTP server e-mailed digests and invitations go through."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from bot.config.base import SecretRef, Strict
from bot.config.rules import canonical_zone


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
