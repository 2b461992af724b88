"""The dashboard sub-application: sessions, security headers, login and logout.

Sessions are aiohttp-session's encrypted cookies (Fernet, from ``cryptography``): HttpOnly,
SameSite=Lax, Secure when the public URL is https (``web.dashboard.secure_cookies``), scoped to
``/dashboard``. Logging in starts a new session (no fixation). Every page but the login pages
needs a session with an owner; every POST validates its CSRF token first (``forms``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, resolve_secret
from bot.dashboard import auth, forms
from bot.engine import owner_login
from memory import audit
from memory.db import transaction

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PREFIX = "/dashboard"
T = TypeVar("T")
Clock = Callable[[], dt.datetime]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = {"login", "login_post", "login_link", "login_link_post", "login_mail_post", "static"}


class Settings:
    """What every handler needs: the database, the config, the clock and the form secret."""

    def __init__(self, *, sessions: sessionmaker[Session], config: Config, clock: Clock, secret: bytes) -> None:
        self.sessions = sessions
        self.config = config
        self.clock = clock
        # Separate keys for the cookie and the forms, both derived from the one configured secret.
        self.csrf_secret = hashlib.sha256(b"rapport-csrf:" + secret).digest()

    async def run(self, fn: Callable[[Session], T]) -> T:
        """One transaction in a worker thread, so the event loop never waits on the database."""

        def work() -> T:
            with transaction(self.sessions) as s:
                return fn(s)

        return await asyncio.to_thread(work)


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


def settings(request: web.Request) -> Settings:
    return request.config_dict[SETTINGS]


VIEWER: web.RequestKey[auth.Viewer] = web.RequestKey("viewer", auth.Viewer)


def viewer(request: web.Request) -> auth.Viewer:
    v = request.get(VIEWER)
    assert isinstance(v, auth.Viewer)
    return v


def _secret(config: Config) -> bytes:
    value = resolve_secret(config.web.dashboard.session_secret)
    if value:
        return value.encode("utf-8")
    log.warning("web.dashboard.session_secret is unset: this process made its own key; logins end at restart")
    return secrets.token_bytes(32)


def _secure(config: Config) -> bool:
    mode = config.web.dashboard.secure_cookies
    if mode == "auto":
        return (config.web.public_url or "").lower().startswith("https://")
    return mode == "always"


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    # No script runs on these pages; pygal's SVG carries its own <style>, hence style 'unsafe-inline'.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # login links carry a token in the URL
    response.headers["X-Frame-Options"] = "DENY"
    if request.match_info.route.name != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in PUBLIC:
        return await handler(request)
    session = await aiohttp_session.get_session(request)
    owner_id = session.get("owner_id")
    found = await settings(request).run(lambda s: auth.viewer_for(s, int(owner_id))) if owner_id else None
    if found is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(request.app.router["login"].url_for())
        raise web.HTTPForbidden(text="log in first")
    request[VIEWER] = found
    return await handler(request)


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    context.setdefault("viewer", request.get(VIEWER))
    return aiohttp_jinja2.render_template(template, request, context, status=status)


async def session_of(request: web.Request) -> aiohttp_session.Session:
    return await aiohttp_session.get_session(request)


async def form(request: web.Request, form_class: type[forms.Protected], **kwargs: Any) -> Any:
    """The posted form, bound to the session's CSRF value; refused (403) when the token is wrong."""
    session = await session_of(request)
    data = await request.post()
    bound = forms.bind(form_class, secret=settings(request).csrf_secret, session=session, posted=data, **kwargs)
    bound.validate()
    if "csrf_token" in bound.errors:
        raise web.HTTPForbidden(text="this form has expired or did not come from Rapport; reload the page")
    return bound


async def empty_form(request: web.Request, form_class: type[forms.Protected], **kwargs: Any) -> Any:
    session = await session_of(request)
    return forms.bind(form_class, secret=settings(request).csrf_secret, session=session, **kwargs)


async def _logout_form(request: web.Request) -> dict[str, Any]:
    """Every logged-in page carries the logout button, and so its CSRF token."""
    if request.get(VIEWER) is None:
        return {}
    return {"logout_form": await empty_form(request, forms.ConfirmForm)}


# Login, login links, logout ----------------------------------------------------------------------


async def _login_forms(request: web.Request) -> dict[str, Any]:
    login, mail = await empty_form(request, forms.LoginForm), await empty_form(request, forms.LinkRequestForm)
    return {"form": login, "mail": mail}


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", {**await _login_forms(request), "error": None})


async def login(request: web.Request) -> web.Response:
    cfg = settings(request)
    bound = await form(request, forms.LoginForm)
    key = (bound.owner.data or "").strip()
    password = bound.password.data or ""
    now = cfg.clock()
    d = cfg.config.web.dashboard
    window = dt.timedelta(minutes=d.login_window_minutes)
    buckets = [f"owner:{key.lower()}", f"ip:{request.remote or '-'}"]
    complete = not bound.errors

    def attempt(s: Session) -> tuple[str, auth.Viewer | None]:
        if auth.login_blocked(s, buckets=buckets, now=now, window=window, limit=d.login_attempts):
            return "blocked", None
        found = auth.check_password(s, owner_key=key, password=password, now=now) if complete else None
        if found is None:
            auth.record_failure(s, buckets=buckets, now=now, window=window)
            return "wrong", None
        auth.clear_failures(s, bucket=buckets[0])
        audit.record(s, actor=found.key, action="login", now=now)
        return "ok", found

    outcome, found = await cfg.run(attempt)
    if outcome == "blocked":
        message = f"Too many failed logins. Try again in {d.login_window_minutes} minutes."
        return render(request, "login.html", {**await _login_forms(request), "error": message}, status=429)
    if found is None:
        return render(request, "login.html", {**await _login_forms(request),
                      "error": "That owner and password do not match."}, status=401)  # fmt: skip
    await _start_session(request, found)
    raise web.HTTPSeeOther(request.app.router["portfolio"].url_for())


async def _start_session(request: web.Request, found: auth.Viewer) -> None:
    session = await aiohttp_session.new_session(request)
    session["owner_id"] = found.owner_id


async def link_page(request: web.Request) -> web.Response:
    # A GET never spends the token: link previews in chat apps and mail scanners open links.
    token = request.query.get("token", "")
    return render(request, "link.html", {"form": await empty_form(request, forms.ConfirmForm), "token": token})


async def use_link(request: web.Request) -> web.Response:
    cfg = settings(request)
    await form(request, forms.ConfirmForm)
    token = str((await request.post()).get("token", ""))
    now = cfg.clock()

    def spend(s: Session) -> auth.Viewer | None:
        found = auth.use_login_token(s, token=token, now=now)
        if found is not None:
            audit.record(s, actor=found.key, action="login.link", now=now)
        return found

    found = await cfg.run(spend)
    if found is None:
        return render(request, "error.html", {"title": "This login link cannot be used",
                      "message": "It has expired or was used already. Ask for a new one."}, status=403)  # fmt: skip
    await _start_session(request, found)
    raise web.HTTPSeeOther(request.app.router["portfolio"].url_for())


async def mail_link(request: web.Request) -> web.Response:
    """The login page's "E-mail me a login link": the same page whether or not the address is an
    owner's, so the form reveals nobody. Every request counts against the address and the client
    (the login rate limit's table and numbers); the link goes out through the outbox, never in
    this request, so the answer takes as long either way."""
    cfg = settings(request)
    bound = await form(request, forms.LinkRequestForm)
    address = (bound.email.data or "").strip().lower()
    now = cfg.clock()
    d = cfg.config.web.dashboard
    window = dt.timedelta(minutes=d.login_window_minutes)
    buckets = [f"mail-to:{address}", f"mail-ip:{request.remote or '-'}"]

    def ask(s: Session) -> bool:
        if auth.login_blocked(s, buckets=buckets, now=now, window=window, limit=d.login_attempts):
            return False
        auth.record_failure(s, buckets=buckets, now=now, window=window)
        owner = auth.owner_by_email(s, address) if address and not bound.errors else None
        if owner is not None:
            owner_login.request_login_link(s, owner=owner, now=now, via="email")
        return True

    if not await cfg.run(ask):
        message = f"Too many requests for login links. Try again in {d.login_window_minutes} minutes."
        return render(request, "login.html", {**await _login_forms(request), "error": message}, status=429)
    return render(request, "link_sent.html", {"minutes": d.login_link_minutes})


async def logout(request: web.Request) -> web.Response:
    await form(request, forms.ConfirmForm)
    (await session_of(request)).invalidate()
    raise web.HTTPSeeOther(request.app.router["login"].url_for())


def make_dashboard(*, sessions: sessionmaker[Session], config: Config, clock: Clock) -> web.Application:
    from bot.dashboard import views

    d = config.web.dashboard
    secret = _secret(config)
    app = web.Application(middlewares=[headers])
    app[SETTINGS] = Settings(sessions=sessions, config=config, clock=clock, secret=secret)
    fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"rapport-session:" + secret).digest()))
    storage = EncryptedCookieStorage(
        fernet, cookie_name="rapport_session", max_age=d.session_hours * 3600, path=PREFIX,
        secure=_secure(config), httponly=True, samesite="Lax",
    )  # fmt: skip
    aiohttp_session.setup(app, storage)
    app.middlewares.append(require_login)
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        context_processors=[_logout_form, aiohttp_jinja2.request_processor],
    )  # fmt: skip
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login, name="login_post")
    app.router.add_get("/login/link", link_page, name="login_link")
    app.router.add_post("/login/link", use_link, name="login_link_post")
    app.router.add_post("/login/email", mail_link, name="login_mail_post")
    app.router.add_post("/logout", logout, name="logout")
    views.add_routes(app)
    app.router.add_static("/static", HERE / "static", name="static")
    return app
