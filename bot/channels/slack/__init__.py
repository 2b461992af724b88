"""The Slack channel: check-ins in direct messages, on slack-bolt's ``AsyncApp``.

One job per module; what each kind of payload does is listed in ``docs/slack.md``.

* ``translate``  Slack payload -> ``Inbound`` (pure, tested on every recorded payload);
* ``transport``  the one network seam: Web API calls under the shared pacer and retry policy;
* ``receiver``   Bolt, Socket Mode and the HTTP Events API (``/slack/events``);
* ``home``       the App Home tab; ``shortcut`` the *Record a promise* message shortcut;
* ``install``    the multi-workspace OAuth install flow's stores;
* ``blocks``     Block Kit payloads (pure);
* ``channel``    ``SlackChannel``, which composes them.

Domain rules (linking, opt-out, reachability, history, promises) are the engine's
(``bot.engine.people``, ``bot.engine.owners``); the channel only calls them.
"""

from bot.channels.slack.blocks import HomeEntry, home_view, message_payload
from bot.channels.slack.channel import LinkReport, SlackChannel, SlackOAuth
from bot.channels.slack.receiver import acknowledgeable
from bot.channels.slack.translate import unescape_slack

__all__ = [
    "HomeEntry",
    "LinkReport",
    "SlackChannel",
    "SlackOAuth",
    "acknowledgeable",
    "home_view",
    "message_payload",
    "unescape_slack",
]
