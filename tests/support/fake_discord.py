"""A loopback stand-in for Discord's REST API and gateway websocket, for end-to-end tests.

The real bot process connects to it through the settings ``DISCORD_API_BASE`` (``api_base``) and
``DISCORD_GATEWAY_URL`` (``gateway_url``), which set discord.py's ``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``. It serves one guild with text channels, an owner, an admin
(a role with Manage Server) and three players; it sends HELLO / READY / GUILD_CREATE, acknowledges
heartbeats, and lets a test inject MESSAGE_CREATE and INTERACTION_CREATE events. Every REST request is
recorded in ``rest_log`` and answered as Discord would (JSON bodies with content-type exactly
``application/json``, which is the only type discord.py decodes).

Gateway frames are sent as plain text JSON: discord.py only decompresses binary frames, so the
``compress=zlib-stream`` it asks for needs no compression here.

Message rate limits. The bot's own message routes are limited per channel as Discord limits them:
``POST /channels/{id}/messages`` (create), ``PATCH /channels/{id}/messages/{mid}`` (edit) and
``DELETE /channels/{id}/messages/{mid}`` (delete) are three separate buckets, each ``limit`` requests per
``period`` seconds per channel (``FakeDiscord(message_rate_limit=(5, 5.0))``, the default; ``None``
turns the limits off). Windows are fixed: one starts with the first request after the previous window
ended and lasts ``period`` seconds. Every response of those routes (404s too: Discord counts a request
before it looks at it) carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``
(epoch seconds), ``X-RateLimit-Reset-After`` (seconds; both to the millisecond, rounded up) and
``X-RateLimit-Bucket`` (a stable hash per kind, ``MESSAGE_BUCKET_HASHES``, the same in every channel:
the channel is the bucket's major parameter). discord.py's ``HTTPClient.request`` reads them
and waits for the window to end instead of sending a request over the limit. A request over the limit
is not performed: it gets 429 with ``{"message": "You are being rate limited.", "retry_after": <s>,
"global": false}``, ``Retry-After`` (whole seconds, rounded up), ``X-RateLimit-Scope: user``, the bucket
headers with ``Remaining: 0`` and ``Via: 1.1 google`` (discord.py takes a 429 without ``Via`` for a
Cloudflare ban and raises instead of retrying).

What the limits did, for tests and benchmarks (times are ``time.monotonic()``, like ``RestCall.at``):

* ``rate_limited``: a ``RateLimitHit`` (method, path, channel_id, bucket, retry_after, at) per 429 answered;
* ``buckets_exhausted``: how many times a performed request left its bucket with ``Remaining: 0``;
* ``bucket_log``: a ``BucketRequest`` (bucket, channel_id, method, path, at, limited) per request of the
  three routes, answered or refused;
* ``requests_in_bucket(channel_id, bucket, start=None, end=None, include_limited=False)``: how many
  requests of one kind (``"create"``, ``"edit"``, ``"delete"``) a channel got in ``[start, end]``;
* ``bucket_remaining(channel_id, bucket)``: what ``X-RateLimit-Remaining`` would be right now.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

ALL_PERMISSIONS = str((1 << 50) - 1)
# view, send, embed, files, history, reactions, use commands
PLAYER_PERMISSIONS = str(0x400 | 0x800 | 0x4000 | 0x8000 | 0x10000 | 0x40 | 0x80000000)
MANAGE_GUILD = 0x20


@dataclass
class RestCall:
    """One REST request the bot made: method, path (after /api/v10), query, JSON body, headers."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: float


MESSAGE_CONTENT_INTENT = 1 << 15

# The three per-channel buckets of the bot's own message routes, and the opaque hash each one reports in
# X-RateLimit-Bucket (stable across runs and channels, 32 hex digits like Discord's).
MESSAGE_BUCKETS = ("create", "edit", "delete")
MESSAGE_BUCKET_HASHES = {kind: hashlib.md5(f"fake-discord messages {kind}".encode()).hexdigest()
                         for kind in MESSAGE_BUCKETS}
RATE_LIMITED_MESSAGE = "You are being rate limited."


@dataclass
class RateLimitHit:
    """One request answered 429 by a per-channel message bucket (it was not performed)."""

    method: str
    path: str
    channel_id: str
    bucket: str  # "create", "edit" or "delete"
    retry_after: float  # seconds, as sent in the body
    at: float  # time.monotonic()


@dataclass
class BucketRequest:
    """One request of a rate-limited message route, performed or (``limited``) answered 429."""

    bucket: str
    channel_id: str
    method: str
    path: str
    at: float  # time.monotonic()
    limited: bool


@dataclass
class _Window:
    """A fixed rate-limit window of one bucket in one channel: when it ends and how many it has taken."""

    resets_at: float  # time.monotonic()
    used: int = 0


def _ceil_ms(seconds: float) -> float:
    """Seconds rounded up to the millisecond (a client that waits this long finds the window over)."""
    return math.ceil(seconds * 1000) / 1000


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON body whose content-type is exactly ``application/json``: discord.py decodes a REST body
    only then (aiohttp's ``json_response`` appends ``; charset=utf-8``)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class FakeDiscord:
    """The stand-in server. Use ``async with FakeDiscord() as fake:``; see module docstring."""

    def __init__(self, *, bot_user_id: int = 4_000_000_000_000_001, application_id: int = 4_000_000_000_000_001,
                 guild_id: int = 5_000_000_000_000_001,
                 message_rate_limit: tuple[int, float] | None = (5, 5.0)) -> None:
        """``message_rate_limit`` is ``(limit, period in seconds)`` of each per-channel message bucket
        (create, edit, delete; see the module docstring), or ``None`` for no limits."""
        if message_rate_limit is not None:
            limit, period = message_rate_limit
            if limit < 1 or period <= 0:
                raise ValueError(f"message_rate_limit needs limit >= 1 and period > 0, got {message_rate_limit}")
        self.message_rate_limit = message_rate_limit
        self.rate_limited: list[RateLimitHit] = []
        self.buckets_exhausted = 0
        self.bucket_log: list[BucketRequest] = []
        self._windows: dict[tuple[str, str], _Window] = {}  # (bucket, channel id) -> current window
        self._counter = itertools.count()
        self.bot_user = {"id": str(bot_user_id), "username": "DungeonMaster", "discriminator": "0",
                         "global_name": "Dungeon Master", "avatar": None, "bot": True, "flags": 0}
        self.application_id = application_id
        self.guild_id = guild_id
        self.channel_ids = [guild_id + 10, guild_id + 11]
        self.channel_id = self.channel_ids[0]
        self.admin_role_id = guild_id + 100
        self.owner = self._user(6_000_000_000_000_001, "owner")
        self.admin = self._user(6_000_000_000_000_002, "admin")
        self.players = [self._user(6_000_000_000_000_010 + i, name) for i, name in enumerate(["ann", "bob", "cy"])]
        self.rest_log: list[RestCall] = []
        self.answers: dict[str, list[dict[str, Any]]] = {}  # interaction token -> its answers as shown (seen_answers)
        self.sent_messages: list[dict[str, Any]] = []
        self.edited_messages: list[dict[str, Any]] = []  # PATCH /channels/{id}/messages/{id} bodies, in order
        self._posted: dict[str, dict[str, Any]] = {}  # message id -> the message as it stands now
        self.identify_payloads: list[dict[str, Any]] = []
        self.gateway_ops: list[int] = []
        self.connections = 0
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._interactions: dict[str, str] = {}  # interaction id -> token

    # --- world ----------------------------------------------------------------------------------
    @staticmethod
    def _user(uid: int, name: str, bot: bool = False) -> dict[str, Any]:
        return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name, "avatar": None,
                "bot": bot, "flags": 0}

    def _member(self, user: dict[str, Any]) -> dict[str, Any]:
        roles = [str(self.admin_role_id)] if user["id"] in (self.admin["id"], self.bot_user["id"]) else []
        return {"user": user, "roles": roles, "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False,
                "mute": False, "nick": None, "flags": 0, "pending": False}

    def _channel(self, cid: int) -> dict[str, Any]:
        return {"id": str(cid), "type": 0, "name": f"table-{cid % 100}", "guild_id": str(self.guild_id),
                "position": cid % 100, "permission_overwrites": [], "nsfw": False, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None, "flags": 0}

    def guild_payload(self) -> dict[str, Any]:
        """The GUILD_CREATE payload: channels, roles, members (owner, admin, players, the bot)."""
        roles = [
            {"id": str(self.guild_id), "name": "@everyone", "permissions": PLAYER_PERMISSIONS, "position": 0,
             "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
            {"id": str(self.admin_role_id), "name": "Admins",
             "permissions": str(MANAGE_GUILD | int(PLAYER_PERMISSIONS)), "position": 1,
             "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
        ]
        members = [self._member(u) for u in [self.owner, self.admin, *self.players, self.bot_user]]
        return {"id": str(self.guild_id), "name": "Tavern", "icon": None, "owner_id": self.owner["id"],
                "roles": roles, "channels": [self._channel(c) for c in self.channel_ids], "members": members,
                "member_count": len(members), "large": False, "unavailable": False, "features": [],
                "emojis": [], "stickers": [], "voice_states": [], "presences": [], "threads": [],
                "stage_instances": [], "guild_scheduled_events": [], "joined_at": "2024-01-01T00:00:00+00:00",
                "premium_tier": 0, "preferred_locale": "en-US", "verification_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
                "system_channel_flags": 0, "nsfw_level": 0, "afk_timeout": 300}

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The loopback port the stand-in listens on (chosen by the OS)."""
        assert self._runner is not None, "server not started"
        return int(self._runner.addresses[0][1])  # (host, port) of the one TCP site

    @property
    def api_base(self) -> str:
        """The REST base to give discord.py (``DISCORD_API_BASE``)."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway URL to give discord.py (``DISCORD_GATEWAY_URL``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        """Listen on 127.0.0.1 (a free port)."""
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        return self

    async def stop(self) -> None:
        """Close every gateway connection and the server."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- gateway --------------------------------------------------------------------------------
    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH event to every connected client."""
        self._seq += 1
        for ws in list(self._sockets):
            if not ws.closed:
                await self._send(ws, {"op": 0, "t": event, "s": self._seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self._ready.clear()
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 10_000}, "s": None, "t": None})
        guild_seq: int | None = None  # sequence number of the GUILD_CREATE sent on this connection
        async for msg in ws:
            try:
                payload = json.loads(msg.data)
            except (TypeError, ValueError):
                continue
            op = payload.get("op")
            self.gateway_ops.append(op)
            if op == 1:
                await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
                # A heartbeat carries the last sequence number the client has read. The client reads
                # frames in order and parses each dispatch before reading the next, so a beat that
                # has seen GUILD_CREATE proves the guild, its channels and members are in its cache.
                seen = payload.get("d")
                if guild_seq is not None and isinstance(seen, int) and seen >= guild_seq:
                    self._ready.set()
            elif op == 2:
                self.identify_payloads.append(payload["d"])
                self._sockets = [s for s in self._sockets if not s.closed] + [ws]
                self._seq += 1
                await self._send(ws, {"op": 0, "t": "READY", "s": self._seq, "d": {
                    "v": 10, "user": self.bot_user, "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                    "session_id": f"session-{self.connections}", "resume_gateway_url": self.gateway_url,
                    "shard": payload["d"].get("shard", [0, 1]),
                    "application": {"id": str(self.application_id), "flags": 0}}})
                self._seq += 1
                await self._send(ws, {"op": 0, "t": "GUILD_CREATE", "s": self._seq, "d": self.guild_payload()})
                guild_seq = self._seq
                # op 1 from the server asks for an immediate heartbeat, as Discord may at any time
                await self._send(ws, {"op": 1, "d": None, "s": None, "t": None})
            elif op == 6:  # RESUME: ask for a fresh IDENTIFY
                await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
        if ws in self._sockets:
            self._sockets.remove(ws)
        if not any(not s.closed for s in self._sockets):
            self._ready.clear()  # the client is gone (e.g. killed): a restart must connect again
        return ws

    async def wait_for_ready(self, timeout: float = 10.0) -> None:
        """Until a client has identified, received READY and GUILD_CREATE, and answered the heartbeat
        request sent after them with GUILD_CREATE's sequence number (so it has processed it).

        Raises ``AssertionError`` saying which step is missing after ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            step = ("no client identified" if not self.identify_payloads else
                    "the client identified but did not answer the heartbeat request sent after GUILD_CREATE")
            raise AssertionError(f"gateway not ready after {timeout} s: {step} "
                                 f"(connections: {self.connections}, ops received: {self.gateway_ops})") from None

    # --- injecting events -----------------------------------------------------------------------
    async def send_message(self, channel_id: int, author: dict[str, Any], content: str, *,
                           mentions: Sequence[dict[str, Any]] = (), referenced_message_id: int | None = None,
                           message_id: int | None = None, author_is_bot: bool = False) -> int:
        """Dispatch MESSAGE_CREATE from ``author`` (a user dict with id and username). Returns its id."""
        mid = message_id or self._snowflake()
        # as Discord does: without the message-content intent, guild messages arrive with empty
        # content unless they mention the bot
        no_content_intent = (bool(self.identify_payloads)
                             and not int(self.identify_payloads[-1].get("intents", 0)) & MESSAGE_CONTENT_INTENT)
        if no_content_intent and not any(str(u.get("id")) == self.bot_user["id"] for u in mentions):
            content = ""
        user = {**self._user(int(author["id"]), author.get("username", "someone"),
                             bot=bool(author.get("bot", author_is_bot)))}
        data: dict[str, Any] = {
            "id": str(mid), "channel_id": str(channel_id), "guild_id": str(self.guild_id), "author": user,
            "member": {k: v for k, v in self._member(user).items() if k != "user"}, "content": content,
            "timestamp": _now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": list(mentions), "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "type": 0 if referenced_message_id is None else 19, "flags": 0, "components": []}
        if referenced_message_id is not None:
            data["message_reference"] = {"message_id": str(referenced_message_id), "channel_id": str(channel_id),
                                         "guild_id": str(self.guild_id)}
        await self.dispatch("MESSAGE_CREATE", data)
        return mid

    async def edit_user_message(self, channel_id: int, message_id: int, author: dict[str, Any], content: str) -> None:
        """Dispatch MESSAGE_UPDATE as Discord does when a player edits their message: the whole
        message with its new content and ``edited_timestamp`` (discord.py's cache may never have seen it)."""
        user = self._user(int(author["id"]), author.get("username", "someone"))
        await self.dispatch("MESSAGE_UPDATE", {
            "id": str(message_id), "channel_id": str(channel_id), "guild_id": str(self.guild_id), "author": user,
            "member": {k: v for k, v in self._member(user).items() if k != "user"}, "content": content,
            "timestamp": _now_iso(), "edited_timestamp": _now_iso(), "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0,
            "flags": 0, "components": []})

    async def delete_user_message(self, channel_id: int, message_id: int) -> None:
        """Dispatch MESSAGE_DELETE (a player, or a moderator, deleted a message)."""
        await self.dispatch("MESSAGE_DELETE", {"id": str(message_id), "channel_id": str(channel_id),
                                               "guild_id": str(self.guild_id)})

    @staticmethod
    def _option(name: str, value: Any) -> dict[str, Any]:
        kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else 10 if isinstance(value, float) else 3
        return {"name": name, "type": kind, "value": value}

    async def send_interaction(self, name: str, *, user: dict[str, Any], channel_id: int | None = None,
                               options: dict[str, Any] | None = None, subcommand: str | None = None,
                               group: str | None = None, permissions: str | None = None,
                               type: int = 2, focused: str | None = None,
                               age_seconds: float = 0.0) -> tuple[str, str]:
        """Dispatch INTERACTION_CREATE for a chat-input command (``type=4`` for autocomplete, with
        ``focused`` naming the option being typed; ``age_seconds`` back-dates its id, e.g. past the
        15-minute token lifetime). Returns ``(interaction_id, token)``."""
        iid = str(self._snowflake(age_seconds))
        token = f"tok-{iid}"
        self._interactions[iid] = token
        opts = [self._option(k, v) for k, v in (options or {}).items()]
        if focused:
            for o in opts:
                if o["name"] == focused:
                    o["focused"] = True
        if subcommand:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        if group:
            opts = [{"name": group, "type": 2, "options": opts}]
        if permissions is None:
            is_admin = user["id"] in (self.owner["id"], self.admin["id"])
            permissions = ALL_PERMISSIONS if user["id"] == self.owner["id"] else (
    str(int(PLAYER_PERMISSIONS) | MANAGE_GUILD) if is_admin else PLAYER_PERMISSIONS)
        cid = channel_id or self.channel_id
        member = self._member(self._user(int(user["id"]), user.get("username", "someone")))
        member["permissions"] = permissions
        data = {
            "id": iid, "application_id": str(self.application_id), "type": type, "token": token, "version": 1,
            "data": {"id": str(abs(hash(name)) % 10**18), "name": name, "type": 1, "options": opts,
                     "guild_id": str(self.guild_id)},
            "guild_id": str(self.guild_id), "channel_id": str(cid), "channel": self._channel(cid),
            "member": member, "locale": "en-US", "guild_locale": "en-US", "app_permissions": ALL_PERMISSIONS,
            "entitlements": [], "authorizing_integration_owners": {"0": str(self.guild_id)}, "context": 0,
            "attachment_size_limit": 10_000_000}
        await self.dispatch("INTERACTION_CREATE", data)
        return iid, token

    # --- REST bodies ----------------------------------------------------------------------------
    def _message(self, channel_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        msg = {"id": str(self._snowflake()), "channel_id": channel_id or str(self.channel_id),
               "author": self.bot_user, "content": body.get("content") or "", "timestamp": _now_iso(),
               "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
               "mention_roles": [], "attachments": [], "embeds": body.get("embeds") or [], "pinned": False,
               "type": 0, "flags": body.get("flags") or 0, "components": []}
        if channel_id is not None:
            msg["guild_id"] = str(self.guild_id)
        return msg

    async def _body(self, request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            payload: Any = {}
            files = []
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue  # discord.py sends flat multipart bodies: no nested parts
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    files.append({"name": part.name, "filename": part.filename, "size": len(await part.read())})
            if isinstance(payload, dict):
                payload["_files"] = files
            return payload
        text = await request.text()
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text

    # --- message rate limits ----------------------------------------------------------------------
    @staticmethod
    def _message_bucket(method: str, parts: list[str]) -> str | None:
        """Which per-channel message bucket a request falls in, if any."""
        if parts[0] != "channels" or len(parts) < 3 or parts[2] != "messages":
            return None
        if method == "POST" and len(parts) == 3:
            return "create"
        if method == "PATCH" and len(parts) == 4:
            return "edit"
        if method == "DELETE" and len(parts) == 4:
            return "delete"
        return None

    def _window(self, bucket: str, channel_id: str, now: float) -> _Window:
        """The window of ``bucket`` in ``channel_id`` that a request at ``now`` falls in (a new one if the
        last has ended; it is stored only once a request takes from it)."""
        assert self.message_rate_limit is not None
        window = self._windows.get((bucket, channel_id))
        if window is None or now >= window.resets_at:
            window = _Window(resets_at=now + self.message_rate_limit[1])
        return window

    def bucket_remaining(self, channel_id: int | str, bucket: str = "create") -> int:
        """The requests ``bucket`` still takes in ``channel_id`` right now (``X-RateLimit-Remaining``
        after the next one would be one less); the full limit once the window has ended."""
        if self.message_rate_limit is None:
            raise ValueError("this stand-in has no message rate limits (message_rate_limit=None)")
        window = self._window(bucket, str(channel_id), time.monotonic())
        return self.message_rate_limit[0] - window.used

    def requests_in_bucket(self, channel_id: int | str, bucket: str = "create", start: float | None = None,
                           end: float | None = None, *, include_limited: bool = False) -> int:
        """How many requests of ``bucket`` (``"create"``, ``"edit"``, ``"delete"``) ``channel_id`` got
        between ``start`` and ``end`` (``time.monotonic()`` values, both included; None: no bound).
        Only performed ones unless ``include_limited`` (then the 429s count too)."""
        if bucket not in MESSAGE_BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}: one of {MESSAGE_BUCKETS}")
        return sum(1 for r in self.bucket_log
                   if r.bucket == bucket and r.channel_id == str(channel_id)
                   and (start is None or r.at >= start) and (end is None or r.at <= end)
                   and (include_limited or not r.limited))

    def _take(self, bucket: str, channel_id: str, method: str, path: str) -> tuple[dict[str, str], bool]:
        """Count one request against its bucket: returns the X-RateLimit headers for its response and
        whether it is over the limit (then it must be answered 429 and not performed)."""
        assert self.message_rate_limit is not None
        limit = self.message_rate_limit[0]
        now = time.monotonic()
        window = self._window(bucket, channel_id, now)
        limited = window.used >= limit
        if not limited:
            window.used += 1
            self._windows[(bucket, channel_id)] = window
            if window.used == limit:
                self.buckets_exhausted += 1
        reset_after = _ceil_ms(window.resets_at - now)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - window.used),
            "X-RateLimit-Reset": f"{_ceil_ms(time.time() + reset_after):.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": MESSAGE_BUCKET_HASHES[bucket],
        }
        self.bucket_log.append(BucketRequest(bucket, channel_id, method, path, now, limited))
        if limited:
            self.rate_limited.append(RateLimitHit(method, path, channel_id, bucket, reset_after, now))
        return headers, limited

    @staticmethod
    def _too_many_requests(headers: dict[str, str]) -> web.Response:
        """Discord's 429 for a bucket: the body discord.py reads ``retry_after`` from, ``Retry-After`` in
        whole seconds rounded up, the scope, and ``Via`` (without it discord.py assumes Cloudflare)."""
        retry_after = float(headers["X-RateLimit-Reset-After"])
        response = _json_response({"message": RATE_LIMITED_MESSAGE, "retry_after": retry_after, "global": False},
                                  status=429)
        response.headers.update(headers)
        response.headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user",
                                 "Via": "1.1 google"})
        return response

    # --- REST -----------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await self._body(request)
        self.rest_log.append(RestCall(request.method, path, dict(request.query), body,
                                      {k.lower(): v for k, v in request.headers.items()}, time.monotonic()))
        m, parts = request.method, path.strip("/").split("/")
        bucket = self._message_bucket(m, parts) if self.message_rate_limit is not None else None
        if bucket is None:
            return self._answer(m, path, parts, body)
        headers, limited = self._take(bucket, parts[1], m, path)
        if limited:
            return self._too_many_requests(headers)
        response = self._answer(m, path, parts, body)
        response.headers.update(headers)
        response.headers["Via"] = "1.1 google"
        return response

    def _answer(self, m: str, path: str, parts: list[str], body: Any) -> web.Response:
        """Perform one REST request and answer it as Discord would."""

        def ok(data: Any, status: int = 200) -> web.Response:
            return _json_response(data, status=status)

        if m == "GET" and path == "/users/@me":
            return ok(self.bot_user)
        if m == "GET" and path == "/gateway/bot":
            return ok({"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
        if m == "GET" and path == "/gateway":
            return ok({"url": self.gateway_url})
        if m == "GET" and path == "/oauth2/applications/@me":
            return ok({"id": str(self.application_id), "name": "Dungeon Master", "description": "", "icon": None,
                       "bot_public": True, "bot_require_code_grant": False, "owner": self.owner,
                       "verify_key": "0" * 64, "team": None, "flags": 0, "summary": "",
                       "rpc_origins": [], "terms_of_service_url": None, "privacy_policy_url": None})
        if parts[0] == "applications" and parts[-1] == "commands":
            key = path
            if m == "PUT":
                cmds = [{**c, "id": str(self._snowflake()), "application_id": str(self.application_id),
                         "version": "1", "default_member_permissions": c.get("default_member_permissions"),
                         "type": c.get("type", 1)} for c in (body or [])]
                self.commands[key] = cmds
                return ok(cmds)
            return ok(self.commands.get(key, []))
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "typing" and m == "POST":
            return web.Response(status=204)
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages" and m == "POST":
            msg = self._message(parts[1], body or {})
            record = {**(body or {}), "id": msg["id"], "channel_id": parts[1]}
            self.sent_messages.append(record)
            self._posted[msg["id"]] = msg
            return ok(msg)
        if parts[0] == "channels" and len(parts) == 4 and parts[2] == "messages" and m == "PATCH":
            # Discord: PATCH /channels/{channel.id}/messages/{message.id} edits the bot's own message and
            # returns the edited message; an unknown (or deleted) one is 404 "Unknown Message" (10008).
            known = self._posted.get(parts[3])
            if known is None or known["channel_id"] != parts[1]:
                return _json_response({"message": "Unknown Message", "code": 10008}, status=404)
            edits = {k: v for k, v in (body or {}).items() if k in ("content", "embeds", "components", "flags")}
            known.update({k: (v if v is not None else ([] if k in ("embeds", "components") else ""))
                          for k, v in edits.items()}, edited_timestamp=_now_iso())
            self.edited_messages.append({**(body or {}), "id": parts[3], "channel_id": parts[1]})
            return ok(known)
        if parts[0] == "channels" and len(parts) == 2 and m == "GET":
            return ok(self._channel(int(parts[1])))
        if parts[0] == "channels" and len(parts) == 4 and parts[2] == "messages":
            if m == "DELETE":
                self._posted.pop(parts[3], None)
                return web.Response(status=204)
            return ok(self._message(parts[1], body or {}))
        if parts[0] == "interactions" and parts[-1] == "callback" and m == "POST":
            resource: dict[str, Any] = {"type": (body or {}).get("type", 4)}
            data = (body or {}).get("data") or {}
            ephemeral = bool(data.get("flags", 0) & 64)
            token = parts[2] if len(parts) > 2 else ""
            if resource["type"] == 4:
                resource["message"] = self._message(None, data)
                self.answers.setdefault(token, []).append({"content": data.get("content") or "", "ephemeral": ephemeral,
                                                           "deleted": False})
            elif resource["type"] == 5:  # "thinking...": the original message, public unless the defer was ephemeral
                self.answers.setdefault(token, []).append({"content": None, "ephemeral": ephemeral, "deleted": False,
                                                           "placeholder": True})
            return ok({"interaction": {"id": parts[1], "type": 2, "response_message_loading": resource["type"] == 5,
                                       "response_message_ephemeral": bool(data.get("flags", 0) & 64)},
                       "resource": resource})
        if parts[0] == "webhooks" and len(parts) >= 3:
            # Discord: after a defer, the first follow-up REPLACES the "thinking" original, keeping the
            # defer's visibility whatever the follow-up's flags; later follow-ups are messages of their
            # own with their own flags. DELETE .../messages/@original removes the original (204).
            token = parts[2]
            answers = self.answers.setdefault(token, [])
            pending = next((a for a in answers if a.get("placeholder") and not a["deleted"]), None)
            if m == "DELETE" and parts[-1] == "@original":
                original = answers[0] if answers else None
                if original is None or original["deleted"]:
                    return _json_response({"message": "Unknown Message", "code": 10008}, status=404)
                original["deleted"] = True
                return web.Response(status=204)
            if m == "POST":
                flags_ephemeral = bool((body or {}).get("flags", 0) & 64)
                if pending is not None:
                    pending.update(content=(body or {}).get("content") or "", placeholder=False)
                else:
                    answers.append({"content": (body or {}).get("content") or "", "ephemeral": flags_ephemeral,
                                    "deleted": False})
            return ok(self._message(None, body or {}))
        return _json_response({"message": f"404: Not Found ({m} {path})", "code": 0}, status=404)

    # --- reading what the bot did -----------------------------------------------------------------
    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages the bot posted in a channel (POST /channels/{id}/messages bodies), in order."""
        return [m for m in self.sent_messages if m["channel_id"] == str(channel_id)]

    def shown_in(self, channel_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a channel as the table sees them now: in posting order, with the
        content and embeds of their latest edit, deleted ones left out."""
        return [dict(m) for m in self._posted.values() if m["channel_id"] == str(channel_id)]

    def delete_message(self, message_id: int | str) -> None:
        """Delete one of the bot's messages as a person with Manage Messages would in their client:
        later edits of it get 404 Unknown Message."""
        self._posted.pop(str(message_id), None)

    def edits_of(self, message_id: int | str) -> list[dict[str, Any]]:
        """The PATCH bodies that edited one message, in order."""
        return [e for e in self.edited_messages if e["id"] == str(message_id)]

    def seen_answers(self, interaction_id: str) -> list[dict[str, Any]]:
        """An interaction's answers as Discord shows them: ``{"content", "ephemeral", "deleted"}`` per
        message (a "thinking" placeholder that no follow-up replaced has content None), visibility as
        it results (a first follow-up after a public defer is public whatever its flags)."""
        token = self._interactions.get(str(interaction_id), str(interaction_id))
        return [{k: a[k] for k in ("content", "ephemeral", "deleted")} for a in self.answers.get(token, [])]

    def interaction_responses(self, interaction_id: str) -> list[RestCall]:
        """The callback, follow-ups and edits for one interaction, in order."""
        token = self._interactions.get(str(interaction_id), str(interaction_id))
        out = []
        for call in self.rest_log:
            if call.path.startswith(f"/interactions/{interaction_id}/") or f"/{token}" in call.path:
                out.append(call)
        return out

    def _snowflake(self, age_seconds: float = 0.0) -> int:
        """A fresh id whose embedded timestamp is now (minus ``age_seconds``), as Discord's are:
        discord.py derives an interaction's 15-minute expiry (and message times) from it."""
        ms = int((time.time() - age_seconds) * 1000) - 1_420_070_400_000  # Discord epoch, 2015-01-01
        return (ms << 22) | (next(self._counter) & 0xFFF)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, *,
                       what: str | None = None) -> None:
        """Until ``predicate()`` is true, checked every 20 ms for at most ``timeout`` seconds.

        Raises ``AssertionError`` naming ``what`` was awaited (default: the predicate's source line)
        when it is still false at the deadline.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or _describe(predicate)}")
            await asyncio.sleep(0.02)

    async def wait_for_messages(self, channel_id: int, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Until the bot has posted at least ``count`` messages in ``channel_id``; returns them all.

        Raises ``AssertionError`` with how many arrived and the last one's content otherwise.
        """
        def enough() -> bool:
            return len(self.messages_in(channel_id)) >= count

        try:
            await self.wait_for(enough, timeout)
        except AssertionError:
            sent = self.messages_in(channel_id)
            last = repr((sent[-1].get("content") or "")[:200]) if sent else "none"
            raise AssertionError(f"the bot posted {len(sent)} message(s) in channel {channel_id} within "
                                 f"{timeout} s, expected at least {count}; last: {last}") from None
        return self.messages_in(channel_id)


def _describe(predicate: Callable[[], bool]) -> str:
    """The source line of a predicate (a lambda, usually), for a timeout message."""
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
