"""Expected game errors. Each carries a kind ``player_message`` the adapters show as-is.

``UserInputError`` subclasses are problems with what the caller asked (fixable by them);
``NotAllowed`` and ``BudgetExhausted`` are ``BotError``s the caller cannot fix by rephrasing.
The queue, cooldown, length and budget problems of a *message* are reported as a refused ``Intake``
(with the same sentences) rather than raised, because ``handle_message`` never raises for them.
"""

from __future__ import annotations

from bot.errors import BotError, UserInputError

NO_CAMPAIGN_MESSAGE = "There's no campaign in this channel yet. Start one with /campaign start."
PAUSED_MESSAGE = "The campaign is paused. An admin or its creator can /campaign resume it."
QUEUE_FULL_MESSAGE = ("The DM has too many actions waiting in this channel. Give them a moment to catch up, "
                      "then try again.")
GUILD_BUDGET_MESSAGE = ("This server's daily DM budget is spent. The story continues tomorrow (UTC), or an "
                        "admin can raise it with /config set.")
PLAYER_BUDGET_MESSAGE = "A player's daily DM budget is spent; the DM will answer their actions again tomorrow (UTC)."
LOST_THREAD = "*The DM lost the thread mid-scene.*"  # a streamed reply that failed is edited to this + why
RETRY_KEPT = "The last reply stays as it was; try /retry again in a moment."
STOPPED_MID_REPLY = "The DM had to step away; your actions are saved and will be answered when the DM is back."
FAILED_TURN_NOTICE = ("Something went wrong on the DM's side of the screen. Your actions are saved; the DM "
                      "will answer them with the next action.")


def cooldown_message(wait_s: float) -> str:
    """The sentence for a player who acted too often: wait ``wait_s`` seconds (at least 1 shown)."""
    return f"Easy there! Wait {max(wait_s, 1):.0f} s before your next action; that one was not sent to the DM."


class NoCampaign(UserInputError):
    """The channel has no active or paused campaign."""

    def __init__(self, message: str = NO_CAMPAIGN_MESSAGE) -> None:
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


class BudgetExhausted(BotError):
    """The server's or the player's daily token budget is spent."""

    player_message_default = ("The DM's budget for today is spent. The story continues tomorrow (UTC), or "
                              "an admin can raise it with /config set.")


class NothingToUndo(UserInputError):
    """No finished turn to undo or retry."""

    def __init__(self, message: str = "There's no DM reply to change yet.") -> None:
        super().__init__(message)


class EmptyReply(BotError):
    """The model's narration was empty (or nothing was left of it after the checks), also after one
    corrective retry. The actions stay pending."""

    player_message_default = ("The DM lost the thread for a moment. Your actions are saved; the DM will "
                              "answer them with the next action.")


class ModeratedOutput(BotError):
    """The DM's narration went past the server's content settings (moderation), also when asked
    again. The actions stay pending."""
