"""Encryption at rest for people's words and the embeddings derived from them (optional).

The one home of the rule. Keys come only from the environment: ``RAPPORT_ENCRYPTION_KEYS``,
comma-separated Fernet keys, **newest first** (``cryptography``'s ``MultiFernet``: the first key
encrypts, every key decrypts). ``config.yaml`` says only whether a key is required
(``privacy.encryption: on``); it never holds one.

With a key, the column types below store ``enc:fernet:<token>``: AES-128-CBC with an HMAC-SHA256,
so a changed value is refused rather than misread. Text columns hold that string, binary columns
(embeddings) its bytes, JSON columns a JSON string of it. Without a key values are stored as they
always were, and a value without the mark is read as plain: a database where some rows were
written before encryption was turned on reads correctly. A plain text that happens to begin with
the mark is stored behind ``enc:plain:`` so it is never mistaken for a token.

``None`` and the empty string stay as they are: "no words" must stay visible to SQL (the digests
filter ``text != ''``). Everything else that compares words does it in Python after reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, LargeBinary, Text, TypeDecorator
from sqlalchemy.engine import Dialect

from memory.errors import EncryptedValueUnreadable, EncryptionKeyInvalid, EncryptionKeyMissing

ENV = "RAPPORT_ENCRYPTION_KEYS"
MARK = "enc:fernet:"
ESCAPE = "enc:plain:"
_BMARK = MARK.encode("ascii")


@dataclass(frozen=True)
class Keyring:
    """The keys of this process: empty when none is set (values are then written plain)."""

    keys: tuple[Fernet, ...] = ()
    _multi: MultiFernet | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_multi", MultiFernet(list(self.keys)) if self.keys else None)

    @property
    def active(self) -> bool:
        return bool(self.keys)

    def encrypt(self, data: bytes) -> bytes:
        return self.keys[0].encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        if self._multi is None:
            raise EncryptedValueUnreadable(f"encrypted values are stored but {ENV} is not set")
        try:
            return self._multi.decrypt(token)
        except InvalidToken:
            raise EncryptedValueUnreadable(
                f"an encrypted value cannot be read with the keys in {ENV} "
                "(a wrong key, or the key that wrote it was removed too early)"
            ) from None

    def rotate(self, token: bytes) -> bytes:
        """``token`` encrypted again with the newest key (its original time kept)."""
        assert self._multi is not None
        return self._multi.rotate(token)

    def state(self, token: bytes) -> str:
        """``current`` (readable with the newest key), ``older`` (only with another one) or
        ``unreadable``."""
        try:
            self.keys[0].decrypt(token)
            return "current"
        except (InvalidToken, IndexError):
            pass
        try:
            self.decrypt(token)
            return "older"
        except EncryptedValueUnreadable:
            return "unreadable"


def parse(raw: str | None) -> Keyring:
    """The keys in ``raw`` (the environment variable's value); a bad one is named by position,
    never shown."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    keys: list[Fernet] = []
    for n, part in enumerate(parts, 1):
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise EncryptionKeyInvalid(
                f"{ENV}: key {n} of {len(parts)} is not a Fernet key "
                "(44 characters of URL-safe base64; make one with `rapport keys generate`)"
            ) from None
    return Keyring(tuple(keys))


_ring: Keyring | None = None


def load(environ: Mapping[str, str] | None = None, *, required: bool = False) -> Keyring:
    """Read the keys from the environment and use them in this process from now on."""
    global _ring
    ring = parse((os.environ if environ is None else environ).get(ENV))
    if required and not ring.active:
        raise EncryptionKeyMissing(
            f"privacy.encryption is on but {ENV} is not set; make a key with `rapport keys generate`"
        )
    _ring = ring
    return ring


def reset() -> None:
    """Forget the keys read so far: the next use reads the environment again."""
    global _ring
    _ring = None


def keyring() -> Keyring:
    """The keys in use (read from the environment the first time)."""
    return _ring if _ring is not None else load()


def generate() -> str:
    return Fernet.generate_key().decode("ascii")


# Stored forms -----------------------------------------------------------------------------------
#
# Each kind of column has a raw form (what the database holds): ``str`` for text, ``bytes`` for
# binary, the JSON value for JSON. These functions are shared by the column types and by key
# rotation (memory.rekey), which works on raw values.


def token_of(raw: Any) -> bytes | None:
    """The Fernet token inside a stored value, or None when the value is plain."""
    if isinstance(raw, str) and raw.startswith(MARK):
        return raw[len(MARK) :].encode("ascii")
    if isinstance(raw, bytes | memoryview) and bytes(raw[: len(_BMARK)]) == _BMARK:
        return bytes(raw[len(_BMARK) :])
    return None


def wrap(kind: str, token: bytes) -> Any:
    """The stored form of ``token`` for a column of ``kind`` (text, bytes or json)."""
    return _BMARK + token if kind == "bytes" else MARK + token.decode("ascii")


def plain_bytes(kind: str, raw: Any) -> bytes:
    """What encrypting the plain stored value ``raw`` would seal."""
    if kind == "bytes":
        return bytes(raw)
    if kind == "json":
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _unescape(raw).encode("utf-8")


def is_empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw == "")


def _unescape(text: str) -> str:
    return text[len(ESCAPE) :] if text.startswith(ESCAPE) else text


class EncryptedText(TypeDecorator[str]):
    """Text that holds people's words."""

    impl = Text
    cache_ok = True
    kind = "text"

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or value == "":
            return value
        ring = keyring()
        if ring.active:
            return wrap("text", ring.encrypt(value.encode("utf-8")))
        return ESCAPE + value if value.startswith((MARK, ESCAPE)) else value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        token = token_of(value)
        if token is None:
            return _unescape(value)
        return keyring().decrypt(token).decode("utf-8")


class EncryptedBytes(TypeDecorator[bytes]):
    """Binary derived from people's words (embeddings)."""

    impl = LargeBinary
    cache_ok = True
    kind = "bytes"

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        ring = keyring()
        if value is None or not ring.active:
            return value
        return _BMARK + ring.encrypt(bytes(value))

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        token = token_of(value)
        return bytes(value) if token is None else keyring().decrypt(token)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document that may quote people's words (conversation state, stored messages)."""

    impl = JSON
    cache_ok = True
    kind = "json"

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        ring = keyring()
        if value is None or not ring.active:
            return value
        return wrap("json", ring.encrypt(plain_bytes("json", value)))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        token = token_of(value)
        return value if token is None else json.loads(keyring().decrypt(token))


ENCRYPTED_TYPES = (EncryptedText, EncryptedBytes, EncryptedJSON)
