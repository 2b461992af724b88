"""The check-in page: ``GET /c/{token}`` shows the conversation, ``POST /c/{token}`` answers.

POST/redirect/GET, no JavaScript: each POST hands one :class:`Inbound` to
``CheckinService.handle`` and redirects back to the page. The conversation so far lives in an
encrypted cookie (aiohttp-session's Fernet storage) scoped to ``/c/``: the engine keeps the
answers, the cookie only what the page shows. Every form carries a nonce and a CSRF value (an
HMAC of the link and the nonce); the nonce is the engine's event key, so a refresh that posts
the same form again answers nothing twice. Every page is rendered by Jinja with autoescape on.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from bot.channels.web import translate
from bot.channels.web.mine import MinePage
from bot.engine.ports import Outbound
from bot.engine.service import CheckinService
from bot.engine.web_visits import Visitor, WebVisits
from bot.invites import InvalidInvite, read_token

HERE = Path(__file__).parent
TOKEN = "{token:[A-Za-z0-9_-]{55}}"  # noqa: S105 (a route pattern)
#: What the cookie keeps of the conversation: the last entries, each clipped (cookies hold ~4 KB).
KEEP, CLIP = 6, 300
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the link is the person's key to the page
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def _pending(messages: Sequence[Outbound]) -> dict[str, Any] | None:
    """What the form asks next: the last question, else the engine's last word (e.g. "stop? yes/no")."""
    asks = [m for m in messages if m.kind in ("question", "followup")] or list(messages)
    if not asks:
        return None
    last = asks[-1]
    return {"text": last.text, "choices": [[c.label, c.value] for c in last.choices]}


class Receiver:
    def __init__(self, *, service: CheckinService, visits: WebVisits, key: bytes,
                 clock: Callable[[], dt.datetime], secure: bool) -> None:  # fmt: skip
        self.service, self.visits, self.key, self.clock = service, visits, key, clock
        fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"rapport-web-page:" + key).digest()))
        self.storage = EncryptedCookieStorage(
            fernet, cookie_name="rapport_checkin", path="/c/", secure=secure, httponly=True, samesite="Lax",
            max_age=14 * 24 * 3600,
        )  # fmt: skip
        # The person's own answers, on the same link (``/c/{token}/mine``).
        self.mine = MinePage(self)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/c/_/web.css", self.css, name="web_css"),
            web.get(f"/c/{TOKEN}", self.page, name="web_page"),
            web.post(f"/c/{TOKEN}", self.answer, name="web_answer"),
            web.get(f"/c/{TOKEN}/mine", self.mine.page, name="web_mine"),
            web.post(f"/c/{TOKEN}/mine", self.mine.change, name="web_mine_change"),
            web.get("/c/{anything:.*}", self.bad_link),
            web.post("/c/{anything:.*}", self.bad_link),
        ]

    # Pages ------------------------------------------------------------------------------------

    async def css(self, _request: web.Request) -> web.Response:
        return web.Response(text=(HERE / "templates" / "web.css").read_text("utf-8"), content_type="text/css",
                            headers={"Cache-Control": "max-age=3600"})  # fmt: skip

    def _html(self, template: str, status: int = 200, **context: Any) -> web.Response:
        body = _env.get_template(template).render(**context)
        return web.Response(text=body, content_type="text/html", status=status, headers=HEADERS)

    async def bad_link(self, _request: web.Request) -> web.Response:
        return self._kind("malformed")

    def _kind(self, reason: str) -> web.Response:
        expired = reason == "expired"
        return self._html(
            "gone.html", status=410 if expired else 404,
            title="This check-in link has expired" if expired else "This link does not work",
            message=("The check-in it was for has closed. Thank you for your time: if you still want to "
                     "say something, reply to the e-mail that brought you here.") if expired else
                    ("It may have been cut short when it was copied. Open it again from the e-mail, or "
                     "reply to that e-mail and ask for a new one."),
        )  # fmt: skip

    def _visitor(self, token: str) -> Visitor | str | None:
        """The link's person and check-in, or the reason the link cannot be used."""
        now = self.clock()
        try:
            invite = read_token(token, key=self.key, now=now)
        except InvalidInvite as exc:
            return exc.reason
        return self.visits.visitor(invite.person_id, now) or "forged"

    async def page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await asyncio.to_thread(self._visitor, token)
        if isinstance(found, str) or found is None:
            return self._kind(found or "forged")
        cookie = await self.storage.load_session(request)
        # After the last answer the check-in is closed: the page still shows how it ended.
        same = cookie.get("checkin") == found.checkin_id or found.checkin_id is None
        log: list[list[str]] = list(cookie.get("log", [])) if same else []
        ask: dict[str, Any] | None = cookie.get("ask") if same and found.checkin_id is not None else None
        if found.checkin_id is not None and found.program and not found.opted_out and ask is None:
            # A fresh browser (or the first visit): the engine says where the check-in stands.
            started = await asyncio.to_thread(
                self.service.start, person_ref=found.person_key, program=found.program, channel="web"
            )
            # Only where it stands: the greeting or "welcome back" was in the e-mail that led here.
            shown = [m for m in started.messages if m.kind != "message"] or started.messages
            log = [["rapport", _clip(m.text)] for m in shown]
            ask = _pending(started.messages)
            cookie.update({"checkin": found.checkin_id, "log": log[-KEEP:], "ask": ask})
        nonce = secrets.token_urlsafe(18)
        response = self._html(
            "checkin.html", name=found.name, log=log, ask=ask, opted_out=found.opted_out,
            # The question is the conversation's last bubble: its label is then for screen readers.
            repeated=bool(ask and log and log[-1][1] == _clip(ask["text"])),
            done=found.checkin_id is None, resumed=bool(same and cookie.get("resumed")) and not found.opted_out,
            nonce=nonce, csrf=self._csrf(token, nonce), mine=f"/c/{token}/mine",
        )  # fmt: skip
        await self.storage.save_session(request, response, cookie)
        return response

    def _fresh(self, token: str) -> tuple[str, str]:
        """A new form's nonce and its CSRF value."""
        nonce = secrets.token_urlsafe(18)
        return nonce, self._csrf(token, nonce)

    def _csrf(self, token: str, nonce: str) -> str:
        return hmac.new(self.key, f"csrf:{token}:{nonce}".encode(), hashlib.sha256).hexdigest()

    async def answer(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await asyncio.to_thread(self._visitor, token)
        if isinstance(found, str) or found is None:
            return self._kind(found or "forged")
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        expected = self._csrf(token, form.get("nonce", "")).encode()
        if not hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), expected):
            return self._html("gone.html", status=403, title="This form has expired",
                              message="Go back to the check-in page and answer again.")  # fmt: skip
        try:
            inbound = translate.inbound_from_form(
                form, person_key=found.person_key, checkin_id=found.checkin_id, received_at=self.clock()
            )
        except translate.BadForm:
            return self._html("gone.html", status=400, title="That answer did not come through",
                              message="Go back to the check-in page and answer again.")  # fmt: skip
        replies = await asyncio.to_thread(self.service.handle, inbound)
        if replies:  # none for a form posted twice: the page already shows its answer
            cookie = await self.storage.load_session(request)
            same = cookie.get("checkin") == found.checkin_id
            log = (list(cookie.get("log", [])) if same else []) + [["you", _clip(translate.said(inbound))]]
            log += [["rapport", _clip(m.text)] for m in replies]
            resumed = inbound.kind == "command" and inbound.command == "start"
            cookie.update(
                {"checkin": found.checkin_id, "log": log[-KEEP:], "ask": _pending(replies), "resumed": resumed}
            )
            response = web.HTTPSeeOther(request.path)
            await self.storage.save_session(request, response, cookie)
            raise response
        raise web.HTTPSeeOther(request.path)
