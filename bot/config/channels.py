"""The chat channels' settings (Telegram, Slack, the web check-in) and the web server's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.base import SecretRef, Strict


class TelegramConfig(Strict):
    enabled: bool = True
    token: SecretRef = "${TELEGRAM_BOT_TOKEN}"
    mode: Literal["polling", "webhook"] = "polling"
    # Public HTTPS URL that Telegram calls in webhook mode (served by Rapport's web server).
    webhook_url: str | None = None
    secret_token: SecretRef | None = "${TELEGRAM_WEBHOOK_SECRET}"
    # Self-hosted Bot API servers (and the tests) change this.
    api_base_url: str = "https://api.telegram.org/bot"
    # Signs invite links; falls back to a key derived from the bot token when unset.
    invite_secret: SecretRef | None = "${RAPPORT_INVITE_SECRET}"
    invite_ttl_hours: int = Field(default=72, ge=1, le=24 * 60)


class SlackConfig(Strict):
    enabled: bool = True
    bot_token: SecretRef = "${SLACK_BOT_TOKEN}"
    app_token: SecretRef | None = "${SLACK_APP_TOKEN}"
    signing_secret: SecretRef | None = "${SLACK_SIGNING_SECRET}"
    mode: Literal["socket", "http"] = "socket"
    # Proxies (and the tests) change this.
    api_base_url: str = "https://slack.com/api/"
    # Optional multi-workspace install flow (/slack/install, /slack/oauth_redirect).
    client_id: SecretRef | None = None
    client_secret: SecretRef | None = None
    oauth_state_secret: SecretRef | None = None
    # Seconds between two messages in one conversation (Slack allows about one per second).
    pace_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    # A 429 asking to wait up to this long is waited out within the send; longer ones are
    # handed back to the dispatcher as "retry later".
    max_wait_seconds: float = Field(default=5.0, ge=0.0, le=300.0)
    # Retries of one API call after a network error or a 5xx answer.
    retries: int = Field(default=2, ge=0, le=10)
    # Minutes between linking roster entries to Slack users by e-mail (0: only at start).
    link_every_minutes: int = Field(default=60, ge=0, le=10080)


class WebChannelConfig(Strict):
    # The web-link check-in (docs/web.md): invitations by e-mail, answered at <public_url>/c/<token>.
    enabled: bool = True
    # Signs check-in links; the same value in every process. While unset, `rapport run` makes its
    # own key at start (links it sent stop working at a restart) and `rapport invite` refuses.
    link_secret: SecretRef | None = "${RAPPORT_INVITE_SECRET}"
    # A link lasts until its check-in closes, and never longer than this.
    link_ttl_hours: int = Field(default=14 * 24, ge=1, le=24 * 90)
    # How invitations go out: smtp (the `email:` settings), file (one .eml file per message under
    # `directory`, for trying Rapport out), or auto (smtp when email.host is set, else file).
    delivery: Literal["auto", "smtp", "file"] = "auto"
    directory: str = "data/outbox-mail"


class ChannelsConfig(Strict):
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    web: WebChannelConfig = Field(default_factory=WebChannelConfig)


class DashboardConfig(Strict):
    # Serve the owners' web app under /dashboard/ (docs/web.md).
    enabled: bool = True
    # Encrypts the session cookie and signs form tokens; the same value in every process.
    # While unset, each process makes its own key at start (sessions end at a restart).
    session_secret: SecretRef | None = "${RAPPORT_WEB_SECRET}"
    # Secure cookies: auto = when public_url starts with https://; always; never (plain-http dev).
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    # How long a login lasts.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    # How long a one-time login link (`rapport owner login-link`) can be used.
    login_link_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Failed logins allowed per owner and per address within the window, before refusing (429).
    login_attempts: int = Field(default=5, ge=1, le=1000)
    login_window_minutes: int = Field(default=15, ge=1, le=24 * 60)


class WebConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Public base URL (for links in messages and webhooks), e.g. https://rapport.example.com
    public_url: str | None = None
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
