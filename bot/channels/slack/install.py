"""Multi-workspace Slack installs, kept in Rapport's own database.

slack-sdk's ``SQLAlchemyInstallationStore`` and ``SQLAlchemyOAuthStateStore`` do the storing
(their tables come from the ``0002_slack`` migration, never from ``create_tables``). Both are
synchronous, and Bolt's ``AsyncApp`` wants the async interfaces, so the small adapters below run
each call in a worker thread: the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Engine, select

log = logging.getLogger(__name__)

#: Bot scopes Rapport asks for when a workspace installs it (the same as slack-manifest.yaml).
BOT_SCOPES = ("chat:write", "commands", "im:history", "im:read", "im:write", "users:read", "users:read.email")


class ThreadedInstallationStore(AsyncInstallationStore):
    """``AsyncInstallationStore`` over slack-sdk's synchronous SQLAlchemy store."""

    def __init__(self, store: SQLAlchemyInstallationStore) -> None:
        self.store = store

    @classmethod
    def on(cls, engine: Engine, *, client_id: str) -> ThreadedInstallationStore:
        return cls(SQLAlchemyInstallationStore(client_id=client_id, engine=engine, logger=log))

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self.store.save, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self.store.save_bot, bot)

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        return await asyncio.to_thread(
            self.store.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        return await asyncio.to_thread(
            self.store.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.store.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self.store.delete_installation, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.store.delete_all, enterprise_id=enterprise_id, team_id=team_id)

    async def bot_for_team(self, team_id: str) -> Bot | None:
        """The workspace's bot install, whatever its enterprise (Rapport addresses by team id)."""

        def find() -> Bot | None:
            bots = self.store.bots
            with self.store.engine.connect() as conn:
                row = conn.execute(
                    select(bots.c.enterprise_id, bots.c.is_enterprise_install)
                    .where(bots.c.client_id == self.store.client_id, bots.c.team_id == team_id)
                    .order_by(bots.c.installed_at.desc())
                    .limit(1)
                ).first()
            if row is None:
                return None
            return self.store.find_bot(
                enterprise_id=row.enterprise_id, team_id=team_id, is_enterprise_install=row.is_enterprise_install
            )

        return await asyncio.to_thread(find)

    async def teams(self) -> list[str]:
        """Team ids of every workspace with a bot install."""

        def query() -> list[str]:
            bots = self.store.bots
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    select(bots.c.team_id).where(bots.c.client_id == self.store.client_id).distinct()
                ).scalars()
                return sorted(t for t in rows if t)

        return await asyncio.to_thread(query)


class ThreadedStateStore(AsyncOAuthStateStore):
    """``AsyncOAuthStateStore`` over slack-sdk's synchronous SQLAlchemy state store: each state is
    one-time and expires."""

    def __init__(self, store: SQLAlchemyOAuthStateStore) -> None:
        self.store = store

    @classmethod
    def on(cls, engine: Engine, *, expiration_seconds: int = 600) -> ThreadedStateStore:
        return cls(SQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=engine, logger=log))

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.store.issue)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self.store.consume, state)
