"""The Telegram channel, on python-telegram-bot v22. One job per module:

* ``translate``  a raw update -> one action (pure, never raises on odd shapes);
* ``transport``  the one network seam: sends and keyboard edits under the shared pacer and retry
  policy (``bot.channels.pacing``);
* ``receiver``   long polling or the webhook, both handing raw JSON to the channel;
* ``channel``    ``TelegramChannel``, which carries actions out through the engine.

Domain rules (linking from an invite, reachability) are the engine's (``bot.engine.people``).
"""

from bot.channels.telegram.channel import TelegramChannel, TelegramSettings
from bot.channels.telegram.receiver import (
    SECRET_HEADER,
    SECRET_TOKEN,
    WEBHOOK_PATH,
    fetch_bot_username,
    make_bot,
)
from bot.channels.telegram.translate import (
    ALLOWED_UPDATES,
    Action,
    Deliver,
    Explain,
    Ignore,
    Link,
    Membership,
    Press,
    translate,
)
from bot.channels.telegram.transport import keyboard

__all__ = [
    "ALLOWED_UPDATES",
    "SECRET_HEADER",
    "SECRET_TOKEN",
    "WEBHOOK_PATH",
    "Action",
    "Deliver",
    "Explain",
    "Ignore",
    "Link",
    "Membership",
    "Press",
    "TelegramChannel",
    "TelegramSettings",
    "fetch_bot_username",
    "keyboard",
    "make_bot",
    "translate",
]
