"""Rendering and delivering owner digests.

``memory.digests`` computes what changed; this module renders it for each sink from
``prompts/digest/`` and sends it. Every person's word is escaped for its sink by
``prompts.render``; Slack Block Kit is built as Python objects whose text fields are rendered
with the Slack escaper, then serialised with ``json.dumps`` (never JSON by string templates).

Delivery is an outbox handler (:class:`DigestDelivery`): the scheduler's dispatcher calls it with
a ``kind="digest"`` row planned by ``scheduler.digests``. It builds the digest from the database,
renders it and sends it by e-mail (aiosmtplib), to the owner's linked Slack or Telegram account
through the running channel adapter, or to a file.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.config import Config
from bot.mail import send_email
from memory import audit, digests
from memory.db import transaction
from memory.errors import PermanentFailure
from memory.models import OutboxMessage, Owner
from memory.models_promises import OwnerIdentity
from memory.models_scheduler import OutboxContent
from prompts.split import fit_html
from scheduler.digests import DigestSchedule
from scheduler.dispatch import SkipMessage

log = logging.getLogger(__name__)

Format = Literal["markdown", "html", "slack", "telegram", "email", "text", "csv"]
FORMATS: tuple[Format, ...] = ("markdown", "html", "slack", "telegram", "email", "text", "csv")
VERDICTS = {"yes": "kept", "partly": "partly kept", "no": "not kept", None: ""}
# Slack allows 50 blocks per message and 3,000 characters per section text.
SLACK_MAX_CHANGES = 40
SLACK_SECTION_CHARS = 2900
TELEGRAM_LIMIT = 4096


@dataclass(frozen=True, kw_only=True)
class Rendered:
    format: Format
    subject: str
    # Markdown, HTML, Telegram HTML, plain text, CSV, or Slack's JSON payload.
    body: str
    # The e-mail's HTML part (format "email"; body is then the text alternative).
    html: str | None = None


def _ctx(d: digests.Digest, **extra: Any) -> dict[str, Any]:
    return {"d": d, "verdicts": VERDICTS, **extra}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(d: digests.Digest, markup: prompts.Markup = "plain") -> dict[str, Any]:
    """A Block Kit message, assembled as objects and serialised by ``json.dumps``.

    Slack's mrkdwn can escape ``&``, ``<`` and ``>`` but has no escape for ``*``, ``_``, ``~`` or
    backticks, so a person's ``*bold*`` would still format. Every block that carries people's
    (or the roster's) words is therefore ``plain_text`` with emoji parsing off: Slack shows it
    exactly as typed, mentions and links included. Only the summary line, which holds Rapport's
    own words and counts, is mrkdwn (escaped all the same).
    """

    def plain(template: str, **ctx: Any) -> dict[str, Any]:
        text = _cut(prompts.render(f"digest/{template}", markup, **ctx), SLACK_SECTION_CHARS)
        return {"type": "section", "text": {"type": "plain_text", "text": text, "emoji": False}}

    title = _cut(prompts.render("digest/slack_header", markup, **_ctx(d)), 150)
    summary = prompts.render("digest/slack_summary", "slack_mrkdwn", **_ctx(d))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
    ]
    if d.changes:
        blocks.append({"type": "divider"})
    for c in d.changes[:SLACK_MAX_CHANGES]:
        blocks.append(plain("slack_change", c=c))
    hidden = len(d.changes) - SLACK_MAX_CHANGES
    if hidden > 0:
        more = prompts.render("digest/more", "slack_mrkdwn", n=hidden)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if d.outcomes or d.due:
        blocks += [{"type": "divider"}, plain("slack_promises", **_ctx(d))]
    if d.silent:
        blocks.append(plain("slack_silent", **_ctx(d)))
    for a in d.aggregates:
        blocks.append(plain("slack_aggregate", a=a))
    # The notification text is parsed as mrkdwn: only the (escaped) summary goes there.
    return {"text": summary, "blocks": blocks}


def telegram_text(d: digests.Digest) -> str:
    """One Telegram message under its 4,096-character limit (fewer people, then "and N more")."""
    shown = len(d.changes)
    while True:
        trimmed = replace(d, changes=d.changes[:shown])
        text = prompts.render("digest/telegram", "telegram_html", **_ctx(trimmed, more_changes=len(d.changes) - shown))
        if len(text) <= TELEGRAM_LIMIT or shown == 0:
            return fit_html(text, lambda n: prompts.render("digest/more_lines", "telegram_html", n=n), TELEGRAM_LIMIT)
        shown -= 1


CSV_COLUMNS = ("person", "name", "program", "old_rating", "new_rating", "delta", "trajectory", "old_reason",
               "new_reason", "followup_answer", "themes_appeared", "themes_disappeared")  # fmt: skip


def csv_text(d: digests.Digest) -> str:
    """One row per changed person.

    Text cells are neutralised against spreadsheet formulas; numbers stay numbers (a delta of -4
    must sort as -4, not as the text "'-4"). Lines end in "\\n": every spreadsheet reads it, and a
    "\\r" is a control character that terminals and pipes show as garbage.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in d.changes:
        row = [c.person, c.name, c.program, c.old_rating, c.new_rating, c.delta, c.trajectory, c.old_reason,
               c.new_reason, c.followup_answer, "; ".join(c.themes_appeared),
               "; ".join(c.themes_disappeared)]  # fmt: skip
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return prompts.neutralise_formula(str(value))


def render_digest(d: digests.Digest, fmt: Format) -> Rendered:
    subject = prompts.render("digest/subject", "plain", d=d)
    if fmt == "markdown":
        return Rendered(format=fmt, subject=subject, body=prompts.render("digest/markdown", "markdown", **_ctx(d)))
    if fmt == "html":
        return Rendered(format=fmt, subject=subject, body=prompts.render("digest/html", "html", **_ctx(d)))
    if fmt == "text":
        return Rendered(format=fmt, subject=subject, body=prompts.render("digest/text", "plain", **_ctx(d)))
    if fmt == "email":
        return Rendered(
            format=fmt,
            subject=subject,
            body=prompts.render("digest/text", "plain", **_ctx(d)),
            html=prompts.render("digest/html", "html", **_ctx(d)),
        )
    if fmt == "telegram":
        return Rendered(format=fmt, subject=subject, body=telegram_text(d))
    if fmt == "slack":
        return Rendered(format=fmt, subject=subject, body=json.dumps(slack_payload(d), ensure_ascii=False, indent=2))
    if fmt == "csv":
        return Rendered(format=fmt, subject=subject, body=csv_text(d))
    raise ValueError(f"unknown digest format {fmt!r}")


def digest_schedule(config: Config) -> DigestSchedule:
    """``config.digests`` as the plain values ``scheduler.digests.plan_digests`` takes."""
    c = config.digests
    owners = {x.owner: (x.cron, x.channel or c.channel) for x in c.schedules if x.owner}
    programs = {x.program: (x.cron, x.channel or c.channel) for x in c.schedules if x.program}
    return DigestSchedule(
        cron=c.cron, channel=c.channel, timezone=c.timezone, on_wave_close=c.on_wave_close, owners=owners,
        programs=programs,
    )  # fmt: skip


def wants_empty(config: Config, owner: str) -> bool:
    """Whether this owner gets "No changes." digests: their own schedule's choice, else the default."""
    for schedule in config.digests.schedules:
        if schedule.owner == owner and schedule.send_empty is not None:
            return schedule.send_empty
    return config.digests.send_empty


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9@._+-]+")


def digest_file_stem(owner: str, until: dt.datetime, timezone: str = "UTC") -> str:
    """``digest-lead@example.com-2026-11-30-0800``: whose digest and when, in the digests' zone.

    The owner key comes from the roster, so anything that could leave the folder or confuse a
    shell ("/", spaces, "..") becomes "-".
    """
    local = until.astimezone(ZoneInfo(timezone))
    safe = _UNSAFE_IN_NAME.sub("-", owner).strip(".-") or "owner"
    return f"digest-{safe}-{local.strftime('%Y-%m-%d-%H%M')}"


def email_message(rendered: Rendered, *, sender: str, to: str) -> EmailMessage:
    """A multipart/alternative e-mail: the text part first, the HTML part preferred."""
    assert rendered.format == "email"
    msg = EmailMessage()
    # Header values cannot carry line breaks (header injection); the subject is one line anyway.
    msg["Subject"] = " ".join(rendered.subject.split())
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "rapport")
    msg.set_content(rendered.body)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


class DigestDelivery:
    """The outbox handler for ``kind="digest"`` rows.

    Plug it into the dispatcher: ``handlers["digest"] = DigestDelivery(sessions=..., config=...)``.
    Returns an external reference (Message-ID, file path, channel message id).
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        config: Config,
        channels: Mapping[str, Any] | None = None,
        encode: Callable[[Sequence[str]], NDArray[np.float32]] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.channels = dict(channels or {})
        self.encode = encode
        self.environ = environ

    def build(self, owner: str, since: dt.datetime, until: dt.datetime) -> tuple[digests.Digest, Owner, list[Any]]:
        with transaction(self.sessions) as s:
            d = digests.build_digest(
                s, owner=owner, since=since, until=until, threshold=self.config.digests.rating_threshold,
                quote_chars=self.config.digests.quote_chars, encode=self.encode,
                work_mem=self.config.digests.work_mem,
            )  # fmt: skip
            row = s.scalar(select(Owner).where(Owner.key == owner))
            assert row is not None
            shown = audit.digest_people(d)  # the access is recorded with the read
            audit.record_digest(s, actor="system", now=dt.datetime.now(dt.UTC), owner=owner, person_keys=shown,
                                detail={"owner_id": row.id})  # fmt: skip
            links = list(s.scalars(select(OwnerIdentity).where(OwnerIdentity.owner_id == row.id)))
            s.expunge_all()
            return d, row, links

    async def __call__(self, message: OutboxMessage) -> str | None:
        # The outbox carries the message: a retry sends what the first attempt rendered.
        content = await asyncio.to_thread(self._stored, message.id, message.channel or self.config.digests.channel)
        if content is None:
            content = await self._prepare(message)
        return await self._send(content)

    def _stored(self, outbox_id: int, channel: str) -> dict[str, Any] | None:
        """The rendered digest, unless the row was moved to another channel since."""
        with transaction(self.sessions) as s:
            row = s.get(OutboxContent, outbox_id)
            if row is None or row.channel != channel:
                return None
            return dict(row.body)

    def _store(self, outbox_id: int, channel: str, body: dict[str, Any]) -> None:
        with transaction(self.sessions) as s:
            if s.get(OutboxContent, outbox_id) is None:
                s.add(
                    OutboxContent(outbox_id=outbox_id, channel=channel, body=body, prepared_at=dt.datetime.now(dt.UTC))
                )

    async def _prepare(self, message: OutboxMessage) -> dict[str, Any]:
        payload = message.payload or {}
        try:
            owner = str(payload["owner"])
            since = dt.datetime.fromisoformat(payload["since"])
            until = dt.datetime.fromisoformat(payload["until"])
        except (KeyError, ValueError, TypeError):
            raise PermanentFailure("digest row without owner/since/until") from None
        channel = message.channel or self.config.digests.channel
        d, owner_row, links = await asyncio.to_thread(self.build, owner, since, until)
        if d.empty and not wants_empty(self.config, owner):
            raise SkipMessage("nothing to report (digests.send_empty is off)")
        log.info("digest built", extra={"outbox_id": message.id, "changes": len(d.changes), "channel": channel})
        body: dict[str, Any]
        if channel == "email":
            if not owner_row.email:
                raise PermanentFailure(f"owner {owner_row.id} has no e-mail address")
            rendered = render_digest(d, "email")
            domain = self.config.email.from_address.rpartition("@")[2] or "rapport"
            body = {"subject": rendered.subject, "text": rendered.body, "html": rendered.html, "to": owner_row.email,
                    "message_id": make_msgid(domain=domain)}  # fmt: skip
        elif channel == "file":
            stem = digest_file_stem(d.owner, d.until, self.config.digests.timezone)
            body = {"files": {f"{stem}.md": render_digest(d, "markdown").body + "\n",
                              f"{stem}.html": render_digest(d, "html").body + "\n"}}  # fmt: skip
        elif channel in ("slack", "telegram"):
            if channel not in self.channels:
                raise PermanentFailure(f"digest channel {channel} is not running")
            body = self._chat_body(channel, d, links)
        else:
            raise PermanentFailure(f"unknown digest channel {channel!r}")
        body["channel"] = channel
        await asyncio.to_thread(self._store, message.id, channel, body)
        return body

    async def _send(self, body: dict[str, Any]) -> str | None:
        channel = body["channel"]
        if channel == "email":
            rendered = Rendered(format="email", subject=body["subject"], body=body["text"], html=body["html"])
            email = email_message(rendered, sender=self.config.email.from_address, to=body["to"])
            email.replace_header("Message-ID", body["message_id"])
            return await send_email(email, self.config.email, self.environ)
        if channel == "file":
            return await asyncio.to_thread(self.write_files, body["files"])
        adapter = self.channels.get(channel)
        if adapter is None:
            raise PermanentFailure(f"digest channel {channel} is not running")
        from bot.channels.base import Address
        from bot.engine.ports import Outbound

        m = body["message"]
        blocks = tuple(m["blocks"]) if m.get("blocks") is not None else None
        sent = await adapter.send(Address(**body["address"]), [Outbound(text=m["text"], blocks=blocks)])
        return getattr(sent, "external_ref", None)

    def write_files(self, files: Mapping[str, str]) -> str:
        folder = Path(self.config.digests.directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return str(folder / next(iter(files)))

    def _chat_body(self, channel: str, d: digests.Digest, links: Sequence[OwnerIdentity]) -> dict[str, Any]:
        link = next((i for i in links if i.channel == channel), None)
        if link is None:
            raise PermanentFailure(f"the owner has no linked {channel} account (rapport owners link)")
        if channel == "telegram":
            message: dict[str, Any] = {"text": telegram_text(d), "blocks": None}
        else:
            # Slack posts the Block Kit digest (people's words in plain_text blocks, shown as
            # typed); the text, escaped for mrkdwn, is the notification and fallback.
            fallback = slack_payload(d, markup="slack_mrkdwn")
            text = "\n\n".join(b["text"]["text"] for b in fallback["blocks"] if "text" in b)
            message = {"text": text, "blocks": list(slack_payload(d)["blocks"])}
        address = {"channel": channel, "external_id": link.external_id, "workspace": link.workspace}
        return {"address": address, "message": message}
