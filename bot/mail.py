"""E-mail over SMTP: the one place Rapport talks to a mail server (digests, web-link invitations).

``aiosmtplib`` is imported on first send, so commands that never mail never load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage

from bot.config import EmailConfig, resolve_secret
from memory.errors import PermanentFailure, RetryLater


async def send_email(message: EmailMessage, config: EmailConfig, environ: Mapping[str, str] | None = None) -> str:
    """Send over SMTP; temporary failures raise RetryLater, refusals PermanentFailure."""
    import aiosmtplib

    if not config.host:
        raise PermanentFailure("e-mail is not configured (email.host is unset)")
    password = resolve_secret(config.password, dict(environ) if environ is not None else None)
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            start_tls=config.starttls and not config.use_tls,
            use_tls=config.use_tls,
            username=config.username,
            password=password if config.username else None,
            timeout=config.timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(f"the SMTP server refused the recipient ({len(exc.recipients)})") from None
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"SMTP error {exc.code}") from None
        raise RetryLater(f"SMTP error {exc.code}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise RetryLater(f"SMTP unavailable: {type(exc).__name__}") from None
    return str(message["Message-ID"])
