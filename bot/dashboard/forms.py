"""The dashboard's forms (WTForms), each with a CSRF token bound to the owner's session.

CSRF is WTForms' ``SessionCSRF``: a random value kept in the encrypted session cookie, and an
HMAC of it with the web secret and an expiry in every form. The subclass below only makes the
check constant-time and treats a session without the value as a failed check (the library
raises ``KeyError`` there). Every POST handler validates its form before it reads anything else.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import MutableMapping
from hashlib import sha1
from typing import Any

from multidict import MultiDictProxy
from wtforms import DateField, Form, PasswordField, SelectField, StringField, TextAreaField
from wtforms.csrf.session import SessionCSRF
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from memory.promises import OWNER_STATUSES


class _SessionCSRF(SessionCSRF):
    def validate_csrf_token(self, form: Any, field: Any) -> None:
        meta = self.form_meta
        data = field.data or ""
        if "##" not in data or "csrf" not in self.session:
            raise ValidationError("CSRF token missing.")
        expires, mac = data.split("##", 1)
        expected = hmac.new(meta.csrf_secret, (self.session["csrf"] + expires).encode("utf8"), digestmod=sha1)
        if not hmac.compare_digest(expected.hexdigest(), mac):
            raise ValidationError("CSRF failed.")
        if self.time_limit and self.now().strftime(self.TIME_FORMAT) > expires:
            raise ValidationError("CSRF token expired.")


class FormData:
    """aiohttp's form body as WTForms expects it (``getlist``)."""

    def __init__(self, data: MultiDictProxy[Any]) -> None:
        self._data = data

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def getlist(self, key: str) -> list[Any]:
        return [v for v in self._data.getall(key, []) if isinstance(v, str)]


class Protected(Form):
    class Meta:
        csrf = True
        csrf_class = _SessionCSRF
        csrf_time_limit = dt.timedelta(hours=12)


def bind(form_class: type[Protected], *, secret: bytes, session: MutableMapping[str, Any],
         posted: MultiDictProxy[Any] | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """The form, filled from a POST body (``posted``) or from ``data=`` / ``obj=`` for display."""
    meta = {"csrf_secret": secret, "csrf_context": session}
    return form_class(formdata=FormData(posted) if posted is not None else None, meta=meta, **kwargs)


class LoginForm(Protected):
    owner = StringField("Owner (your e-mail or key)", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])


class LinkRequestForm(Protected):
    email = StringField("Your e-mail address", validators=[DataRequired(), Length(max=320)])


class ConfirmForm(Protected):
    """A button and nothing else: logout, using a login link."""


class PromiseForm(Protected):
    text = TextAreaField("What was promised", validators=[DataRequired(), Length(max=2000)])
    due = DateField("Due (optional)", validators=[Optional()])


class StatusForm(Protected):
    status = SelectField("Status", choices=list(OWNER_STATUSES))
