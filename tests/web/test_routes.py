"""The dashboard's routes, in process (aiohttp test client): login, access, CSRF, escaping,
anonymity, promises, audit."""

from __future__ import annotations

import datetime as dt

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import App
from bot.dashboard import auth
from memory import audit
from memory.db import transaction
from memory.models import Promise
from tests.web.conftest import log_in, token_of
from tests.web.world import NOW, World

PAGES = ["/dashboard/", "/dashboard/people/ann", "/dashboard/promises", "/dashboard/programs",
         "/dashboard/programs/customers", "/dashboard/programs/employees", "/dashboard/digests"]  # fmt: skip


async def test_pages_need_a_login(client: TestClient) -> None:
    for path in PAGES:
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/dashboard/login"), path
    response = await client.post("/dashboard/people/ann/promises", data={"text": "x"}, allow_redirects=False)
    assert response.status == 403


async def test_root_leads_to_the_dashboard(client: TestClient) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/dashboard/"


async def test_login_sets_a_safe_cookie_and_shows_only_my_people(client: TestClient) -> None:
    token = await token_of(client, "/dashboard/login")
    response = await client.post("/dashboard/login", allow_redirects=False, data={
        "owner": "alice@example.com", "password": "correct horse battery staple", "csrf_token": token})  # fmt: skip
    cookie = response.headers.getall("Set-Cookie")[-1].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/dashboard" in cookie
    assert "secure" not in cookie  # public_url is unset (plain http): auto means not Secure
    page = await (await client.get("/dashboard/")).text()
    assert "Dan" in page
    assert "Carl" not in page
    assert "Emp 0" in page  # alice's employee, shown as a person, without the anonymous program's answers
    assert "anon words" not in page


async def test_wrong_password_is_refused_and_login_is_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        token = await token_of(client, "/dashboard/login")
        r = await client.post("/dashboard/login", data={"owner": "alice@example.com", "password": "nope",
                                                        "csrf_token": token})  # fmt: skip
        assert r.status == 401
    token = await token_of(client, "/dashboard/login")
    r = await client.post("/dashboard/login", data={"owner": "alice@example.com",
                          "password": "correct horse battery staple", "csrf_token": token})  # fmt: skip
    assert r.status == 429
    assert "Too many failed logins" in await r.text()


async def test_owner_b_gets_404_on_owner_a_person_and_promise(client: TestClient, world: World) -> None:
    await log_in(client, "bob@example.com")
    assert (await client.get("/dashboard/people/ann")).status == 404
    assert (await client.get("/dashboard/people/nobody")).status == 404
    assert (await client.get(f"/dashboard/promises/{world.ann_promise}/edit")).status == 404
    token = await token_of(client, "/dashboard/people/carl")
    r = await client.post(f"/dashboard/promises/{world.ann_promise}/status",
                          data={"status": "kept", "csrf_token": token}, allow_redirects=False)  # fmt: skip
    assert r.status == 404
    r = await client.post("/dashboard/people/ann/promises", data={"text": "sneaky", "csrf_token": token},
                          allow_redirects=False)  # fmt: skip
    assert r.status == 404
    promises_page = await (await client.get("/dashboard/promises")).text()
    assert "Carl&#39;s promise" in promises_page
    assert "dedicated contact" not in promises_page


async def test_admin_sees_everyone(web_app: App, client: TestClient) -> None:
    with transaction(web_app.sessions) as s:
        auth.set_admin(s, owner_key="bob@example.com", admin=True, now=NOW)
    await log_in(client, "bob@example.com")
    page = await (await client.get("/dashboard/")).text()
    assert "Dan" in page
    assert "Carl" in page
    assert (await client.get("/dashboard/people/ann")).status == 200


async def test_a_form_without_its_csrf_token_is_refused(web_app: App, client: TestClient, world: World) -> None:
    await log_in(client)
    for data in ({"status": "kept"}, {"status": "kept", "csrf_token": "20990101000000##forged"}):
        r = await client.post(f"/dashboard/promises/{world.ann_promise}/status", data=data, allow_redirects=False)
        assert r.status == 403
    r = await client.post("/dashboard/login", data={"owner": "alice@example.com", "password": "x"})
    assert r.status == 403
    with transaction(web_app.sessions) as s:
        assert s.get(Promise, world.ann_promise).status == "open"


async def test_words_are_text_on_every_page(client: TestClient, world: World) -> None:
    await log_in(client)
    for path in [*PAGES, f"/dashboard/promises/{world.ann_promise}/edit", f"/dashboard/digests/{world.digest_id}"]:
        response = await client.get(path)
        body = await response.text()
        assert response.status in (200, 400), path
        assert "<img" not in body, path  # the seeded answer never became an element
    story = await (await client.get("/dashboard/people/ann")).text()
    assert "&lt;img src=x onerror=alert(1)&gt; support got slow" in story
    assert "<script" not in story


async def test_story_has_a_chart_with_a_text_alternative(client: TestClient) -> None:
    await log_in(client)
    story = await (await client.get("/dashboard/people/ann")).text()
    assert 'role="img"' in story
    assert "2025-h2 rated 9, 2026-h1 rated 4" in story
    assert "<table" in story
    assert "(-5 from 9)" in story
    assert "They cut the team" in story
    assert "fast answers" in story


async def test_portfolio_filters(client: TestClient) -> None:
    await log_in(client)
    declining = await (await client.get("/dashboard/?filter=declining")).text()
    assert "Ann" in declining
    assert "Dan" not in declining
    silent = await (await client.get("/dashboard/?filter=silent")).text()
    assert "Dan" in silent
    assert "Ann" not in silent
    changed = await (await client.get("/dashboard/?filter=changed")).text()
    assert "Ann" in changed
    assert "Dan" not in changed
    assert (await client.get("/dashboard/?filter=employees")).status == 400


async def test_anonymous_program_below_k_shows_nothing_and_refuses_slices(client: TestClient) -> None:
    await log_in(client)
    page = await (await client.get("/dashboard/programs/employees")).text()
    assert "hidden" in page
    assert "fewer than 5 respondents" in page
    assert "anon words" not in page
    assert "Emp" not in page
    for query in ("person=emp0", "owner=alice@example.com", "since=2026-01-01", "wave=2026-q2&team=x"):
        r = await client.get(f"/dashboard/programs/employees?{query}")
        assert r.status == 400, query
        assert "anon words" not in await r.text()
    r = await client.get("/dashboard/programs/employees?wave=open-wave")
    assert r.status == 400


async def test_attributed_program_page_counts_only_my_people(client: TestClient) -> None:
    await log_in(client)
    page = await (await client.get("/dashboard/programs/customers")).text()
    assert "2026-h1" in page
    assert "50%" in page
    assert "too few ratings for a margin" in page
    assert "Carl" not in page


async def test_promise_add_edit_close_through_the_page(web_app: App, client: TestClient, world: World) -> None:
    await log_in(client)
    token = await token_of(client, "/dashboard/people/ann")
    r = await client.post("/dashboard/people/ann/promises", data={"text": "  Call   back ", "due": "2026-07-01",
                          "csrf_token": token}, allow_redirects=False)  # fmt: skip
    assert r.status == 303
    r = await client.post(f"/dashboard/promises/{world.ann_promise}/edit", data={"text": "A named contact", "due": "",
                          "csrf_token": token}, allow_redirects=False)  # fmt: skip
    assert r.status == 303
    r = await client.post(f"/dashboard/promises/{world.ann_promise}/status", data={"status": "broken",
                          "csrf_token": token}, allow_redirects=False)  # fmt: skip
    assert r.status == 303
    r = await client.post("/dashboard/people/ann/promises", data={"text": "   ", "csrf_token": token})
    assert r.status == 400
    with transaction(web_app.sessions) as s:
        edited = s.get(Promise, world.ann_promise)
        assert (edited.text, edited.due_at, edited.status) == ("A named contact", None, "broken")
        added = s.scalar(select(Promise).where(Promise.text == "Call back"))
        assert added is not None
        assert added.due_at == dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
        assert added.source == "web"
    broken = await (await client.get("/dashboard/?filter=broken")).text()
    assert "Ann" in broken


async def test_every_view_of_a_person_is_audited(web_app: App, client: TestClient) -> None:
    await log_in(client)
    await client.get("/dashboard/people/ann")
    with transaction(web_app.sessions) as s:
        rows = audit.entries(s, actor="alice@example.com")
        ann = [e for e in rows if e.action == "story.view"]
        assert len(ann) == 1
        assert ann[0].person_id is not None
        assert ann[0].at == NOW
        assert all("img" not in str(e.detail) for e in rows)


async def test_login_link_is_one_time_and_expires(web_app: App, client: TestClient) -> None:
    with transaction(web_app.sessions) as s:
        token = auth.make_login_token(s, owner_key="alice@example.com", now=NOW, ttl=dt.timedelta(minutes=15))
        old = auth.make_login_token(s, owner_key="alice@example.com", now=NOW - dt.timedelta(hours=1),
                                    ttl=dt.timedelta(minutes=15))  # fmt: skip
    page = await client.get(f"/dashboard/login/link?token={token}")
    assert page.status == 200  # opening the link does not spend it (link previews)
    csrf = await token_of(client, f"/dashboard/login/link?token={token}")
    r = await client.post("/dashboard/login/link", data={"token": token, "csrf_token": csrf}, allow_redirects=False)
    assert r.status == 303
    assert (await client.get("/dashboard/")).status == 200
    csrf = await token_of(client, "/dashboard/")
    await client.post("/dashboard/logout", data={"csrf_token": csrf})
    for used in (token, old, "forged"):
        csrf = await token_of(client, "/dashboard/login/link")
        r = await client.post("/dashboard/login/link", data={"token": used, "csrf_token": csrf}, allow_redirects=False)
        assert r.status == 403, used
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 303


async def test_digest_archive_is_per_owner(client: TestClient, world: World) -> None:
    await log_in(client, "bob@example.com")
    assert "alice@example.com" not in await (await client.get("/dashboard/digests")).text()
    assert (await client.get(f"/dashboard/digests/{world.digest_id}")).status == 404


async def test_security_headers(client: TestClient) -> None:
    r = await client.get("/dashboard/login")
    assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"


async def test_cookies_are_secure_behind_https(web_app: App, world: World) -> None:
    from aiohttp.test_utils import TestServer

    from bot.dashboard import make_dashboard
    from bot.web import make_web_app

    config = web_app.config.model_copy(update={"web": web_app.config.web.model_copy(
        update={"public_url": "https://rapport.example.com"})})  # fmt: skip
    dashboard = make_dashboard(sessions=web_app.sessions, config=config, clock=lambda: NOW)
    async with TestClient(TestServer(make_web_app(dashboard=dashboard))) as c:
        page = await c.get("/dashboard/login")
        assert "secure" in page.headers["Set-Cookie"].lower()


async def test_a_digest_row_without_its_period_is_not_found(web_app: App, client: TestClient) -> None:
    from memory.models import OutboxMessage, Owner

    with transaction(web_app.sessions) as s:
        alice = s.scalar(select(Owner).where(Owner.key == "alice@example.com"))
        row = OutboxMessage(key="digest:broken", kind="digest", owner_id=alice.id, payload={"owner": alice.key},
                            status="sent", not_before=NOW, sent_at=NOW, created_at=NOW)  # fmt: skip
        s.add(row)
        s.flush()
        broken = row.id
    await log_in(client)
    assert (await client.get(f"/dashboard/digests/{broken}")).status == 404
    assert (await client.get("/dashboard/digests/not-a-number")).status == 404
