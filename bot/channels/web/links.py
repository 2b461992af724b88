"""Check-in links: ``<public_url>/c/<token>``, signed with :mod:`bot.invites`. Pure.

A link names one person and expires when their check-in window closes (and never later than
``channels.web.link_ttl_hours``). Unlike a Telegram invite it is not one-time: the person comes
back to the same link between questions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

from bot.config import Config, resolve_secret
from bot.invites import make_token

log = logging.getLogger(__name__)


def link_key(config: Config, *, ephemeral_ok: bool) -> bytes | None:
    """The signing key from ``channels.web.link_secret``; without one, a key for this process only."""
    secret = resolve_secret(config.channels.web.link_secret)
    if secret:
        return hashlib.sha256(b"rapport-web-link:" + secret.encode("utf-8")).digest()
    if not ephemeral_ok:
        return None
    log.warning("channels.web.link_secret is unset: this process made its own key; its links end at restart")
    return secrets.token_bytes(32)


def base_url(config: Config) -> str:
    if config.web.public_url:
        return config.web.public_url.rstrip("/")
    # A server listening on every interface is reached locally at the loopback address.
    host = "127.0.0.1" if config.web.host in ("0.0.0.0", "::", "") else config.web.host  # noqa: S104
    return f"http://{host}:{config.web.port}"


def make_link(config: Config, key: bytes, *, person_id: int, now: dt.datetime,
              closes_at: dt.datetime | None = None, base: str | None = None) -> str:  # fmt: skip
    """A link for one person, valid until the check-in closes (capped at the configured TTL)."""
    ttl = dt.timedelta(hours=config.channels.web.link_ttl_hours)
    if closes_at is not None:
        closes_at = closes_at if closes_at.tzinfo else closes_at.replace(tzinfo=dt.UTC)
        ttl = max(min(ttl, closes_at - now), dt.timedelta(minutes=1))
    token = make_token(person_id=person_id, key=key, now=now, ttl=ttl)
    return f"{base or base_url(config)}/c/{token}"
