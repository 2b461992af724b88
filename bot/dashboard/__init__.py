"""The owners' web app (``/dashboard/``): portfolio, stories, promises, programs, digests.

``make_dashboard`` returns an aiohttp sub-application that ``bot.web.make_web_app`` mounts beside
the webhooks. Templates live in ``bot/dashboard/templates`` and the stylesheet in
``bot/dashboard/static``; see ``docs/web.md``.
"""

from bot.dashboard.app import make_dashboard

__all__ = ["make_dashboard"]
