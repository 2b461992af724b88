"""``/c/{token}/mine``: the person's own answers on the web link, to read, correct or delete.

The same link that opens the check-in shows what the person told us (``OwnData.summary``); each
answer, and each comment on a promise (numbered ``p12``), has a "Correct" form and a "Delete" link
that leads to a confirmation page first (deleting a comment keeps the verdict). The
rules are the engine's (``bot.engine.mydata``): only the link's person's own answers can change.
Forms carry the page's nonce and CSRF value; POST/redirect/GET, no JavaScript, autoescaped HTML.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from bot.channels.web.translate import NAME
from bot.engine.mydata import NOT_YOURS

if TYPE_CHECKING:
    from bot.channels.web.receiver import Receiver

#: What the page says after a change (the redirect names one of these, never words).
NOTICES = {
    "deleted": "Done: the answer is deleted, with every quote of it we kept.",
    "corrected": "Done: the answer now reads as you wrote it, and the old words are gone from what we kept.",
    "missing": "That answer is not one of yours any more.",
    "comment_deleted": "Done: the comment is deleted, with every quote of it we kept; your verdict stays.",
    "unusable": "I couldn't use that correction, so the answer is as it was: the new words must not be empty "
    "or too long, and a rating answer needs a number from its scale first.",
}


class MinePage:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.own = receiver.service.own

    async def page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await asyncio.to_thread(self.receiver._visitor, token)
        if isinstance(found, str) or found is None:
            return self.receiver._kind(found or "forged")
        entries = await asyncio.to_thread(self.own.summary, NAME, found.person_key) or []
        confirm = request.query.get("delete", "")
        asked = asked_comment = None
        if confirm.isdigit() and len(confirm) <= 12:
            asked = await asyncio.to_thread(self.own.item, NAME, found.person_key, int(confirm))
        asked_comment = next(((e, k) for e in entries for k in e.outcomes if k.ref == confirm and k.comment), None)
        notice = NOTICES.get(request.query.get("done", ""))
        nonce, csrf = self.receiver._fresh(token)
        return self.receiver._html(
            "mine.html", name=found.name, entries=entries, asked=asked, asked_comment=asked_comment, notice=notice,
            nonce=nonce, csrf=csrf, back=f"/c/{token}",
        )  # fmt: skip

    async def change(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await asyncio.to_thread(self.receiver._visitor, token)
        if isinstance(found, str) or found is None:
            return self.receiver._kind(found or "forged")
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        expected = self.receiver._csrf(token, form.get("nonce", "")).encode()
        answer = form.get("answer", "")
        comment = answer[:1] == "p" and answer[1:].isdigit()
        if not hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), expected) or not (
            (answer.isdigit() or comment) and len(answer) <= 13
        ):
            return self.receiver._html("gone.html", status=403, title="This form has expired",
                                       message="Go back to your answers and try again.")  # fmt: skip
        now = self.receiver.clock()
        here = request.path
        if comment:
            if form.get("action") not in ("delete", "correct"):
                raise web.HTTPSeeOther(here)
            text = form.get("text", "") if form.get("action") == "correct" else None
            problem = await asyncio.to_thread(
                self.own.change_comment, NAME, found.person_key, int(answer[1:]), text, now=now, via="web"
            )
            outcome = "corrected" if text is not None else "comment_deleted"
            raise web.HTTPSeeOther(
                f"{here}?done={'missing' if problem == NOT_YOURS else 'unusable' if problem else outcome}"
            )
        if form.get("action") == "delete":
            done = await asyncio.to_thread(self.own.delete, NAME, found.person_key, int(answer), now=now, via="web")
            raise web.HTTPSeeOther(f"{here}?done={'deleted' if done else 'missing'}")
        if form.get("action") == "correct":
            problem = await asyncio.to_thread(
                self.own.correct, NAME, found.person_key, int(answer), form.get("text", ""), now=now, via="web"
            )
            raise web.HTTPSeeOther(f"{here}?done={'corrected' if problem is None else 'unusable'}")
        raise web.HTTPSeeOther(f"{here}?done=corrected")
        raise web.HTTPSeeOther(here)
