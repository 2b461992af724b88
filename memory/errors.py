"""One root for Rapport's errors. Library code raises these with data; the CLI picks wording and
exit codes (see bot.cli). It lives in ``memory`` because memory imports nothing else of ours."""

from __future__ import annotations


class RapportError(Exception):
    """Root of every error Rapport raises on purpose."""


class NotFound(RapportError):
    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} not found")


class NotEnrolled(RapportError):
    def __init__(self, person: str, program: str) -> None:
        self.person = person
        self.program = program
        super().__init__(f"{person!r} is not enrolled in {program!r}")


class OptedOut(RapportError):
    def __init__(self, person: str) -> None:
        self.person = person
        super().__init__(f"{person!r} has opted out")


class ImportProblem(RapportError):
    """A bad row in an imported file; collected, never raised past the importer."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


class DeliveryError(RapportError):
    """A channel could not deliver a message. Raised by channel adapters, handled by dispatchers.

    Subclasses say what to do next: try again later, give up on the message, or stop trying the
    person on that channel at all.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RetryLater(DeliveryError):
    """Temporary (429, 5xx, network). ``retry_after`` seconds, when the API said so."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class DeliveryUnknown(RetryLater):
    """The platform did not answer in time: the message may or may not have arrived. Channels do
    not retry it in place (that could deliver it twice); the outbox decides."""


class Unreachable(DeliveryError):
    """The person cannot be reached on this channel (blocked the bot, account gone)."""


class PermanentFailure(DeliveryError):
    """This message will never go through as it is (bad request); do not retry it."""


class DatabaseError(RapportError):
    """The database cannot be used at all (wrong URL, server unreachable, file missing).

    ``url`` has its password hidden and ``reason`` is one line without SQL or parameters, so the
    message is safe to print and to log.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"database {url}: {reason}")


class DatabaseUrlInvalid(DatabaseError):
    """``database.url`` (or ``--database``) is not a URL Rapport can use."""


class DatabaseUnavailable(DatabaseError):
    """The database server did not accept a connection (down, refused, wrong host or password)."""


class DatabaseMissing(DatabaseError):
    """The SQLite file does not exist; only ``rapport init`` creates it."""


class EncryptionError(RapportError):
    """Encryption at rest cannot work as configured (``memory.crypto``). The message is one line
    and never holds a key or a value."""


class EncryptionKeyMissing(EncryptionError):
    """``privacy.encryption`` is on and no key is in the environment."""


class EncryptionKeyInvalid(EncryptionError):
    """A key in the environment is not a Fernet key."""


class EncryptedValueUnreadable(EncryptionError):
    """A stored value was encrypted with a key that is not (or no longer) in the environment."""
