"""How the DM's replies reach Discord: the ``Narrator`` of the Discord adapter, its embeds, and the
streamed reply (``DiscordReplyStream``), which shows a reply while the model writes it.

A streamed reply is one or more messages edited in place. It follows Discord's per-channel rate
limits (5 message requests per 5 seconds, separately for creating and editing, answered with 429
and ``retry_after`` beyond that; discord.py also waits on the ``X-RateLimit-*`` headers) with room to
spare: while the reply is being written, at most one edit every ``STREAM_EDIT_SECONDS`` and
``STREAM_WINDOW[0]`` in any ``STREAM_WINDOW[1]`` seconds, counting every edit of the channel's replies
(the previous reply's last edit too), always for the newest text; a reply's first message (and a new
message at a split) is posted at once, creating being a bucket of its own (what arrived in
between is shown by the next edit), so the reply's last edit and the channel's other messages
(notices, the combat tracker) find room in Discord's bucket. A message is closed once its text
settles at ``REPLY_CHUNK_CHARS`` on a paragraph or sentence boundary (``bot.chunking.settled_chunks``)
and the reply continues in the next, so a long streamed reply is split exactly as ``deliver`` splits
the whole one. The dice embed and the reply reference go with the first message;
``AllowedMentions.none()`` on every request, except that a reply with ``ping_user_ids`` (a round's
reminder for players who asked to be pinged) lets exactly those users be mentioned when each of its
messages is first posted (``allowed_mentions``); edits, and a message posted anew after someone deleted
it, mention nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import discord

from bot.chunking import settled_chunks, split_message
from bot.game.api import DMReply, Narrator, TrackerView
from bot.models import RollRecord

if TYPE_CHECKING:
    from bot.app import DungeonMasterBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
EMBED_COLOUR = discord.Colour.dark_gold()
REPLY_CHUNK_CHARS = 1900  # a reply's messages are cut near here (Discord's limit is 2,000 characters)
STREAM_EDIT_SECONDS = 1.0  # the least time between two requests of a reply while it is being written
STREAM_WINDOW = (3, 5.0)  # at most 3 requests of a reply being written in any 5 s (Discord allows 5 per channel:
# the reply's last edit and the combat tracker's always find room)
PLACEHOLDER = "…"  # what a streamed message shows while the model starts over (Discord refuses empty messages)


def mentions_for(user_ids: tuple[int, ...]) -> discord.AllowedMentions:
    """Allowed mentions that let exactly ``user_ids`` be pinged (no @everyone, roles or replied user);
    ``AllowedMentions.none()`` without ids."""
    if not user_ids:
        return NO_MENTIONS
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(id=i) for i in user_ids])


def render_roll(roll: RollRecord) -> str:
    """One line for a dice roll: who, why, and d20's breakdown (``1d20 (14) + 5 = `19```)."""
    who = roll.character_name or roll.roller_name
    why = f" ({roll.reason})" if roll.reason else ""
    return f"🎲 **{who}**{why}: {roll.breakdown}"


def rolls_embed(rolls: tuple[RollRecord, ...] | list[RollRecord]) -> discord.Embed | None:
    """An embed listing dice rolls with their breakdown, or None for no rolls (4,096-char cap)."""
    if not rolls:
        return None
    lines = [render_roll(r) for r in rolls]
    text = "\n".join(lines)
    if len(text) > 4000:
        text = text[:3990].rsplit("\n", 1)[0] + "\n…"
    return discord.Embed(title="Dice", description=text, colour=EMBED_COLOUR)


def tracker_embed(view: TrackerView) -> discord.Embed:
    """The combat tracker as an embed: its title (round, whose turn) and the initiative order in a
    code block (aligned columns; within Discord's 4,096-character description)."""
    body = "\n".join(view.lines).replace("`", "'")
    if len(body) > 3900:
        body = body[:3890].rsplit("\n", 1)[0] + "\n…"
    embed = discord.Embed(title=view.title[:256], colour=EMBED_COLOUR,
                          description=f"```\n{body}\n```" if body else None)
    embed.set_footer(text="/combat show · /combat init to roll your initiative")
    return embed


class DiscordNarrator(Narrator):
    """Delivers DM replies to Discord channels: split at ``REPLY_CHUNK_CHARS`` on paragraph or
    sentence boundaries, rolls as an embed, a reply reference to the last answered action (without
    pinging its author), no mentions except a reply's ``ping_user_ids``; streamed replies are edited
    in place as they are written."""

    def __init__(self, bot: DungeonMasterBot) -> None:
        self.bot = bot
        self._trackers: dict[int, tuple[int, int]] = {}  # campaign id -> (channel id, tracker message id)
        self._requests: dict[int, deque[float]] = {}  # channel id -> times of its replies' recent requests

    def requests_log(self, channel_id: int) -> deque[float]:
        """The times (event loop seconds) of the recent message requests of the channel's replies,
        shared by its streamed replies so that back-to-back replies pace together (bounded)."""
        log_ = self._requests.get(channel_id)
        if log_ is None:
            if len(self._requests) > 10_000:
                self._requests.clear()
            log_ = self._requests[channel_id] = deque(maxlen=32)
        return log_

    async def channel(self, channel_id: int) -> discord.abc.Messageable | None:
        """The channel to speak in (from the cache, else fetched), or None (logged) when it is gone
        or cannot take messages."""
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except discord.HTTPException:
                log.warning("channel %s is gone; reply not delivered", channel_id)
                return None
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("channel %s (%s) cannot take messages; reply not delivered", channel_id,
                        type(channel).__name__)
            return None
        return channel

    def stream(self, head: DMReply) -> DiscordReplyStream:
        """A reply shown while it is written (``DiscordReplyStream``), in ``head.channel_id``."""
        return DiscordReplyStream(self, head)

    async def deliver(self, reply: DMReply) -> None:
        """Send ``reply`` to its channel: the same messages a streamed reply ends with. Platform
        errors are logged, never raised (the reply is already stored and shows in /campaign recap)."""
        await DiscordReplyStream(self, reply).finish(reply)

    async def show_tracker(self, channel_id: int, campaign_id: int, view: TrackerView) -> None:
        """Post the combat tracker once, then edit that message in place (its place is kept with
        ``store.encounters.set_tracker``, so edits survive a restart); a tracker message someone
        deleted is posted anew, except for the final view of a fight that is over. Platform and store
        errors are logged, never raised."""
        embed = tracker_embed(view)
        known = self._trackers.get(campaign_id)
        if known is None:
            try:
                known = await self.bot.store.encounters.tracker(campaign_id)
            except Exception as exc:  # the store's trouble must not stop a turn
                log.warning("could not read the tracker message of campaign %s: %s", campaign_id, exc)
        channel = self.bot.get_partial_messageable(channel_id)
        try:
            if known is not None and known[0] == channel_id:
                try:
                    await channel.get_partial_message(known[1]).edit(embed=embed)
                except discord.NotFound:
                    known = None  # deleted: post a new one
            else:
                known = None
            if known is None and not view.ended:
                message = await channel.send(embed=embed, allowed_mentions=NO_MENTIONS)
                known = (channel_id, message.id)
                try:
                    await self.bot.store.encounters.set_tracker(campaign_id, channel_id, message.id)
                except Exception as exc:
                    log.warning("could not store the tracker message of campaign %s: %s", campaign_id, exc)
        except discord.HTTPException as exc:
            log.warning("could not show the combat tracker in channel %s: %s", channel_id, exc)
        if view.ended or known is None:
            self._trackers.pop(campaign_id, None)
        else:
            self._trackers[campaign_id] = known

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        """Show "DM is typing…" while the block runs (discord.py re-sends it every 5 s)."""
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            yield
            return
        try:
            typing = channel.typing()
            await typing.__aenter__()
        except discord.HTTPException:
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await typing.__aexit__(None, None, None)


Change = tuple[Literal["post", "edit", "delete"], int]


class DiscordReplyStream:
    """One DM reply in a channel, shown while it is written (``bot.game.api.ReplyStream``) or all at
    once (``finish`` without ``show``). See the module docstring for its pace and layout.

    Args:
        narrator: the adapter (its bot resolves the channel).
        head: the reply's channel, answered messages (the first message replies to the last) and kind.
        edit_seconds: least seconds between two requests while the reply is written.
        window: (requests, seconds): the most requests while the reply is written in any such span.
    """

    def __init__(self, narrator: DiscordNarrator, head: DMReply, *, edit_seconds: float = STREAM_EDIT_SECONDS,
                 window: tuple[int, float] = STREAM_WINDOW) -> None:
        self.narrator = narrator
        self.head = head
        self.edit_seconds = edit_seconds
        self.window = window
        self.requests = 0  # message requests made (posts, edits, deletes), for tests and benchmarks
        self._text = ""
        self._rolls: tuple[RollRecord, ...] = ()
        self._messages: list[discord.PartialMessage | discord.Message] = []
        self._contents: list[str] = []
        self._embedded: tuple[RollRecord, ...] | None = None  # the rolls message 1's embed shows
        self._sent: deque[float] = narrator.requests_log(head.channel_id)  # the channel's edits, every reply's
        self._last_request = float("-inf")  # this reply's last request (a post too), event loop seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: discord.abc.Messageable | None = None
        self._broken = False
        self._pinged = 0  # places (0, 1, ...) posted once: a later post there is a re-post and pings nobody

    # --- the ReplyStream port ---------------------------------------------------------------------
    async def show(self, text: str, rolls: tuple[RollRecord, ...] = ()) -> None:
        """Take the newest text and dice; the pump shows them at its pace. Returns at once."""
        if self._stop.is_set():
            return
        self._text, self._rolls = text, tuple(rolls)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"reply-stream-{self.head.channel_id}")

    async def finish(self, reply: DMReply) -> None:
        """Make the messages show exactly ``reply`` (split at ``REPLY_CHUNK_CHARS``, dice embed on the
        first), posting, editing or deleting what differs. Never raises (logged)."""
        await self._halt()
        chunks = split_message(reply.text, REPLY_CHUNK_CHARS) or [""]
        await self._settle(chunks, tuple(reply.rolls))

    async def abandon(self, text: str) -> bool:
        """Make the messages show only ``text`` (no dice: the turn did not happen). True when they
        do; never raises (logged)."""
        await self._halt()
        return await self._settle(split_message(text, REPLY_CHUNK_CHARS) or [PLACEHOLDER], ())

    # --- internals --------------------------------------------------------------------------------
    async def _halt(self) -> None:
        """Stop the pump after its request in flight (shielded: cancelling the caller must not cut a
        request short and leave a message nobody tracks)."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    async def _settle(self, chunks: list[str], rolls: tuple[RollRecord, ...]) -> bool:
        """Requests until the messages show ``chunks``; True when they do."""
        self._broken = False  # one more try for the final text, whatever failed while streaming
        try:
            while (change := self._next_change(chunks, rolls)) is not None and not self._broken:
                await self._apply(change, chunks, rolls)
        except Exception:
            log.exception("channel %s: showing the reply failed", self.head.channel_id)
            return False
        return self._next_change(chunks, rolls) is None

    def _layout(self) -> list[str]:
        settled, rest = settled_chunks(self._text, REPLY_CHUNK_CHARS)
        chunks = settled + ([rest.strip()] if rest.strip() else [])
        return chunks or [PLACEHOLDER]

    async def _pump(self) -> None:
        """While the reply is written: one request at a time for the newest text, at the pace allowed."""
        try:
            while not self._stop.is_set() and not self._broken:
                await self._wake.wait()
                change = self._next_change(self._layout(), self._rolls)
                # a new message goes at once (Discord counts creating apart from editing); edits wait
                if (change is None or change[0] != "post") and not await self._pace():
                    return
                self._wake.clear()
                chunks = self._layout()
                change = self._next_change(chunks, self._rolls)
                if change is not None:
                    await self._apply(change, chunks, self._rolls)
                    if self._next_change(chunks, self._rolls) is not None:
                        self._wake.set()
        except Exception:
            log.exception("channel %s: streaming the reply failed", self.head.channel_id)

    async def _pace(self) -> bool:
        """Wait until the next streaming request is allowed; False when the stream was halted first."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            now = loop.time()
            while self._sent and now - self._sent[0] >= self.window[1]:
                self._sent.popleft()
            last = max(self._sent[-1] if self._sent else float("-inf"), self._last_request)
            wait = last + self.edit_seconds - now
            if len(self._sent) >= self.window[0]:
                wait = max(wait, self._sent[0] + self.window[1] - now)
            if wait <= 0:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return False

    def _next_change(self, chunks: list[str], rolls: tuple[RollRecord, ...]) -> Change | None:
        """The first request that brings the messages closer to ``chunks`` (None: they show it)."""
        for i, chunk in enumerate(chunks):
            if i >= len(self._messages):
                return ("post", i)
            if self._contents[i] != chunk or (i == 0 and self._embedded != rolls):
                return ("edit", i)
        if len(self._messages) > len(chunks):
            return ("delete", len(self._messages) - 1)
        return None

    async def _apply(self, change: Change, chunks: list[str], rolls: tuple[RollRecord, ...]) -> None:
        """One request. A message someone deleted is posted anew; other platform errors are logged and
        stop the streaming (the final text is still tried once)."""
        kind, i = change
        if self._channel is None:
            self._channel = await self.narrator.channel(self.head.channel_id)
            if self._channel is None:
                self._broken = True
                return
        self.requests += 1
        self._last_request = asyncio.get_running_loop().time()
        if kind != "post":  # the channel's edit bucket (creating a message has a bucket of its own)
            self._sent.append(asyncio.get_running_loop().time())
        embed = rolls_embed(rolls) if i == 0 else None
        try:
            if kind == "delete":
                message = self._messages.pop()
                self._contents.pop()
                with contextlib.suppress(discord.NotFound):
                    await message.delete()
                return
            if kind == "edit":
                try:
                    kwargs: dict[str, Any] = {"embed": embed} if i == 0 else {}
                    await self._messages[i].edit(content=chunks[i] or None, allowed_mentions=NO_MENTIONS, **kwargs)
                except discord.NotFound:
                    self._messages[i] = await self._post(chunks[i], embed, i)
            else:
                self._messages.append(await self._post(chunks[i], embed, i))
                self._contents.append("")
            self._contents[i] = chunks[i]
            if i == 0:
                self._embedded = rolls
        except discord.HTTPException as exc:
            log.warning("channel %s: a reply message request failed: %s", self.head.channel_id, exc)
            self._broken = True

    async def _post(self, content: str, embed: discord.Embed | None, index: int) -> discord.Message:
        assert self._channel is not None
        first_post = index >= self._pinged  # not a re-post of a deleted message, which would ping again
        kwargs: dict[str, Any] = {"allowed_mentions": mentions_for(self.head.ping_user_ids) if first_post
                                  else NO_MENTIONS}
        if embed is not None:
            kwargs["embed"] = embed
        if index == 0 and self.head.answered_message_ids:
            kwargs["reference"] = discord.MessageReference(
                message_id=self.head.answered_message_ids[-1], channel_id=self.head.channel_id,
                fail_if_not_exists=False)
        message = await self._channel.send(content or None, **kwargs)
        self._pinged = max(self._pinged, index + 1)
        return message
