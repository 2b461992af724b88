"""Check-in links: ``<public_url>/c/<token>``, signed with :mod:`bot.invites`, and the little
database work the page needs (who the link is for, their open check-in, their e-mail address).

A link names one person and expires when their check-in window closes (and never later than
``channels.web.link_ttl_hours``). Unlike a Telegram invite it is not one-time: the person comes
back to the same link between questions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.config import Config, resolve_secret
from bot.invites import make_token
from memory import store
from memory.models import Checkin, Person

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


@dataclass(frozen=True, kw_only=True)
class Visitor:
    person_key: str
    name: str
    opted_out: bool
    checkin_id: int | None
    program: str | None


def visitor(s: Session, person_id: int, now: dt.datetime) -> Visitor | None:
    """Who the link is for, and their open check-in; links the web identity the engine reads."""
    person = s.get(Person, person_id)
    if person is None:
        return None
    store.link_identity(s, person=person, channel="web", external_id=person.key, now=now)
    checkins = store.open_checkins(s, person.id)
    checkin = checkins[0] if checkins else None
    return Visitor(
        person_key=person.key, name=person.name or "", opted_out=person.opted_out_at is not None,
        checkin_id=checkin.id if checkin else None, program=checkin.program.name if checkin else None,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Recipient:
    person_id: int
    name: str
    email: str | None
    closes_at: dt.datetime | None
    program: str | None


def recipient(s: Session, person_key: str, checkin_id: int | None) -> Recipient | None:
    person = store.find_person(s, person_key)
    if person is None:
        return None
    checkin = s.get(Checkin, checkin_id) if checkin_id is not None else None
    return Recipient(
        person_id=person.id, name=person.name or "", email=(person.email or "").strip() or None,
        closes_at=checkin.expires_at if checkin else None, program=checkin.program.name if checkin else None,
    )  # fmt: skip
