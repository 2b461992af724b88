"""Owners' credentials and access rules: passwords, one-time login links, the login rate limit,
and which people an owner may see.

* Passwords are argon2id hashes (argon2-cffi, its default parameters), rehashed on login when
  those parameters change.
* A login link carries 32 random bytes (``secrets.token_urlsafe``); only their SHA-256 is stored,
  with an expiry and ``used_at``. The database lookup is the signature: nobody can make a token
  the table knows, a stolen table replays nothing, and the link works in every process without
  a shared key (``rapport owner login-link`` runs in its own process).
* Failed logins are rows in ``login_failures``, counted per owner key and per client address over
  a window, so every ``rapport run`` process enforces one limit. Requests for an e-mailed login
  link are counted there too (per address asked for and per client), whether or not the address
  is an owner's.
* Links Rapport sends (by Slack, Telegram or e-mail) are queued by
  :mod:`bot.engine.owner_login` and made and sent by :mod:`bot.dashboard.link_delivery`.
* Access: an admin sees every person; any other owner only the people whose ``owner_id`` is
  theirs. Everything that reads a person goes through :func:`visible_person` or
  :func:`visible_people_query`, the one place the rule lives.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from memory.errors import RapportError
from memory.models import Owner, Person
from memory.models_web import LoginFailure, LoginToken, OwnerAccount

_hasher = PasswordHasher()
MIN_PASSWORD_CHARS = 12


class WeakPassword(RapportError):
    def __init__(self) -> None:
        super().__init__(f"a password needs at least {MIN_PASSWORD_CHARS} characters")


class UnknownOwner(RapportError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no owner {key!r} (owners come from the roster's owner column)")


@dataclass(frozen=True, kw_only=True)
class Viewer:
    """The logged-in owner, as every page sees them."""

    owner_id: int
    key: str
    name: str | None
    is_admin: bool


def find_owner(s: Session, key: str) -> Owner | None:
    return s.scalar(select(Owner).where(Owner.key == key))


def owner_by_email(s: Session, address: str) -> Owner | None:
    """The owner whose e-mail address this is (any case); None when none or several have it."""
    found = list(s.scalars(select(Owner).where(func.lower(Owner.email) == address.strip().lower()).limit(2)))
    return found[0] if len(found) == 1 else None


def _account(s: Session, owner: Owner, now: dt.datetime) -> OwnerAccount:
    account = s.get(OwnerAccount, owner.id)
    if account is None:
        account = OwnerAccount(owner_id=owner.id, password_hash=None, is_admin=False, created_at=now, updated_at=now)
        s.add(account)
    return account


def set_password(s: Session, *, owner_key: str, password: str, now: dt.datetime, admin: bool | None = None) -> None:
    owner = find_owner(s, owner_key)
    if owner is None:
        raise UnknownOwner(owner_key)
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword()
    account = _account(s, owner, now)
    account.password_hash = _hasher.hash(password)
    if admin is not None:
        account.is_admin = admin
    account.updated_at = now
    s.flush()


def set_admin(s: Session, *, owner_key: str, admin: bool, now: dt.datetime) -> None:
    owner = find_owner(s, owner_key)
    if owner is None:
        raise UnknownOwner(owner_key)
    account = _account(s, owner, now)
    account.is_admin = admin
    account.updated_at = now
    s.flush()


def viewer_for(s: Session, owner_id: int) -> Viewer | None:
    owner = s.get(Owner, owner_id)
    if owner is None:
        return None
    account = s.get(OwnerAccount, owner_id)
    return Viewer(owner_id=owner.id, key=owner.key, name=owner.name, is_admin=bool(account and account.is_admin))


def check_password(s: Session, *, owner_key: str, password: str, now: dt.datetime) -> Viewer | None:
    """The viewer when the password is right; None otherwise (unknown owner included)."""
    owner = find_owner(s, owner_key)
    account = s.get(OwnerAccount, owner.id) if owner is not None else None
    if owner is None or account is None or not account.password_hash:
        # Spend the same time as a real check, so response time does not reveal which owners exist.
        _hasher.hash(password)
        return None
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
        account.updated_at = now
    return viewer_for(s, owner.id)


# One-time login links ---------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def make_login_token(s: Session, *, owner_key: str, now: dt.datetime, ttl: dt.timedelta) -> str:
    owner = find_owner(s, owner_key)
    if owner is None:
        raise UnknownOwner(owner_key)
    token = secrets.token_urlsafe(32)
    s.add(LoginToken(token_hash=_digest(token), owner_id=owner.id, created_at=now, expires_at=now + ttl))
    s.flush()
    return token


def use_login_token(s: Session, *, token: str, now: dt.datetime) -> Viewer | None:
    """Spend the token: the viewer once, None when unknown, expired or already used."""
    if not token or len(token) > 100:
        return None
    # FOR UPDATE: two simultaneous clicks on PostgreSQL cannot both spend it (SQLite serialises writers).
    row = s.scalar(select(LoginToken).where(LoginToken.token_hash == _digest(token)).with_for_update())
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    s.flush()
    return viewer_for(s, row.owner_id)


# Rate limit ---------------------------------------------------------------------------------------


def login_blocked(s: Session, *, buckets: list[str], now: dt.datetime, window: dt.timedelta, limit: int) -> bool:
    recent = select(func.count()).where(LoginFailure.bucket.in_(buckets), LoginFailure.at > now - window)
    count = s.scalar(recent.group_by(LoginFailure.bucket).order_by(func.count().desc()).limit(1))
    return (count or 0) >= limit


def record_failure(s: Session, *, buckets: list[str], now: dt.datetime, window: dt.timedelta) -> None:
    s.execute(delete(LoginFailure).where(LoginFailure.at <= now - window))
    for bucket in buckets:
        s.add(LoginFailure(bucket=bucket, at=now))
    s.flush()


def clear_failures(s: Session, *, bucket: str) -> None:
    s.execute(delete(LoginFailure).where(LoginFailure.bucket == bucket))


# Who sees whom -------------------------------------------------------------------------------------


def visible_people_query(viewer: Viewer) -> Select[Person]:
    query = select(Person).order_by(Person.name, Person.key)
    if not viewer.is_admin:
        query = query.where(Person.owner_id == viewer.owner_id)
    return query


def visible_person(s: Session, viewer: Viewer, person_key: str) -> Person | None:
    """The person, when this viewer may see them; None otherwise (a 404, never a 403 that
    would confirm the person exists)."""
    return s.scalar(visible_people_query(viewer).where(Person.key == person_key))
