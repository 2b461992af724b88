"""The web channel's one network seam: the invitation by e-mail, with the check-in link in it.

``smtp`` sends through the ``email:`` settings with aiosmtplib (temporary failures are retried
by the outbox, refusals are permanent); ``file`` writes one ``.eml`` file per message under
``channels.web.directory`` (the default while no SMTP server is configured, like digests).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from bot.config import Config, EmailConfig
from bot.mail import send_email

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def delivery_mode(config: Config) -> str:
    mode = config.channels.web.delivery
    if mode == "auto":
        return "smtp" if config.email.host else "file"
    return mode


def compose(*, config: Config, to: str, name: str, program_title: str, body: str, link: str) -> EmailMessage:
    """The invitation: the engine's rendered message (plain text) and the link to answer at."""
    sender = config.email.from_address
    msg = EmailMessage()
    msg["Subject"] = f"Your {program_title} check-in"
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "rapport")
    hello = f"Hello {name},\n\n" if name else ""
    msg.set_content(f"{hello}{body}\n\nAnswer here (a few taps, no account needed):\n{link}\n")
    return msg


async def send_smtp(message: EmailMessage, config: EmailConfig) -> str:
    """The invitation over SMTP, through Rapport's one mail seam (:mod:`bot.mail`)."""
    return await send_email(message, config)


async def write_file(message: EmailMessage, directory: str, person_key: str, now: dt.datetime) -> str:
    folder = Path(directory)
    name = f"{now.strftime('%Y%m%dT%H%M%S')}-{_SAFE.sub('_', person_key)[:60]}-{make_msgid()[1:9]}.eml"

    def write() -> str:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / _SAFE.sub("_", name)
        path.write_bytes(bytes(message))
        return str(path)

    return await asyncio.to_thread(write)
