"""Erasing a person: the one home of what ``rapport forget`` removes, and how.

Removed, in one transaction: the person row and everything keyed to it (answers with their
embeddings, check-ins with their conversation state, follow-ups, promises and outcomes, channel
identities, enrollments, absences, outbox rows with their stored contents and send records, which
also carry invitation links and tokens). Owner digests that quoted the person keep their other
lines: every line that names or quotes the person is replaced by :data:`REDACTED`, in the stored
digest contents and in digest files Rapport wrote, and so is every comment or theme quote of a
frozen anonymous wave view (``wave_views``) that quotes the person; its counts stay, since they
cover at least k people. The owner's web login is removed only when asked (``owner_login``), for
a person who is also an owner with the same key or e-mail.

What stays is an erasure record in the audit log (action ``person.erase``): who asked, when, the
row counts, and a salted SHA-256 of the person's key, so "was X erased?" can be answered by
whoever knows X, while the record names nobody. Audit entries about the person stay (their
``person_id`` becomes NULL): they hold ids and verbs, no words.

On SQLite the erasing transaction runs with ``PRAGMA secure_delete=ON`` (freed content is
overwritten with zeros) and is followed by a ``wal_checkpoint(TRUNCATE)``, so neither the
database file nor its WAL keeps the words.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from memory import audit
from memory.models import (
    Answer,
    ChannelIdentity,
    Checkin,
    Enrollment,
    FollowUp,
    OutboxMessage,
    Outcome,
    Owner,
    Person,
    Promise,
)
from memory.models_anonymity import WaveView
from memory.models_channels import ChannelMark
from memory.models_scheduler import Absence, OutboxContent, OutboxSend
from memory.models_web import LoginFailure, LoginToken, OwnerAccount

#: What replaces a line of a digest that named or quoted an erased person.
REDACTED = "[removed at this person's request]"
# Fragments shorter than this would match unrelated words in other people's lines.
_MIN_FRAGMENT = 12
# Digests quote the start of a reason (``memory.text``-style excerpts), so the start is matched.
_FRAGMENT_CHARS = 24


#: Every table, and what erasure does with it. A test fails when a table is added without a line
#: here, so whoever adds one decides (and says) how it is erased.
TABLES: dict[str, str] = {
    "people": "deleted",
    "answers": "deleted",
    "checkins": "deleted",
    "followups": "deleted",
    "promises": "deleted",
    "outcomes": "deleted",
    "enrollments": "deleted",
    "channel_identities": "deleted",
    "channel_marks": "deleted (keys holding the person's chat ids)",
    "absences": "deleted",
    "outbox": "the person's rows deleted; other rows lose the link to their check-ins",
    "outbox_contents": "the person's deleted; owner digests redacted",
    "outbox_sends": "the person's deleted",
    "audit_log": "kept without the person (person_id NULL); the erasure record added",
    "owner_accounts": "deleted with --owner-login",
    "login_tokens": "deleted with --owner-login",
    "login_failures": "deleted with --owner-login",
    "owners": "kept (owners are not the person; their login only on request)",
    "owner_identities": "kept (an owner's chat accounts)",
    "programs": "no personal data",
    "waves": "no personal data",
    "wave_views": "comments and theme quotes that quote the person redacted; counts kept (groups of at least k)",
    "processed_events": "no personal data (event ids and invite nonces)",
    "scheduler_leases": "no personal data",
    "worker_heartbeats": "no personal data",
    "alembic_version": "no personal data",
    "slack_installations": "kept (the workspace's app installation: the installing admin's user id and tokens)",
    "slack_bots": "kept (the workspace's bot tokens)",
    "slack_oauth_states": "no personal data (short-lived OAuth states)",
}


@dataclass
class ErasureReport:
    reference: str
    counts: dict[str, int] = field(default_factory=dict)
    digest_files: list[str] = field(default_factory=list)
    # SQLite only: False when the WAL could not be truncated yet (another process was reading).
    wal_truncated: bool = True


def find_person(s: Session, ref: str) -> Person:
    """The person whose key (or e-mail) is ``ref``, as every command finds people."""
    from memory.store import require_person

    return require_person(s, ref)


def reference(key: str, salt: str | None = None) -> str:
    """``salt$sha256(salt:key)``: checkable against a known key, not reversible to one."""
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256(f'{salt}:{key}'.encode()).hexdigest()}"


def matches(ref: str, key: str) -> bool:
    salt, _, _digest = ref.partition("$")
    return secrets.compare_digest(reference(key, salt), ref)


def fingerprints(s: Session, person: Person) -> re.Pattern[str]:
    """What, in a digest line, means the line is about this person: their key or name as a whole
    word, or the start of any of their words (as typed, HTML-escaped or JSON-escaped)."""
    texts = [t for t in s.scalars(select(Answer.text).where(Answer.person_id == person.id)) if t]
    texts += [t for t in s.scalars(select(Promise.text).where(Promise.person_id == person.id)) if t]
    checkin_ids = select(Checkin.id).where(Checkin.person_id == person.id)
    texts += [t for t in s.scalars(select(FollowUp.answer_text).where(FollowUp.checkin_id.in_(checkin_ids))) if t]
    promise_ids = select(Promise.id).where(Promise.person_id == person.id)
    texts += [t for t in s.scalars(select(Outcome.comment).where(Outcome.promise_id.in_(promise_ids))) if t]
    # "ann" must not match "channel": names and keys count only as whole words.
    return quotes_pattern(texts, names={n for n in (person.key, person.name) if n})


def _escapes(fragment: str) -> set[str]:
    return {fragment, html.escape(fragment), html.escape(fragment, quote=False), json.dumps(fragment)[1:-1]}


def _whole_words(names: set[str]) -> str:
    return "|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in sorted(names | {html.escape(n) for n in names}))


def quotes_pattern(
    texts: list[str], *, names: set[str] | None = None, short_with: set[str] | None = None
) -> re.Pattern[str]:
    """What, in a stored message, means a line quotes one of ``texts`` (the start of any of its
    lines, as typed, HTML-escaped or JSON-escaped) or names one of ``names`` (as a whole word).

    Erasing one answer (``memory.own_answers``) uses it with that answer's words alone, and
    ``short_with`` (the person's key and name): a line shorter than the fragments that are safe to
    look for on their own ("awful") counts only on a line that also names the person."""
    fragments: set[str] = set()
    short: set[str] = set()
    for value in texts:
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= _MIN_FRAGMENT:
                fragments.update(_escapes(line[:_FRAGMENT_CHARS]))
            elif line and short_with:
                short.update(_escapes(line))
    parts = [re.escape(f) for f in sorted(fragments)]
    if names:
        parts.append(_whole_words(names))
    if short and short_with:
        said = "|".join(re.escape(f) for f in sorted(short))
        parts.append(rf"^(?=.*(?:{_whole_words(short_with)})).*(?:{said})")
    # Nothing to look for matches nothing (an empty alternation would match every line).
    return re.compile("|".join(parts) or r"(?!x)x")


def redact_text(value: str, marks: re.Pattern[str]) -> str:
    """``value`` with every line that ``marks`` finds replaced by :data:`REDACTED`."""
    return "\n".join(REDACTED if marks.search(line) else line for line in value.split("\n"))


def redact_json(value: Any, marks: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, marks)
    if isinstance(value, list):
        return [redact_json(v, marks) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v, marks) for k, v in value.items()}
    return value


def _owner_of_same_person(s: Session, person: Person) -> Owner | None:
    conditions = [Owner.key == person.key]
    if person.email:
        conditions.append(Owner.email == person.email)
    return s.scalars(select(Owner).where(or_(*conditions))).first()


def _count(s: Session, statement: Any) -> int:
    return int(getattr(s.execute(statement), "rowcount", 0) or 0)


def _erase_marks(s: Session, pid: int) -> int:
    """Channel marks (short-lived facts keyed by chat or user id, ``slack:clicked:D1:...``)."""
    ids: set[str] = set()
    for identity in s.scalars(select(ChannelIdentity).where(ChannelIdentity.person_id == pid)):
        ids.update(x for x in (identity.external_id, identity.address) if x)
    if not ids:
        return 0
    keyed = or_(*[ChannelMark.key.like(f"%:{i}:%") | ChannelMark.key.endswith(f":{i}") for i in ids])
    return _count(s, delete(ChannelMark).where(keyed))


def erase_rows(s: Session, person: Person, *, owner_login: bool = False) -> dict[str, int]:
    """Delete every row about ``person``, children first (no reliance on ON DELETE)."""
    pid = person.id
    checkins = select(Checkin.id).where(Checkin.person_id == pid)
    promises = select(Promise.id).where(Promise.person_id == pid)
    outbox = select(OutboxMessage.id).where(OutboxMessage.person_id == pid)
    counts: dict[str, int] = {}
    counts["outbox_contents"] = _count(s, delete(OutboxContent).where(OutboxContent.outbox_id.in_(outbox)))
    counts["outbox_sends"] = _count(s, delete(OutboxSend).where(OutboxSend.outbox_id.in_(outbox)))
    counts["outbox"] = _count(s, delete(OutboxMessage).where(OutboxMessage.person_id == pid))
    # Rows of other tables that point at the person's check-ins lose the link, not their data.
    s.execute(update(OutboxMessage).where(OutboxMessage.checkin_id.in_(checkins)).values(checkin_id=None))
    counts["outcomes"] = _count(
        s, delete(Outcome).where(or_(Outcome.promise_id.in_(promises), Outcome.checkin_id.in_(checkins)))
    )
    counts["promises"] = _count(s, delete(Promise).where(Promise.person_id == pid))
    counts["followups"] = _count(s, delete(FollowUp).where(FollowUp.checkin_id.in_(checkins)))
    counts["answers"] = _count(s, delete(Answer).where(Answer.person_id == pid))
    counts["checkins"] = _count(s, delete(Checkin).where(Checkin.person_id == pid))
    counts["enrollments"] = _count(s, delete(Enrollment).where(Enrollment.person_id == pid))
    counts["channel_marks"] = _erase_marks(s, pid)
    counts["channel_identities"] = _count(s, delete(ChannelIdentity).where(ChannelIdentity.person_id == pid))
    counts["absences"] = _count(s, delete(Absence).where(Absence.person_id == pid))
    s.execute(update(audit.AuditEntry).where(audit.AuditEntry.person_id == pid).values(person_id=None))
    if owner_login:
        owner = _owner_of_same_person(s, person)
        if owner is not None:
            counts["owner_accounts"] = _count(s, delete(OwnerAccount).where(OwnerAccount.owner_id == owner.id))
            counts["login_tokens"] = _count(s, delete(LoginToken).where(LoginToken.owner_id == owner.id))
            counts["login_failures"] = _count(
                s, delete(LoginFailure).where(LoginFailure.bucket == f"owner:{owner.key}")
            )
    s.execute(delete(Person).where(Person.id == pid))
    counts["people"] = 1
    return counts


def redact_stored_digests(s: Session, marks: re.Pattern[str]) -> int:
    """Rewrite stored digest contents (other people's rows) that name or quote the person."""
    changed = 0
    digest_rows = select(OutboxMessage.id).where(OutboxMessage.kind == "digest")
    for content in s.scalars(select(OutboxContent).where(OutboxContent.outbox_id.in_(digest_rows))):
        body = redact_json(content.body, marks)
        if body != content.body:
            content.body = body
            changed += 1
    return changed


def redact_wave_views(s: Session, marks: re.Pattern[str]) -> int:
    """Rewrite frozen views of anonymous waves whose comments or theme quotes quote the person."""
    changed = 0
    for row in s.scalars(select(WaveView)):
        view = redact_json(row.view, marks)
        if view != row.view:
            row.view = view
            changed += 1
    return changed


def redact_digest_files(folder: Path, marks: re.Pattern[str]) -> list[str]:
    """Rewrite digest files (Markdown, HTML...) Rapport wrote into ``folder``."""
    rewritten: list[str] = []
    if not folder.is_dir():
        return rewritten
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.startswith("digest-"):
            continue
        try:
            before = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        after = redact_text(before, marks)
        if after != before:
            # Replace, not edit in place: a new file, then an atomic rename over the old one.
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(after, encoding="utf-8")
            tmp.replace(path)
            rewritten.append(str(path))
    return rewritten


def forget(
    sessions: sessionmaker[Session],
    key: str,
    *,
    actor: str,
    now: dt.datetime,
    digest_folder: Path | None = None,
    owner_login: bool = False,
) -> ErasureReport:
    """Erase the person ``key`` (see the module docstring); raise ``NotFound`` if unknown."""
    with sessions() as s, s.begin():
        sqlite = s.get_bind().dialect.name == "sqlite"
        if sqlite:
            s.connection().exec_driver_sql("PRAGMA secure_delete=ON")
        person = find_person(s, key)
        marks = fingerprints(s, person)
        counts = erase_rows(s, person, owner_login=owner_login)
        counts["stored_digests"] = redact_stored_digests(s, marks)
        counts["wave_views"] = redact_wave_views(s, marks)
        report = ErasureReport(reference=reference(person.key), counts=counts)
        audit.record(
            s, actor=actor, action="person.erase", now=now, detail={"reference": report.reference, "counts": counts}
        )
    if digest_folder is not None:
        report.digest_files = redact_digest_files(digest_folder, marks)
    if sqlite:
        report.wal_truncated = scrub_sqlite(sessions)
    return report


def scrub_sqlite(sessions: sessionmaker[Session]) -> bool:
    """Move the WAL into the database file and truncate it, so no old page copy keeps words.

    False when another connection (a running ``rapport run``) kept the checkpoint from finishing:
    the WAL is then truncated by the next checkpoint, and the operator is told.
    """
    with sessions() as s:
        busy, _, _ = s.connection().execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        s.commit()
    return not busy
