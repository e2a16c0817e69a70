"""Expected game errors. Each carries a kind ``player_message`` the adapters show as-is.

``UserInputError`` subclasses are problems with what the caller asked (fixable by them);
``NotAllowed`` and ``BudgetExhausted`` are ``BotError``s the caller cannot fix by rephrasing.
The queue, cooldown, length and budget problems of a *message* are reported as a refused ``Intake``
(with the same sentences) rather than raised, because ``handle_message`` never raises for them.
"""

from __future__ import annotations

from bot.errors import BotError, UserInputError


class NoCampaign(UserInputError):
    """The channel has no active or paused campaign."""

    def __init__(self, message: str = "There's no campaign in this channel yet. "
                                      "Start one with /campaign start.") -> None:
        super().__init__(message)


class CampaignNotActive(UserInputError):
    """The campaign is paused (or already running) and cannot take this command."""


class NotInParty(UserInputError):
    """The caller has no character in this campaign."""

    def __init__(self, message: str = "You don't have a character in this campaign. Use /join first.") -> None:
        super().__init__(message)


class NotAllowed(BotError):
    """The caller lacks the right (campaign creator or server admin) for this command."""

    player_message_default = "Only the campaign's creator or a server admin can do that."


class QueueFull(UserInputError):
    """Too many actions are waiting in this channel."""

    def __init__(self, message: str = "The DM has too many actions waiting in this channel. Give them a "
                                      "moment to catch up, then try again.") -> None:
        super().__init__(message)


class OnCooldown(UserInputError):
    """The player acted too often in a short time.

    Args:
        wait_s: seconds until the player may act again.
    """

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"Easy there! Wait {max(wait_s, 1):.0f} s before your next action; that one "
                         "was not sent to the DM.")
        self.wait_s = wait_s


class BudgetExhausted(BotError):
    """The server's or the player's daily token budget is spent."""

    player_message_default = ("The DM's budget for today is spent. The story continues tomorrow (UTC), or "
                              "an admin can raise it with /config set.")


class InputTooLong(UserInputError):
    """A player message is longer than ``max_input_chars``; refused, never cut."""


class NothingToUndo(UserInputError):
    """No finished turn to undo or retry."""

    def __init__(self, message: str = "There's no DM reply to change yet.") -> None:
        super().__init__(message)
