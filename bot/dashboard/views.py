"""The dashboard's pages. Each handler reads in one transaction (``Settings.run``), checks access
through ``auth`` (someone else's person or promise is a 404), writes an audit entry for every
view of a person's data, and renders a template; Jinja autoescape shows people's words as text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.dashboard import auth, charts, forms, portfolio, programs
from bot.dashboard.app import empty_form, form, render, settings, viewer
from memory import audit, digests, promises, stories
from memory.anonymity import SliceRefused
from memory.errors import RapportError
from memory.models import OutboxMessage, Owner, Person, Program, Promise


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(text="not found")


async def portfolio_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    only = request.query.get("filter")
    if only is not None and only not in portfolio.FILTERS:
        raise web.HTTPBadRequest(text=f"unknown filter (use one of: {', '.join(portfolio.FILTERS)})")
    now = cfg.clock()

    def load(s: Session) -> list[portfolio.Row]:
        rows = portfolio.rows(s, who, step=cfg.config.changes.rating_delta, only=only)
        audit.record(s, actor=who.key, action="portfolio.view", now=now, detail={"people": len(rows), "filter": only})
        return rows

    rows = await cfg.run(load)
    sparks = {r.key: charts.sparkline(r.ratings, low=low, high=high) for r in rows
              for _k, low, high in [_scale_of(cfg.config, r.program)]}  # fmt: skip
    return render(request, "portfolio.html", {"rows": rows, "sparks": sparks, "filters": portfolio.FILTERS,
                                              "only": only})  # fmt: skip


def _scale_of(config: Config, program: str | None) -> tuple[str | None, int, int]:
    found = config.programs.get(program or "")
    return programs.scale(found) if found is not None else (None, 0, 10)


def _story_chart(story: stories.Story, config: Config) -> Any:
    series: dict[str, list[tuple[str, int]]] = {}
    for p in story.points:
        if p.status == "completed" and p.rating is not None:
            series.setdefault(p.program, []).append((p.wave or p.at.date().isoformat(), p.rating))
    if not series:
        return None
    labels = sorted({label for pts in series.values() for label, _ in pts})
    values = {name: [dict(pts).get(label) for label in labels] for name, pts in series.items()}
    sentence = "; ".join(f"{name}: " + ", ".join(f"{w} rated {r}" for w, r in pts) for name, pts in series.items())
    scales = [_scale_of(config, name) for name in series]
    low, high = min(s[1] for s in scales), max(s[2] for s in scales)
    return charts.line("Ratings over time", labels, values, low=low, high=high, label=f"Ratings over time. {sentence}")


async def story_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    key = request.match_info["key"]
    now = cfg.clock()

    def load(s: Session) -> stories.Story | None:
        person = auth.visible_person(s, who, key)
        if person is None:
            return None
        audit.record(s, actor=who.key, action="story.view", now=now, person_id=person.id)
        return stories.build_story(s, person, step=cfg.config.changes.rating_delta)

    story = await cfg.run(load)
    if story is None:
        raise _not_found()
    previous: dict[int, int | None] = {}
    last: dict[str, int] = {}
    for p in story.points:
        previous[p.checkin_id] = last.get(p.program)
        if p.status == "completed" and p.rating is not None:
            last[p.program] = p.rating
    return render(request, "story.html", {
        "story": story, "chart": _story_chart(story, cfg.config), "previous": previous,
        "add_form": await empty_form(request, forms.PromiseForm),
        "status_form": await empty_form(request, forms.StatusForm),
    })  # fmt: skip


def _due(value: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(value, dt.time(12), tzinfo=dt.UTC) if value else None


async def add_promise(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    bound = await form(request, forms.PromiseForm)
    key = request.match_info["key"]
    now = cfg.clock()

    def save(s: Session) -> bool:
        person = auth.visible_person(s, who, key)
        if person is None:
            return False
        owner = s.get(Owner, who.owner_id)
        p = promises.add_promise(s, person=person, owner=owner, text=bound.text.data or "", now=now,
                                 due_at=_due(bound.due.data), source="web")  # fmt: skip
        audit.record(s, actor=who.key, action="promise.add", now=now, person_id=person.id, detail={"promise": p.id})
        return True

    if bound.errors:
        raise web.HTTPBadRequest(text="a promise needs words (and a valid date, if any)")
    if not await cfg.run(save):
        raise _not_found()
    raise web.HTTPSeeOther(f"{request.app.router['story'].url_for(key=key)}#promises")


def _visible_promise(s: Session, who: auth.Viewer, promise_id: int) -> tuple[Promise, Person] | None:
    promise = promises.get_promise(s, promise_id)
    if promise is None:
        return None
    person = s.get(Person, promise.person_id)
    if person is None or auth.visible_person(s, who, person.key) is None:
        return None
    program = s.get(Program, promise.program_id) if promise.program_id else None
    if program is not None and program.anonymous:
        return None
    return promise, person


def _promise_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise _not_found() from None


async def promises_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    now = cfg.clock()

    def load(s: Session) -> list[tuple[Promise, Person]]:
        people = {p.id: p for p in s.scalars(auth.visible_people_query(who))}
        anonymous = set(s.scalars(select(Program.id).where(Program.anonymous.is_(True))))
        rows = [(p, people[p.person_id]) for p in promises.list_promises(s, now=now)
                if p.person_id in people and p.program_id not in anonymous]  # fmt: skip
        audit.record(s, actor=who.key, action="promises.view", now=now, detail={"promises": len(rows)})
        return rows

    rows = await cfg.run(load)
    return render(request, "promises.html", {"rows": rows, "now": now, "overdue": promises.is_overdue,
                                             "status_form": await empty_form(request, forms.StatusForm)})  # fmt: skip


async def edit_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    pid = _promise_id(request)
    now = cfg.clock()

    def load(s: Session) -> tuple[Promise, Person] | None:
        found = _visible_promise(s, who, pid)
        if found is not None:
            audit.record(
                s, actor=who.key, action="promise.view", now=now, person_id=found[1].id, detail={"promise": pid}
            )
        return found

    found = await cfg.run(load)
    if found is None:
        raise _not_found()
    promise, person = found
    bound = await empty_form(
        request,
        forms.PromiseForm,
        data={"text": promise.text, "due": promise.due_at.date() if promise.due_at else None},
    )
    return render(request, "promise_edit.html", {"promise": promise, "person": person, "form": bound})


async def edit_promise(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    pid = _promise_id(request)
    bound = await form(request, forms.PromiseForm)
    now = cfg.clock()

    def save(s: Session) -> str | None:
        found = _visible_promise(s, who, pid)
        if found is None:
            return None
        promise, person = found
        due = _due(bound.due.data)
        try:
            promises.edit_promise(s, promise=promise, text=bound.text.data or "", due_at=due, clear_due=due is None)
        except RapportError as exc:  # not open any more, or a due date before the promise
            raise web.HTTPBadRequest(text=str(exc)) from exc
        audit.record(s, actor=who.key, action="promise.edit", now=now, person_id=person.id, detail={"promise": pid})
        return person.key

    if bound.errors:
        raise web.HTTPBadRequest(text="a promise needs words (and a valid date, if any)")
    key = await cfg.run(save)
    if key is None:
        raise _not_found()
    raise web.HTTPSeeOther(f"{request.app.router['story'].url_for(key=key)}#promises")


async def promise_status(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    pid = _promise_id(request)
    bound = await form(request, forms.StatusForm)
    now = cfg.clock()

    def save(s: Session) -> str | None:
        found = _visible_promise(s, who, pid)
        if found is None:
            return None
        promise, person = found
        promises.set_status(s, promise=promise, status=bound.status.data, now=now)
        audit.record(s, actor=who.key, action="promise.status", now=now, person_id=person.id,
                     detail={"promise": pid, "status": bound.status.data})  # fmt: skip
        return person.key

    if bound.errors:
        raise web.HTTPBadRequest(text="unknown status")
    key = await cfg.run(save)
    if key is None:
        raise _not_found()
    back = request.query.get("back")
    target = (
        request.app.router["promises"].url_for() if back == "promises" else request.app.router["story"].url_for(key=key)
    )
    raise web.HTTPSeeOther(f"{target}#promise-{pid}")


async def programs_page(request: web.Request) -> web.Response:
    cfg = settings(request)
    names = list(cfg.config.programs)
    return render(request, "programs.html", {"programs": [(n, cfg.config.programs[n]) for n in names]})


async def program_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)
    name = request.match_info["name"]
    config = cfg.config.programs.get(name)
    if config is None:
        raise _not_found()
    filters: dict[str, object] = dict(request.query)
    now = cfg.clock()

    def load(s: Session) -> programs.ProgramPage | None:
        row = s.scalar(select(Program).where(Program.name == name))
        if row is None:
            return None
        audit.record(s, actor=who.key, action="program.view", now=now, detail={"program": name})
        if row.anonymous:
            return programs.anonymous(s, who, row, config, now=now, filters=filters)
        if set(filters) - {"wave"}:
            raise SliceRefused(name, "this page has no filters")
        return programs.attributed(s, who, row, config)

    try:
        page = await cfg.run(load)
    except SliceRefused as exc:
        return render(request, "error.html", {"title": "This view is not available", "message": str(exc)},
                      status=400)  # fmt: skip
    if page is None:
        raise _not_found()
    with_nps = [w for w in page.waves if w.nps is not None]
    trend = None
    if with_nps:
        label = "NPS by wave: " + ", ".join(f"{w.wave}: {w.nps.score:+.0f}" for w in with_nps if w.nps)
        trend = charts.line("NPS by wave (95% margin in the table)", [w.wave for w in with_nps],
                            {"NPS": [w.nps.score if w.nps else None for w in with_nps]},
                            low=-100, high=100, label=label)  # fmt: skip
    dist = None
    if page.distribution:
        text = ", ".join(f"{n} rated {v}" for v, n in page.distribution.items())
        dist = charts.bars(f"Ratings, wave {page.latest}", page.distribution, low=page.low, high=page.high,
                           label=f"Score distribution: {text}")  # fmt: skip
    return render(request, "program.html", {"page": page, "trend": trend, "dist": dist})


async def digests_page(request: web.Request) -> web.Response:
    cfg, who = settings(request), viewer(request)

    def load(s: Session) -> list[tuple[OutboxMessage, str]]:
        query = select(OutboxMessage, Owner.key).join(Owner, OutboxMessage.owner_id == Owner.id).where(
            OutboxMessage.kind == "digest", OutboxMessage.status == "sent")  # fmt: skip
        if not who.is_admin:
            query = query.where(OutboxMessage.owner_id == who.owner_id)
        return [(m, k) for m, k in s.execute(query.order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc()))]

    return render(request, "digests.html", {"rows": await cfg.run(load)})


async def digest_page(request: web.Request) -> web.Response:
    from bot.digests import render_digest

    cfg, who = settings(request), viewer(request)
    mid = _promise_id(request)
    now = cfg.clock()

    def load(s: Session) -> Any:
        m = s.get(OutboxMessage, mid)
        if m is None or m.kind != "digest" or m.status != "sent" or (not who.is_admin and m.owner_id != who.owner_id):
            return None
        payload = m.payload or {}
        try:
            owner, since, until = (str(payload["owner"]), dt.datetime.fromisoformat(payload["since"]),
                                   dt.datetime.fromisoformat(payload["until"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None  # a row the dispatcher would also have refused: nothing to rebuild
        d = digests.build_digest(
            s, owner=owner, since=since, until=until, threshold=cfg.config.digests.rating_threshold,
            quote_chars=cfg.config.digests.quote_chars,
        )  # fmt: skip
        audit.record(s, actor=who.key, action="digest.view", now=now, detail={"digest": mid})
        return m, render_digest(d, "text")

    found = await cfg.run(load)
    if found is None:
        raise _not_found()
    return render(request, "digest.html", {"message": found[0], "rendered": found[1]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", portfolio_page, name="portfolio")
    r.add_get("/people/{key}", story_page, name="story")
    r.add_post("/people/{key}/promises", add_promise, name="add_promise")
    r.add_get("/promises", promises_page, name="promises")
    r.add_get("/promises/{id}/edit", edit_page, name="edit_promise")
    r.add_post("/promises/{id}/edit", edit_promise, name="edit_promise_post")
    r.add_post("/promises/{id}/status", promise_status, name="promise_status")
    r.add_get("/programs", programs_page, name="programs")
    r.add_get("/programs/{name}", program_page, name="program")
    r.add_get("/digests", digests_page, name="digests")
    r.add_get("/digests/{id}", digest_page, name="digest")
