"""The one domain exception hierarchy of the bot.

Every error the game core or the model client raises on purpose derives from ``BotError``. Each carries
``player_message``: a short, kind sentence that can be shown to the table as-is (no stack trace, no
secret, no internal detail). Adapters (the Discord cogs, the terminal) turn any ``BotError`` into that
sentence in ONE place and log the rest; anything that is not a ``BotError`` is a bug, logged with its
trace, and shown to players only as a generic apology.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every expected error.

    Args:
        player_message: what players see; defaults to ``str(self)``.
        admin_hint: optional extra sentence for server admins (shown to them, logged always).
    """

    player_message_default = "Something went wrong on the DM's side of the screen."

    def __init__(self, message: str = "", *, player_message: str | None = None,
                 admin_hint: str | None = None) -> None:
        super().__init__(message or player_message or self.player_message_default)
        self._player_message = player_message
        self.admin_hint = admin_hint

    @property
    def player_message(self) -> str:
        """The sentence to show players."""
        return self._player_message or str(self) or self.player_message_default


class UserInputError(BotError):
    """The player or admin asked for something invalid (bad dice expression, unknown option, ...).

    ``str(err)`` is already written for the person who typed it.
    """
