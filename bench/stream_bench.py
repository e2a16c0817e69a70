"""Benchmark of streamed replies (issue 13): what the table waits for, and what the channel pays.

A real ``DungeonMasterBot`` runs in this process, logged in to the loopback Discord stand-in
(``tests/support/fake_discord.py``, which enforces Discord's per-channel message limits: 5 requests
per 5 s per bucket, 429 beyond), with the real ``LLMClient`` talking to the scripted model server
(``tests/support/fake_openai.py``, in its own thread) that answers every narration at a fixed time to
first token and a fixed token rate (0.8 s, 40 tokens/s, about 120 tokens a reply). Every channel of
the stand-in's guild holds a campaign of three players, who play turn after turn, each action sent
as soon as the previous reply shows in full (back to back: the hardest case for the channel's
limits). The same scenario runs twice: with ``STREAM_REPLIES`` on, then off (whole replies, today's
behaviour before streaming).

Per reply:

- *first token -> first text*: the model server's first text chunk (``first_token_at``, on its
  ``time.perf_counter()``) to the stand-in receiving the POST that creates the reply's message
  (``RestCall.at``, ``time.monotonic()``; converted to ``perf_counter`` with one offset measured at
  start, checked again at the end). A whole reply has no streamed first token: its server sends the
  completion when generation ends (``headers_at``), so its first token is that minus the generation
  of the rest, ``(pieces - 1) / tokens_per_s``. Most of a streamed reply's figure is waiting for the
  words the message opens with (``opening_tokens``); what is left after the last of them was due is
  the bot's share (``bot_share_of_first_text_ms``);
- edits: the PATCHes of the reply's message, against ``ceil(last_token_at - first_token_at) + 1``;
- 429s and exhausted buckets (discord.py then waits for the window instead of sending) of the whole run;
- the bot's overhead per turn (``TurnTiming.overhead_s``) and the CPU of the stream path
  (``NarrationStream.feed``: the guard over the text so far at every piece, ``time.thread_time``),
  which the overhead figure does not see (it runs inside the model call's time).

Run through ``python -m bench --only stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tests.support.fake_discord import FakeDiscord

TOKEN = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
PARTY = (("Aria", "Rogue", "Elf"), ("Borin", "Fighter", "Dwarf"), ("Cyra", "Wizard", "Human"))
_TAG = re.compile(r"\(c(\d+)t(\d+)\)")

# Twelve sentences of narration; a scene is six of them in turn order from a place that moves with
# the channel and turn, so no two replies of a campaign are the same and no sentence repeats in one.
SENTENCES = (
    "The rope bridge sways as you step onto it, and the old planks groan under your weight.",
    "Far below, the river churns white around black rocks, and the spray rises cold against your faces.",
    "Halfway across, a plank cracks under a boot; a hand finds the rope just in time.",
    "On the far side, torchlight moves behind the arrow slits of the gatehouse.",
    "A horn sounds twice, long and low, and the echo rolls down the gorge.",
    "Whoever holds the keep knows you are coming, and they are not hurrying to meet you.",
    "The gate itself stands half open, its iron bands red with rust and its hinges wet with oil.",
    "Someone has swept the courtyard recently; only a trail of muddy prints leads to the well.",
    "\"Turn back,\" calls a thin voice from the wall, \"or pay the toll the old way.\"",
    "A crow lands on the parapet, tilts its head at you, and caws once before it flies off.",
    "Smoke drifts from a chimney in the inner ward, carrying the smell of bread and pitch.",
    "Somewhere beneath your feet, water drips steadily into a cistern you cannot see.",
)


def scene(channel: int, turn: int, sentences: int = 6) -> str:
    """The narration the model writes for ``turn`` in the ``channel``-th campaign (about 120 tokens
    as the stand-in model paces them; two paragraphs)."""
    start = (channel * 5 + turn * 7) % len(SENTENCES)
    picked = [SENTENCES[(start + i) % len(SENTENCES)] for i in range(sentences)]
    half = sentences // 2
    return " ".join(picked[:half]) + "\n\n" + " ".join(picked[half:])


_WHO = ("The ogre", "A hooded figure", "The old ferryman", "Something in the water", "The captain of the guard",
        "A child with a lantern", "The innkeeper's dog")
_DOES = ("lumbers out of the dark and", "steps from behind the altar and", "waits by the broken gate until it",
         "turns toward the noise, then", "laughs softly as it", "hesitates for a heartbeat before it",
         "circles the pillar twice and", "drops its torch when it", "leans on the rail while it",
         "counts the coins again and", "straightens up as it")
_WHAT = ("points at the flooded stair.", "whispers a name none of you know.", "blocks the way to the cellar.",
         "sets a cracked bowl on the table.", "scratches a mark into the wet stone.",
         "asks what brings you so far from the road.", "pulls the rope that rings the bell.",
         "points to the smoke over the ridge.", "tells you the bridge will not hold.",
         "offers a key that is far too small.", "draws a map in the ash of the hearth.",
         "swears the tower was empty yesterday.", "hums a tune from the coast.")


def long_reply(tokens: int = 700) -> str:
    """A narration of about ``tokens`` tokens (tiktoken) that the guard leaves whole: sentences built
    from parts whose lists have coprime lengths, so no sentence or 12-word run repeats; a paragraph
    every five sentences."""
    from bot.llm.tokens import count_tokens

    sentences: list[str] = []
    while count_tokens(" ".join(sentences), "gpt-4o-mini") < tokens:
        i = len(sentences)
        sentences.append(f"{_WHO[i % len(_WHO)]} {_DOES[i % len(_DOES)]} {_WHAT[i % len(_WHAT)]}")
    return "\n\n".join(" ".join(sentences[i:i + 5]) for i in range(0, len(sentences), 5))


def _percentile(values: list[float], q: float, digits: int = 1) -> float | None:
    """The ``q``-th percentile (nearest rank, as ``bench.percentile``), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], digits)


def _stats(values: list[float], digits: int = 1) -> dict[str, float | None]:
    """Median, p90 and max of ``values`` (None each for no values)."""
    if not values:
        return {"median": None, "p90": None, "max": None}
    return {"median": round(statistics.median(values), digits), "p90": _percentile(values, 90, digits),
            "max": round(max(values), digits)}


def clock_offset() -> float:
    """``time.perf_counter() - time.monotonic()``, seconds: the tightest of several paired readings
    (a perf reading between two monotonic ones)."""
    best: tuple[float, float] | None = None
    for _ in range(20):
        m0 = time.monotonic()
        p = time.perf_counter()
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, p - (m0 + m1) / 2)
    assert best is not None
    return best[1]


@dataclass
class Turn:
    """One action sent and what the bench learns of its reply."""

    channel: int  # index of the channel in the stand-in's guild
    turn: int
    channel_id: int
    message_id: int = 0
    sent_at: float = 0.0  # perf_counter, just before the action was dispatched
    text: str = ""


@dataclass
class Run:
    """One mode's run: its turns, what the stand-ins recorded, and the clock offset at start/end."""

    stream: bool
    turns: list[Turn] = field(default_factory=list)
    offset_start: float = 0.0
    offset_end: float = 0.0
    fake: Any = None
    model: Any = None
    timings: list[Any] = field(default_factory=list)
    feed_cpu: dict[tuple[int, int], float] = field(default_factory=dict)
    feed_calls: Counter[tuple[int, int]] = field(default_factory=Counter)
    request_s: list[tuple[str, float]] = field(default_factory=list)  # (kind, seconds) per request
    unfinished: int = 0
    wall_s: float = 0.0


@contextlib.asynccontextmanager
async def _instrument(run: Run) -> AsyncIterator[None]:
    """For the duration: time every ``NarrationStream.feed`` (CPU of this thread) per reply, and every
    message request of a ``DiscordReplyStream`` (wall time: a long one waited for a rate-limit bucket
    in discord.py)."""
    from bot.discord_narrator import DiscordReplyStream
    from bot.game.streaming import NarrationStream

    feed, apply = NarrationStream.feed, DiscordReplyStream._apply

    async def timed_feed(self: NarrationStream, delta: str) -> bool:
        t0 = time.thread_time()
        try:
            return await feed(self, delta)
        finally:
            key = (self.head.channel_id, self.head.turn or 0)
            run.feed_cpu[key] = run.feed_cpu.get(key, 0.0) + time.thread_time() - t0
            run.feed_calls[key] += 1

    async def timed_apply(self: DiscordReplyStream, change: Any, chunks: list[str], rolls: Any) -> None:
        kind = f"{change[0]} (finish)" if self._stop.is_set() else change[0]  # finish/abandon, or the pump
        t0 = time.perf_counter()
        try:
            await apply(self, change, chunks, rolls)
        finally:
            run.request_s.append((kind, time.perf_counter() - t0))

    NarrationStream.feed = timed_feed  # type: ignore[method-assign]
    DiscordReplyStream._apply = timed_apply  # type: ignore[method-assign]
    try:
        yield
    finally:
        NarrationStream.feed = feed  # type: ignore[method-assign]
        DiscordReplyStream._apply = apply  # type: ignore[method-assign]


async def _command(fake: FakeDiscord, name: str, user: dict[str, Any], channel_id: int, *,
                   subcommand: str | None = None, options: dict[str, Any] | None = None) -> None:
    """A slash command in ``channel_id``; returns once it was answered (its follow-up too, if deferred)."""
    iid, _ = await fake.send_interaction(name, user=user, channel_id=channel_id, subcommand=subcommand,
                                         options=options or {})

    def done() -> bool:
        responses = fake.interaction_responses(iid)
        return bool(responses) and ((responses[0].json or {}).get("type") != 5 or len(responses) >= 2)

    await fake.wait_for(done, timeout=20, what=f"/{name} {subcommand or ''} to be answered")


def _reply_message(fake: FakeDiscord, turn: Turn) -> dict[str, Any] | None:
    """The message the bot posted in answer to ``turn``'s action (the first of its reply), or None."""
    for sent in fake.sent_messages:
        ref = sent.get("message_reference") or {}
        if sent["channel_id"] == str(turn.channel_id) and str(ref.get("message_id")) == str(turn.message_id):
            return sent
    return None


def _shows(fake: FakeDiscord, turn: Turn) -> bool:
    """True once the reply to ``turn`` shows its whole text in the channel."""
    sent = _reply_message(fake, turn)
    if sent is None:
        return False
    return any(m["id"] == sent["id"] and m["content"] == turn.text for m in fake.shown_in(turn.channel_id))


async def run_mode(stream: bool, turns: int, first_token_s: float, tokens_per_s: float) -> Run:
    """Play ``turns`` turns in every channel of the stand-in's guild, streaming on or off."""
    import discord

    from bot.app import DungeonMasterBot, apply_discord_endpoints
    from bot.config import load_settings
    from bot.llm import LLMClient
    from bot.store import Database, Store
    from tests.support.fake_discord import FakeDiscord
    from tests.support.fake_openai import FakeOpenAI, Reply

    run = Run(stream)

    def answer(body: dict[str, Any]) -> Reply:
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        tags = _TAG.findall(str(users[-1].get("content") or "")) if users else []
        if not tags:  # not a turn's narration (none expected in this scenario): answer at once
            return Reply("The story goes on.")
        c, t = (int(x) for x in tags[-1])
        return Reply(scene(c, t), first_token_s=first_token_s, tokens_per_s=tokens_per_s)

    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    model = FakeOpenAI(default=answer).start_in_thread()
    run.model = model
    try:
        async with FakeDiscord() as fake:
            run.fake = fake
            with tempfile.TemporaryDirectory() as tmp:
                settings = load_settings(None, **{
                    "discord_token": TOKEN, "discord_api_base": fake.api_base,
                    "discord_gateway_url": fake.gateway_url, "discord_dev_guild_id": fake.guild_id,
                    "discord_owner_ids": [int(fake.owner["id"])], "openai_api_key": "sk-bench-stream",
                    "openai_base_url": model.url, "data_dir": tmp, "turn_window_seconds": 0.3,
                    "turn_extend_seconds": 0.1, "turn_max_window_seconds": 1.0, "player_cooldown_seconds": 0,
                    "llm_max_attempts": 1, "llm_timeout_seconds": 30, "stream_replies": stream})
                apply_discord_endpoints(settings)
                async with (Database.open(settings.database_path, migrate=True) as db,
                            LLMClient.from_settings(settings) as llm):
                    bot = DungeonMasterBot(settings=settings, store=Store(db), llm=llm)
                    runner = asyncio.create_task(bot.start(TOKEN))
                    try:
                        await fake.wait_for_ready(timeout=30)
                        await fake.wait_for(lambda: bot.is_ready() or runner.done(), timeout=30)
                        if runner.done():
                            raise RuntimeError(f"the bot did not start: {runner.exception()!r}")
                        await _play(run, bot, fake, turns)
                    finally:
                        await bot.close()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await asyncio.wait_for(runner, 5)
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
        model.stop_thread()
    return run


async def _play(run: Run, bot: Any, fake: Any, turns: int) -> None:
    for c, cid in enumerate(fake.channel_ids):
        await _command(fake, "campaign", fake.owner, cid, subcommand="start", options={"title": f"Keep {c}"})
        for player, (name, cls, ancestry) in zip(fake.players, PARTY, strict=True):
            await _command(fake, "join", player, cid, options={"name": name, "class": cls, "ancestry": ancestry})
    await asyncio.sleep(0.5)  # let the set-up's messages and their rate-limit windows settle
    bot.game.turn_timings.clear()
    fake.rate_limited.clear()
    fake.bucket_log.clear()
    fake.buckets_exhausted = 0

    async def table(c: int, cid: int) -> None:
        for t in range(1, turns + 1):
            turn = Turn(c, t, cid, text=scene(c, t))
            player = fake.players[t % len(fake.players)]
            turn.sent_at = time.perf_counter()
            turn.message_id = await fake.send_message(cid, player, f"I keep going, carefully (c{c}t{t})")
            run.turns.append(turn)
            try:
                await fake.wait_for(lambda turn=turn: _shows(fake, turn), timeout=30)
            except AssertionError:
                run.unfinished += 1
                return

    run.offset_start = clock_offset()
    start = time.perf_counter()
    async with _instrument(run):
        await asyncio.gather(*(table(c, cid) for c, cid in enumerate(fake.channel_ids)))
        await asyncio.sleep(0.3)  # the last turns' bookkeeping after their final edit
    run.wall_s = time.perf_counter() - start
    run.offset_end = clock_offset()
    run.timings = list(bot.game.turn_timings)


def _busiest(log: list[Any], span: float) -> dict[str, int]:
    """Per bucket: the most requests (performed or refused) one channel made in any ``span`` seconds."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in log:
        times[(r.bucket, r.channel_id)].append(r.at)
    most: dict[str, int] = {}
    for (bucket, _), ats in times.items():
        ats.sort()
        j = 0
        for i, at in enumerate(ats):
            while at - ats[j] > span:
                j += 1
            most[bucket] = max(most.get(bucket, 0), i - j + 1)
    return most


def opening_tokens(text: str) -> int:
    """How many tokens after the first the stream must wait before ``text`` may open its message
    (``bot.game.streaming``: 32 characters or a sentence, of whole words the guard lets through)."""
    from bot.game.guard import GuardContext
    from bot.game.streaming import ready_to_open, visible
    from tests.support.fake_openai import split_tokens

    context = GuardContext(names=(*(n for n, _, _ in PARTY), "ann", "bob", "cy"))
    raw = ""
    for k, piece in enumerate(split_tokens(text)):
        raw += piece
        if ready_to_open(visible(raw, context).text):
            return k
    return len(split_tokens(text)) - 1


def _figures(run: Run, tokens_per_s: float) -> dict[str, Any]:
    """Per-reply figures of one run (see the module docstring)."""
    from tests.support.fake_openai import split_tokens

    fake, offset = run.fake, run.offset_start
    requests: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for r in run.model.chat_requests:
        users = [m for m in (r.body or {}).get("messages") or [] if m.get("role") == "user"]
        tags = _TAG.findall(str(users[-1].get("content") or "")) if users else []
        if tags:
            requests[tuple(int(x) for x in tags[-1])].append(r)  # type: ignore[index]
    first_text, from_request, to_final, edits, bounds, stream_s, patches, bot_share = [], [], [], [], [], [], [], []
    over_bound = not_prefix = missing = extra_calls = 0
    for turn in run.turns:
        calls = requests.get((turn.channel, turn.turn), [])
        sent = _reply_message(fake, turn)
        if not calls or sent is None:
            missing += 1
            continue
        extra_calls += len(calls) - 1
        call = calls[-1]
        path = f"/channels/{turn.channel_id}/messages"
        posts = [c for c in fake.rest_log if c.method == "POST" and c.path == path
                 and str(((c.json or {}).get("message_reference") or {}).get("message_id")) == str(turn.message_id)]
        mine = f"{path}/{sent['id']}"
        changes = [c for c in fake.rest_log if c.method == "PATCH" and c.path == mine]
        visible_at = posts[-1].at + offset  # the last POST is the one performed (a 429 is sent again)
        if run.stream and call.first_token_at is not None and call.last_token_at is not None:
            first_at, last_at = call.first_token_at, call.last_token_at
        else:  # a whole reply: sent when generated; its first token came (pieces - 1) / rate before
            assert call.headers_at is not None
            last_at = call.headers_at
            first_at = last_at - (len(split_tokens(turn.text)) - 1) / tokens_per_s
        first_text.append((visible_at - first_at) * 1000)
        if run.stream:  # what is left once the text the message opens with had arrived (on schedule)
            bot_share.append((visible_at - first_at - opening_tokens(turn.text) / tokens_per_s) * 1000)
        from_request.append((visible_at - call.received_at) * 1000)
        final = [c.at for c in [*posts, *changes] if (c.json or {}).get("content") == turn.text]
        if final:
            to_final.append((min(final) + offset - last_at) * 1000)
        n = len(fake.edits_of(sent["id"]))
        bound = math.ceil(last_at - first_at) + 1
        edits.append(n)
        patches.append(len(changes))
        bounds.append(bound)
        stream_s.append(last_at - first_at)
        over_bound += n > bound
        shown = [(sent.get("content") or "")] + [(e.get("content") or "") for e in fake.edits_of(sent["id"])]
        not_prefix += sum(1 for s in shown if not turn.text.startswith(s))
    overheads = [t.overhead_s * 1000 for t in run.timings]
    pieces = [len(split_tokens(t.text)) for t in run.turns]
    feed = list(run.feed_cpu.values())
    kinds = Counter(c.method + " " + re.sub(r"\d+", "{id}", c.path) for c in fake.rest_log
                    if c.path.startswith("/channels/"))
    return {
        "streaming": run.stream, "channels": len(fake.channel_ids), "replies": len(run.turns) - missing,
        "tokens_per_reply": [min(pieces, default=0), max(pieces, default=0)],
        "unfinished": run.unfinished, "missing": missing, "extra_model_calls": extra_calls,
        "wall_seconds": round(run.wall_s, 1),
        "first_token_to_first_text_ms": _stats(first_text),
        "bot_share_of_first_text_ms": _stats(bot_share),
        "request_to_first_text_ms": _stats(from_request),
        "last_token_to_final_text_ms": _stats(to_final),
        "first_to_last_token_s": _stats(stream_s, 3),
        "edits_per_reply": {"max": max(edits, default=0), "median": statistics.median(edits) if edits else None,
                            "bound_min": min(bounds, default=0), "bound_max": max(bounds, default=0),
                            "over_bound": over_bound, "patch_requests_max": max(patches, default=0)},
        "shown_not_a_prefix_of_the_reply": not_prefix,
        "rate_limited_429": len(fake.rate_limited),
        "buckets_exhausted": fake.buckets_exhausted,
        "bucket_requests": dict(Counter(r.bucket for r in fake.bucket_log)),
        "bucket_requests_in_any_5s_max": _busiest(fake.bucket_log, 5.0),
        "reply_requests_ms": _stats([s * 1000 for _, s in run.request_s]),
        "reply_requests_over_100ms": dict(Counter(kind for kind, s in run.request_s if s > 0.1)),
        "channel_requests": dict(sorted(kinds.items())),
        "overhead_ms": {**_stats(overheads, 3), "p99": _percentile(overheads, 99, 3), "turns": len(overheads)},
        "stream_cpu_ms_per_reply": _stats([f * 1000 for f in feed], 2),
        "stream_feeds_per_reply_max": max(run.feed_calls.values(), default=0),
        "clock_offset_us": [round(run.offset_start * 1e6, 1), round(run.offset_end * 1e6, 1)],
    }


class _QuietStream:
    """A ``ReplyStream`` that shows nothing (for timing the core's side of the stream path alone)."""

    async def show(self, text: str, rolls: tuple[Any, ...] = ()) -> None:
        return None

    async def finish(self, reply: Any) -> None:
        return None

    async def abandon(self, text: str) -> bool:
        return True


class _QuietNarrator:
    def stream(self, head: Any) -> _QuietStream:
        return _QuietStream()


def guard_cost(tokens_per_s: float = 40.0, runs: int = 5) -> dict[str, Any]:
    """CPU of the core's stream path (``NarrationStream.feed``: the guard over the text so far,
    whenever a piece may change its verdict or at its set interval) for a 120-token scene and a
    ~700-token reply arriving at ``tokens_per_s`` (the stream module's clock is simulated, one piece
    every ``1 / tokens_per_s`` s), with the guard bench's five-member party, DM rules and secrets:
    total ms per reply (median of ``runs``), guard checks per reply, and the p99 of one piece."""
    from types import SimpleNamespace

    from bot.game import streaming
    from bot.game.api import DMReply, Narrator
    from bot.game.context import system_prompt
    from bot.game.guard import GuardContext
    from bot.models import Campaign, GuildConfig
    from tests.support.fake_openai import split_tokens

    campaign = Campaign(1, 1, 1, "The Sunken Crypt", "A drowned temple", "grim", "active", 1, 0.0)
    config = GuildConfig(1, "gpt-4o-mini", 0.8, 700, "batch", 6.0, (), (), 0, 0, "classic", "teen")
    ctx = GuardContext(names=("Aria", "ann", "Borin Stonefist", "bob", "Cyra", "cy", "Dane", "dee", "Eryn", "eve"),
                       rules_text=system_prompt(campaign, config, None),
                       secrets=("sk-live-0123456789abcdef", "MTA0NTgx.GaBcDe.abcdef"))
    clock = [0.0]
    checks = [0]
    module = vars(streaming)
    real_time, real_visible = module["time"], streaming.visible

    def counted(raw: str, context: GuardContext = streaming.NO_CONTEXT) -> streaming.StreamView:
        checks[0] += 1
        return real_visible(raw, context)

    async def one(pieces: list[str]) -> tuple[float, list[float]]:
        head = DMReply(channel_id=1, text="", turn=1)
        narration = streaming.NarrationStream(cast("Narrator", _QuietNarrator()), head, ctx)
        total, each = 0.0, []
        for piece in pieces:
            clock[0] += 1 / tokens_per_s
            t0 = time.perf_counter()
            await narration.feed(piece)
            spent = time.perf_counter() - t0
            total += spent
            each.append(spent * 1000)
        return total, each

    out: dict[str, Any] = {"tokens_per_s": tokens_per_s}
    module["time"] = SimpleNamespace(monotonic=lambda: clock[0])
    module["visible"] = counted
    try:
        for label, text in (("scene", scene(0, 1)), ("long", long_reply())):
            pieces = split_tokens(text)
            real_visible(text, ctx)  # warm: the guard's caches (compiled patterns, the rules' shingles)
            gc.collect()
            totals: list[float] = []
            every: list[float] = []
            checks[0] = 0
            for _ in range(runs):
                total, each = _run_sync(one(pieces))
                totals.append(total)
                every.extend(each)
            out[f"{label}_pieces"] = len(pieces)
            out[f"{label}_checks"] = checks[0] // runs
            out[f"{label}_ms_per_reply"] = round(statistics.median(totals) * 1000, 2)
            out[f"{label}_piece_ms_p99"] = _percentile(every, 99, 3)
    finally:
        module["time"], module["visible"] = real_time, real_visible
    return out


def _run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends (``feed`` into a ``_QuietStream``) to its end, here."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the stream path suspended: it is not CPU alone")


async def bench_stream(turns: int = 10, whole_turns: int = 5, first_token_s: float = 0.8,
                       tokens_per_s: float = 40.0) -> dict[str, Any]:
    """The streamed run (``turns`` per channel), then the whole-reply run (``whole_turns``), and the
    guard's cost on the stream path. Flat keys at the top are the ones ``bench.MARKS`` reads."""
    streamed = _figures(await run_mode(True, turns, first_token_s, tokens_per_s), tokens_per_s)
    whole = _figures(await run_mode(False, whole_turns, first_token_s, tokens_per_s), tokens_per_s)
    return {
        "model": {"first_token_s": first_token_s, "tokens_per_s": tokens_per_s},
        "clocks": "FakeDiscord's time.monotonic() stamps moved onto FakeOpenAI's time.perf_counter() with one "
                  "offset (perf - mono) measured at the start of each run; clock_offset_us gives it at start "
                  "and end",
        "first_text_ms_median": streamed["first_token_to_first_text_ms"]["median"],
        "first_text_ms_p90_max": [streamed["first_token_to_first_text_ms"]["p90"],
                                  streamed["first_token_to_first_text_ms"]["max"]],
        "first_text_ms_whole_median": whole["first_token_to_first_text_ms"]["median"],
        "edits_per_reply_max": streamed["edits_per_reply"]["max"],
        "edit_bound_min": streamed["edits_per_reply"]["bound_min"],
        "edits_over_bound": streamed["edits_per_reply"]["over_bound"],
        "rate_limited_429": streamed["rate_limited_429"] + whole["rate_limited_429"],
        "buckets_exhausted": streamed["buckets_exhausted"] + whole["buckets_exhausted"],
        "replies_not_finished": streamed["unfinished"] + streamed["missing"] + whole["unfinished"] + whole["missing"],
        "streamed": streamed,
        "whole": whole,
        "guard_on_stream": guard_cost(tokens_per_s),
    }
