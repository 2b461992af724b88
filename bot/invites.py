"""Invite tokens: signed, expiring, one-time links that bind a chat to a person.

A token is what follows ``/start`` in a Telegram deep link (``https://t.me/<bot>?start=<token>``),
so it must fit Telegram's limit: at most 64 characters of ``[A-Za-z0-9_-]``. It carries the
person's id, an expiry and a random nonce, and a truncated HMAC-SHA256 over all of them; nothing
in it is secret, but nobody can make or alter one without the key.

This module is pure: it never touches the database. "One-time" is enforced by the caller, who
records ``invite:<nonce>`` as a processed event in the same transaction that links the chat.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Literal

from memory.errors import RapportError

__all__ = ["InvalidInvite", "Invite", "derive_key", "make_token", "read_token"]

_VERSION = 1
# version (1 byte), person id (8), expiry as Unix seconds (8), nonce (8), then the MAC.
_BODY = struct.Struct(">BQQ8s")
_MAC_BYTES = 16
# 41 bytes -> 55 base64url characters without padding.
TOKEN_LENGTH = 55
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

InvalidReason = Literal["malformed", "forged", "expired"]


class InvalidInvite(RapportError):
    """The token cannot be used. ``reason`` is malformed, forged or expired."""

    def __init__(self, reason: InvalidReason) -> None:
        self.reason: InvalidReason = reason
        super().__init__(f"invite token is {reason}")


@dataclass(frozen=True, kw_only=True)
class Invite:
    person_id: int
    expires_at: dt.datetime
    nonce: str

    @property
    def event_key(self) -> str:
        """The processed-event key that makes the token one-time."""
        return f"invite:{self.nonce}"


def derive_key(*, invite_secret: str | None, bot_token: str) -> bytes:
    """The signing key: the configured invite secret, or one derived from the bot token.

    Deriving (rather than using the token itself) keeps the bot token out of any MAC input an
    attacker could probe; rotating the bot token then also invalidates outstanding invites.
    """
    if invite_secret:
        return hashlib.sha256(b"rapport-invite-secret:" + invite_secret.encode()).digest()
    return hmac.new(b"rapport-invite-key", bot_token.encode(), hashlib.sha256).digest()


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(*, person_id: int, key: bytes, now: dt.datetime, ttl: dt.timedelta, nonce: bytes | None = None) -> str:
    """A fresh token for one person, valid from ``now`` for ``ttl``."""
    if person_id < 0:
        raise ValueError("person_id must not be negative")
    expires = int((now + ttl).timestamp())
    body = _BODY.pack(_VERSION, person_id, expires, nonce or secrets.token_bytes(8))
    token = base64.urlsafe_b64encode(body + _mac(key, body)).rstrip(b"=").decode("ascii")
    assert len(token) == TOKEN_LENGTH
    return token


def read_token(token: str, *, key: bytes, now: dt.datetime) -> Invite:
    """Check a token's shape, signature and expiry. Raises :class:`InvalidInvite`."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH or not _TOKEN_RE.match(token):
        raise InvalidInvite("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInvite("malformed") from None
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if len(body) != _BODY.size or len(mac) != _MAC_BYTES:
        raise InvalidInvite("malformed")
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise InvalidInvite("forged")
    version, person_id, expires, nonce = _BODY.unpack(body)
    if version != _VERSION:
        raise InvalidInvite("malformed")
    expires_at = dt.datetime.fromtimestamp(expires, dt.UTC)
    if now >= expires_at:
        raise InvalidInvite("expired")
    return Invite(person_id=person_id, expires_at=expires_at, nonce=nonce.hex())
