"""The REST half of the fake: Discord's HTTP API v10 (under ``/api/v10``) and a CDN for attachments.

Covered routes (what discord.py 2.7 calls for a bot like ours):

* login: ``GET /users/@me`` (and ``/users/@me/guilds``), ``GET /oauth2/applications/@me``;
  ``GET /gateway`` (``url``) and ``GET /gateway/bot`` (``url``, the recommended ``shards`` and the
  ``session_start_limit``, all from ``World.sharding``: see ``gateway.py`` for what IDENTIFY does
  with them);
* commands: ``GET``/``PUT /applications/{app}/commands`` and ``.../guilds/{guild}/commands`` (bulk
  overwrite; ids stay stable per name and type);
* interactions: ``POST /interactions/{id}/{token}/callback`` (JSON, or multipart with
  ``payload_json`` + ``files[n]``) answering ``{interaction, resource}`` when ``with_response`` is
  set and 204 otherwise; unknown/expired interaction (ack deadline, 3 s by default) → 404 code
  10062; a second callback → 400 code 40060;
* every non-ephemeral message the bot creates, edits or deletes, through any route, is dispatched
  as MESSAGE_CREATE/UPDATE/DELETE (``messages.dispatch``);
* interaction webhooks: ``POST /webhooks/{app}/{token}`` (follow-ups; ``?wait=1`` returns the
  Message; the first follow-up after a deferred "thinking" callback fills @original and inherits
  its ephemeral flag, as Discord does), ``GET``/``PATCH``/``DELETE
  /webhooks/{app}/{token}/messages/{@original|id}`` (PATCH may be multipart);
* channel messages (guild text and voice channels, DMs): ``POST /channels/{id}/messages``,
  ``GET /channels/{id}/messages`` (history, ``messages.history``), ``GET``/``PATCH``/``DELETE
  /channels/{id}/messages/{mid}``, ``POST /channels/{id}/typing`` (bot permissions checked at guild
  level → 403 code 50013; reading a voice channel's chat also needs CONNECT; deleting someone
  else's message needs MANAGE_MESSAGES), MESSAGE_CREATE/UPDATE/DELETE dispatched to the gateway;
  messages read back are emptied of content unless the Message Content intent is enabled for the
  application (``intents.visible_message``);
* users and DMs: ``GET /users/{id}`` (unknown → 404 code 10013), ``POST /users/@me/channels``
  opens (or returns) the DM channel with a user (unknown → 400 code 50033);
* guild members: ``GET /guilds/{guild}/members/{user}`` (unknown guild → 404 code 10004, a user
  who is not a member → 404 code 10007);
* uploads: attachments get ids, CDN URLs and a content type guessed from the file name; files over
  the upload limit → 413 code 40005; voice messages cannot be edited (50162);
* Discord's limits: every command sync, message create/edit, follow-up, autocomplete result and
  modal is checked by ``limits`` (400 with 50035 and the field path, 50006, 50159-50161, 30032),
  and each route keeps only the message flags Discord lets bots set there;
* ``GET /attachments/{channel}/{attachment}/{filename}`` (outside ``/api``): the CDN.

Any request without ``Authorization: Bot <token>`` (except webhook and interaction routes) gets
401; unknown routes get 404 and are listed in ``FakeDiscord.unhandled_requests``; refused ones say
which limit they broke in ``RequestLog.refusal`` (``FakeDiscord.refused_requests``). Faults armed
with ``FakeDiscord.arm_fault`` apply before routing (see ``faults.py``).

Not covered: rate-limit buckets on normal replies (only injected 429s), reactions, threads,
pins, bans, roles/channels editing, webhooks other than interaction webhooks, polls, pre-uploaded
attachments (``/channels/{id}/attachments``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import intents, limits, messages
from .faults import FaultInjector
from .interactions import ALLOWED_CALLBACKS, CallbackType, InteractionRecord, Reply
from .models import (
    DEFAULT_UPLOAD_LIMIT,
    Channel,
    Message,
    MessageFlag,
    Perm,
    UploadedFile,
    guess_content_type,
)
from .state import RequestLog, World
from .util import error_response, iso_now, json_response

API_PREFIX = "/api/v10"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_FILE_FIELD = re.compile(r"^files?\[(\d+)\]$|^file(\d*)$")
_UNAUTHENTICATED = re.compile(r"^/(webhooks|interactions)/")


class BadRequest(Exception):
    """Raised inside handlers to answer with a Discord JSON error; ``refusal`` names a broken limit."""

    def __init__(
        self, status: int, code: int, message: str, *, refusal: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.response = error_response(status, code, message, **extra)


def refuse(refusal: limits.Refusal | None, record: InteractionRecord | None = None) -> None:
    """Answer as Discord does when a payload breaks one of its documented limits (``limits``)."""
    if refusal is None:
        return
    if record is not None:
        record.rejected.append(refusal.describe())
    extra = {"errors": refusal.errors} if refusal.errors is not None else {}
    raise BadRequest(refusal.status, refusal.code, refusal.message, refusal=refusal.describe(), **extra)


class RestApi:
    """aiohttp routes for the REST API and the CDN, sharing one :class:`World`."""

    def __init__(self, world: World, faults: FaultInjector) -> None:
        self.world = world
        self.faults = faults
        self.unhandled: list[RequestLog] = []
        self.gateway_url = ""

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        r = app.router
        p = API_PREFIX
        r.add_get(p + "/users/@me", self.get_me)
        r.add_get(p + "/users/@me/guilds", self.get_my_guilds)
        r.add_get(p + "/oauth2/applications/@me", self.get_application)
        r.add_get(p + "/applications/@me", self.get_application)
        r.add_get(p + "/gateway", self.get_gateway)
        r.add_get(p + "/gateway/bot", self.get_gateway_bot)
        r.add_get(p + "/applications/{app}/commands", self.get_commands)
        r.add_put(p + "/applications/{app}/commands", self.put_commands)
        r.add_get(p + "/applications/{app}/guilds/{guild}/commands", self.get_commands)
        r.add_put(p + "/applications/{app}/guilds/{guild}/commands", self.put_commands)
        r.add_post(p + "/interactions/{interaction}/{token}/callback", self.interaction_callback)
        r.add_post(p + "/webhooks/{app}/{token}", self.execute_webhook)
        r.add_get(p + "/webhooks/{app}/{token}/messages/{message}", self.get_webhook_message)
        r.add_patch(p + "/webhooks/{app}/{token}/messages/{message}", self.edit_webhook_message)
        r.add_delete(p + "/webhooks/{app}/{token}/messages/{message}", self.delete_webhook_message)
        r.add_post(p + "/users/@me/channels", self.open_dm)
        r.add_get(p + r"/users/{user:\d+}", self.get_user)
        r.add_post(p + "/channels/{channel}/messages", self.create_message)
        r.add_get(p + "/channels/{channel}/messages", self.get_messages)
        r.add_get(p + "/channels/{channel}/messages/{message}", self.get_message)
        r.add_patch(p + "/channels/{channel}/messages/{message}", self.edit_message)
        r.add_delete(p + "/channels/{channel}/messages/{message}", self.delete_message)
        r.add_post(p + "/channels/{channel}/typing", self.typing)
        r.add_get(p + r"/guilds/{guild:\d+}/members/{user:\d+}", self.get_member)
        r.add_get("/attachments/{channel}/{attachment}/{filename}", self.cdn)
        r.add_route("*", p + "/{tail:.*}", self.not_found)

    # -- middleware: log, faults, auth, error bodies ---------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        path = request.path[len(API_PREFIX) :]
        log = RequestLog(request.method, path, dict(request.query))
        self.world.requests.append(log)
        try:
            fault = self.faults.take(request.method, path)
            if fault is not None:
                log.fault = fault.kind
                faulty = await fault.respond()
                if faulty is not None:
                    log.status = faulty.status
                    return faulty
            if not _UNAUTHENTICATED.match(path):
                if request.headers.get("Authorization") != f"Bot {self.world.token}":
                    log.status = 401
                    return error_response(401, 0, "401: Unauthorized")
            try:
                response = await handler(request)
            except BadRequest as exc:
                response = exc.response
                log.refusal = exc.refusal
            log.status = response.status
            return response
        finally:
            self.world.signal.notify()

    async def not_found(self, request: web.Request) -> web.Response:
        self.unhandled.append(self.world.requests[-1])
        return error_response(404, 0, "404: Not Found")

    # -- login and gateway discovery -------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        user = self.world.bot.payload()
        user.update(verified=True, mfa_enabled=False, flags=0, email=None, locale="en-US")
        return json_response(user)

    async def get_my_guilds(self, request: web.Request) -> web.Response:
        guilds = [{"id": str(g.id), "name": g.name} for g in self.world.guilds.values()]
        return json_response(guilds)

    async def get_application(self, request: web.Request) -> web.Response:
        return json_response(self.world.application_payload())

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        sharding = self.world.sharding
        return json_response(
            {
                "url": self.gateway_url,
                "shards": sharding.shards,
                "session_start_limit": sharding.session_start_limit(),
            }
        )

    # -- application commands --------------------------------------------------------------------

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.world.application_id):
            raise BadRequest(403, 50001, "Missing Access")

    def _scope(self, request: web.Request) -> int | None:
        guild = request.match_info.get("guild")
        if guild is None:
            return None
        if int(guild) not in self.world.guilds:
            raise BadRequest(403, 50001, "Missing Access")
        return int(guild)

    async def get_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        return json_response(self.world.commands.in_scope(self._scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        scope = self._scope(request)
        commands = await request.json()
        refuse(limits.command_sync_refusal(commands, guild=scope is not None))
        return json_response(self.world.commands.overwrite(scope, commands))

    # -- interaction callback --------------------------------------------------------------------

    async def interaction_callback(self, request: web.Request) -> web.Response:
        record = self.world.interactions.get(int(request.match_info["interaction"]))
        if record is None or record.token != request.match_info["token"]:
            raise BadRequest(404, 10062, "Unknown interaction")
        if record.acked:
            record.rejected.append("callback after the interaction was already acknowledged")
            raise BadRequest(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.world.ack_deadline
        late = time.monotonic() - record.dispatched_at
        if deadline is not None and late > deadline:
            record.rejected.append(f"callback {late:.2f}s after dispatch (limit {deadline}s)")
            raise BadRequest(404, 10062, "Unknown interaction")
        body, files = await read_message_body(request)
        callback_type = body.get("type")
        data = body.get("data") or {}
        if callback_type not in ALLOWED_CALLBACKS.get(record.type, set()):
            raise BadRequest(
                400,
                50035,
                "Invalid Form Body",
                errors={"type": {"_errors": [{"code": "INVALID", "message": "Invalid type"}]}},
            )
        self._check_upload_size(files, record.payload["attachment_size_limit"])
        reply = Reply(kind="callback", callback_type=callback_type, payload=body, files=files)
        message: Message | None = None
        if callback_type == CallbackType.CHANNEL_MESSAGE:
            flags = limits.kept_flags(data.get("flags"), limits.RESPONSE_FLAGS)
            refuse(limits.message_refusal(data, files, flags=flags, prefix=("data",)), record)
            message = self._new_interaction_message(record, data, files, flags)
        elif callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE:
            flags = limits.kept_flags(data.get("flags"), limits.DEFERRED_FLAGS)
            message = self._new_interaction_message(record, {}, [], flags)
            message.flags |= MessageFlag.LOADING
            record.loading = True
        elif callback_type == CallbackType.UPDATE_MESSAGE:
            if record.source_message_id is None:
                raise BadRequest(400, 50035, "Invalid Form Body")  # nothing to update
            message = self.world.messages[record.source_message_id]
            self._check_edit(message, data, files, record, prefix=("data",))
            self._apply_edit(message, data, files)
        elif callback_type == CallbackType.DEFERRED_UPDATE_MESSAGE and record.source_message_id:
            message = self.world.messages[record.source_message_id]
        elif callback_type == CallbackType.AUTOCOMPLETE_RESULT:
            refuse(limits.autocomplete_refusal(data), record)
        elif callback_type == CallbackType.MODAL:
            refuse(limits.modal_refusal(data), record)
        if message is not None:
            record.original_message_id = message.id
            reply.with_message(message)
            if callback_type in (CallbackType.CHANNEL_MESSAGE, CallbackType.DEFERRED_CHANNEL_MESSAGE):
                messages.dispatch(self.world, "MESSAGE_CREATE", message)
            elif callback_type == CallbackType.UPDATE_MESSAGE:
                messages.dispatch(self.world, "MESSAGE_UPDATE", message)
        record.replies.append(reply)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        interaction: dict[str, Any] = {"id": str(record.id), "type": record.type}
        result: dict[str, Any] = {"interaction": interaction}
        if message is not None:
            interaction.update(
                response_message_id=str(message.id),
                response_message_loading=callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE,
                response_message_ephemeral=message.ephemeral,
            )
            if callback_type != CallbackType.DEFERRED_UPDATE_MESSAGE:
                result["resource"] = {"type": callback_type, "message": message.payload()}
        return json_response(result)

    def _new_interaction_message(
        self, record: InteractionRecord, data: dict[str, Any], files: list[UploadedFile], flags: int
    ) -> Message:
        command_type = record.payload["data"].get("type", 1)
        if record.type == 2:
            message_type = 20 if command_type == 1 else 23
        else:
            message_type = 0 if record.type == 3 else 20
        message = self._create(
            record.channel_id, data, files, flags=flags, message_type=message_type, webhook=True
        )
        message.interaction_metadata = {
            "id": str(record.id),
            "type": record.type,
            "user": record.payload["member"]["user"],
            "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
            "name": record.name,
        }
        return message

    # -- interaction webhooks ----------------------------------------------------------------------

    def _webhook_record(self, request: web.Request) -> InteractionRecord:
        record = self.world.interaction_by_token(request.match_info["token"])
        if record is None or request.match_info["app"] != str(self.world.application_id) or not record.acked:
            raise BadRequest(404, 10015, "Unknown Webhook")
        return record

    def _webhook_message(self, request: web.Request, record: InteractionRecord) -> Message:
        ref = request.match_info["message"]
        message_id = record.original_message_id if ref == "@original" else int(ref) if ref.isdigit() else None
        owned = {record.original_message_id, *(r.message_id for r in record.replies)} - {None}
        message = self.world.messages.get(message_id) if message_id in owned else None  # type: ignore[arg-type]
        if message is None or message.deleted:
            raise BadRequest(404, 10008, "Unknown Message")
        return message

    async def execute_webhook(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        body, files = await read_message_body(request)
        self._check_upload_size(files, record.payload["attachment_size_limit"])
        original = record.original
        if record.loading and original is not None:
            # The first follow-up after a "thinking" defer becomes the deferred message itself.
            ephemeral = original.flags & MessageFlag.EPHEMERAL
            flags = ephemeral | limits.kept_flags(body.get("flags"), limits.FOLLOWUP_FLAGS & ~ephemeral)
            refuse(limits.message_refusal(body, files, flags=flags), record)
            original.flags = flags
            self._apply_edit(original, body, files, creating=True)
            record.loading = False
            message = original
            messages.dispatch(self.world, "MESSAGE_UPDATE", message)
        else:
            flags = limits.kept_flags(body.get("flags"), limits.FOLLOWUP_FLAGS)
            refuse(limits.message_refusal(body, files, flags=flags), record)
            message = self._create(record.channel_id, body, files, flags=flags, message_type=0, webhook=True)
            messages.dispatch(self.world, "MESSAGE_CREATE", message)
        record.replies.append(Reply(kind="followup", payload=body, files=files).with_message(message))
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message.payload())
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        return json_response(self._webhook_message(request, record).payload())

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = self._webhook_message(request, record)
        body, files = await read_message_body(request)
        self._check_upload_size(files, record.payload["attachment_size_limit"])
        self._check_edit(message, body, files, record)
        self._apply_edit(message, body, files)
        is_original = message.id == record.original_message_id
        if is_original:
            record.loading = False
        kind = "edit" if is_original else "followup_edit"
        record.replies.append(Reply(kind=kind, payload=body, files=files).with_message(message))
        messages.dispatch(self.world, "MESSAGE_UPDATE", message)
        return json_response(message.payload())

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = self._webhook_message(request, record)
        record.replies.append(Reply(kind="delete").with_message(message))
        messages.delete(self.world, message)
        return web.Response(status=204)

    # -- channel messages --------------------------------------------------------------------------

    def _channel(self, request: web.Request, *needed: Perm) -> int:
        channel_id = int(request.match_info["channel"])
        channel = self.world.channel(channel_id)
        if channel is None:
            raise BadRequest(404, 10003, "Unknown Channel")
        if channel.guild_id is None:
            return channel_id  # a DM: no permissions apply
        for permission in (Perm.VIEW_CHANNEL, *needed):
            if not self._bot_permissions(channel) & permission:
                raise BadRequest(403, 50013, "Missing Permissions")
        return channel_id

    def _bot_permissions(self, channel: Channel) -> int:
        guild = self.world.guilds[channel.guild_id or 0]
        return guild.permissions_of(guild.members[self.world.bot.id])

    def _reading(self, request: web.Request) -> Channel:
        """The channel whose messages the bot reads: VIEW_CHANNEL, and CONNECT in a voice channel
        (resources/message.mdx, Get Channel Message(s))."""
        channel = self.world.channel(self._channel(request))
        assert channel is not None
        if channel.is_voice:
            self._channel(request, Perm.CONNECT)
        return channel

    def _as_read(self, message: Message) -> dict[str, Any]:
        """A stored message as the bot reads it over REST: the Portal's Message Content setting counts."""
        content_intent = self.world.message_content_enabled
        return intents.visible_message(
            message.payload(), self.world.application_id, content_intent=content_intent
        )

    def _channel_message(self, request: web.Request, channel_id: int) -> Message:
        message = self.world.messages.get(int(request.match_info["message"]))
        if message is None or message.deleted or message.channel_id != channel_id or message.ephemeral:
            raise BadRequest(404, 10008, "Unknown Message")
        return message

    async def create_message(self, request: web.Request) -> web.Response:
        channel_id = self._channel(request, Perm.SEND_MESSAGES)
        body, files = await read_message_body(request)
        flags = int(body.get("flags") or 0)
        if files:
            self._channel(request, Perm.ATTACH_FILES)
        if flags & MessageFlag.IS_VOICE_MESSAGE:
            self._channel(request, Perm.SEND_VOICE_MESSAGES)
        guild = self.world.guilds.get(self.world.channel(channel_id).guild_id or 0)  # type: ignore[union-attr]
        self._check_upload_size(files, guild.upload_limit if guild else DEFAULT_UPLOAD_LIMIT)
        flags = limits.kept_flags(flags, limits.CHANNEL_MESSAGE_FLAGS)
        refuse(limits.message_refusal(body, files, flags=flags))
        message = self._create(channel_id, body, files, flags=flags, message_type=0)
        reply = Reply(kind="message", payload=body, files=files).with_message(message)
        self.world.channel_replies.append(reply)
        messages.dispatch(self.world, "MESSAGE_CREATE", message)
        return json_response(message.payload())

    async def get_messages(self, request: web.Request) -> web.Response:
        channel = self._reading(request)
        low, high, default = messages.HISTORY_LIMITS
        try:
            limit = int(request.query.get("limit", default))
            anchors = {k: int(v) for k, v in request.query.items() if k in ("before", "after", "around")}
        except ValueError:
            raise BadRequest(400, 50035, "Invalid Form Body") from None
        if not low <= limit <= high or len(anchors) > 1:
            raise BadRequest(400, 50035, "Invalid Form Body")
        if channel.guild_id is not None and not self._bot_permissions(channel) & Perm.READ_MESSAGE_HISTORY:
            return json_response([])  # "If the current user is missing READ_MESSAGE_HISTORY ... no messages"
        found = messages.history(self.world, channel.id, limit=limit, **anchors)
        return json_response([self._as_read(m) for m in found])

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self._reading(request)
        self._channel(request, Perm.READ_MESSAGE_HISTORY)
        return json_response(self._as_read(self._channel_message(request, channel.id)))

    async def edit_message(self, request: web.Request) -> web.Response:
        channel_id = self._channel(request)
        message = self._channel_message(request, channel_id)
        if message.author.id != self.world.bot.id:
            raise BadRequest(403, 50005, "Cannot edit a message authored by another user")
        body, files = await read_message_body(request)
        self._check_edit(message, body, files)
        self._apply_edit(message, body, files)
        reply = Reply(kind="message_edit", payload=body, files=files).with_message(message)
        self.world.channel_replies.append(reply)
        messages.dispatch(self.world, "MESSAGE_UPDATE", message)
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        channel_id = self._channel(request)
        message = self._channel_message(request, channel_id)
        if message.author.id != self.world.bot.id:
            if message.guild_id is None:
                raise BadRequest(403, 50003, "Cannot execute action on a DM channel")
            self._channel(request, Perm.MANAGE_MESSAGES)  # someone else's message (Delete Message)
        self.world.channel_replies.append(Reply(kind="message_delete").with_message(message))
        messages.delete(self.world, message)
        return web.Response(status=204)

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.world.users.get(int(request.match_info["user"]))
        if user is None:
            raise BadRequest(404, 10013, "Unknown User")
        return json_response(user.payload())

    async def open_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.world.users.get(int(body.get("recipient_id") or 0))
        if user is None or user.id == self.world.bot.id:
            raise BadRequest(400, 50033, "Invalid Recipient(s)")
        return json_response(self.world.dm_channel(user).payload())

    async def typing(self, request: web.Request) -> web.Response:
        self._channel(request, Perm.SEND_MESSAGES)
        return web.Response(status=204)

    # -- guild members ---------------------------------------------------------------------------

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self.world.guilds.get(int(request.match_info["guild"]))
        if guild is None:
            raise BadRequest(404, 10004, "Unknown Guild")
        member = guild.members.get(int(request.match_info["user"]))
        if member is None:
            raise BadRequest(404, 10007, "Unknown Member")
        return json_response(member.payload())

    # -- CDN -------------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.Response:
        stored = self.world.cdn.get(int(request.match_info["attachment"]))
        if stored is None or stored[0] != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        _, data, content_type = stored
        return web.Response(body=data, headers={"Content-Type": content_type})

    # -- message building ------------------------------------------------------------------------

    def _create(
        self,
        channel_id: int,
        body: dict[str, Any],
        files: list[UploadedFile],
        *,
        flags: int,
        message_type: int,
        webhook: bool = False,
    ) -> Message:
        channel = self.world.channel(channel_id)
        guild_id = channel.guild_id if channel is not None else None
        message = Message(
            id=self.world.snowflake(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=self.world.bot,
            flags=flags,
            type=message_type,
        )
        if webhook:
            message.webhook_id = message.application_id = self.world.application_id
        self._apply_edit(message, body, files, creating=True)
        self.world.messages[message.id] = message
        return message

    @staticmethod
    def _check_edit(
        message: Message,
        body: dict[str, Any],
        files: list[UploadedFile],
        record: InteractionRecord | None = None,
        *,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """Discord's rules for an edit: never a voice message, and the result must be a valid message."""
        if message.flags & MessageFlag.IS_VOICE_MESSAGE:
            raise BadRequest(400, 50162, "Voice messages cannot be edited")
        flags = limits.edited_flags(message.flags, body.get("flags"))
        current = message.payload()
        refuse(limits.message_refusal(body, files, flags=flags, current=current, prefix=prefix), record)

    def _apply_edit(
        self, message: Message, body: dict[str, Any], files: list[UploadedFile], *, creating: bool = False
    ) -> None:
        if not creating:
            message.flags = limits.edited_flags(message.flags, body.get("flags"))
            message.edited_timestamp = iso_now()
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "tts" in body:
            message.tts = bool(body["tts"])
        if "attachments" in body or files:
            message.attachments = self._attachments(message, body, files)
            message.files.extend(files)
        message.flags &= ~MessageFlag.LOADING

    def _attachments(
        self, message: Message, body: dict[str, Any], files: list[UploadedFile]
    ) -> list[dict[str, Any]]:
        """Discord's rules: a given ``attachments`` list is the full list (kept ids + new uploads
        referenced by index); without it, new files are appended to the current ones."""
        by_index = {f.index: f for f in files}
        current = {a["id"]: a for a in message.attachments}
        used: set[int] = set()
        result: list[dict[str, Any]] = []
        listed = body.get("attachments")
        entries = list(listed) if listed is not None else [dict(a) for a in message.attachments]
        for entry in entries:
            ident = str(entry.get("id", ""))
            if ident in current:
                result.append(current[ident])
            elif ident.isdigit() and int(ident) in by_index and int(ident) not in used:
                used.add(int(ident))
                result.append(self._upload(message, by_index[int(ident)], entry))
        for upload in files:
            if upload.index not in used:
                result.append(self._upload(message, upload, {}))
        return result

    def _upload(self, message: Message, upload: UploadedFile, entry: dict[str, Any]) -> dict[str, Any]:
        filename = entry.get("filename") or upload.filename
        upload.description = entry.get("description", upload.description)
        attachment = self.world.store_attachment(
            message.channel_id,
            filename,
            upload.data,
            upload.content_type,
            description=upload.description,
            duration_secs=entry.get("duration_secs"),
            waveform=entry.get("waveform"),
            flags=int(entry.get("flags") or 0),
        )
        upload.attachment_id = attachment.id
        return attachment.payload()

    @staticmethod
    def _check_upload_size(files: list[UploadedFile], limit: int) -> None:
        if any(f.size > limit for f in files):
            raise BadRequest(413, 40005, "Request entity too large")


async def read_message_body(request: web.Request) -> tuple[dict[str, Any], list[UploadedFile]]:
    """A message body: JSON, or multipart with ``payload_json`` and ``files[n]`` parts."""
    if not request.content_type.startswith("multipart/"):
        raw = await request.read()
        return (json.loads(raw) if raw else {}), []
    body: dict[str, Any] = {}
    files: list[UploadedFile] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        name = part.name or ""  # type: ignore[union-attr]
        if name == "payload_json":
            body = json.loads(await part.text())  # type: ignore[union-attr]
            continue
        match = _FILE_FIELD.match(name)
        if match is None:
            continue
        index = int(match.group(1) or match.group(2) or len(files))
        data = bytes(await part.read())  # type: ignore[union-attr]
        filename = part.filename or f"file{index}"  # type: ignore[union-attr]
        part_type = part.headers.get("Content-Type", "application/octet-stream")  # type: ignore[union-attr]
        files.append(
            UploadedFile(
                filename=filename,
                data=data,
                index=index,
                part_content_type=part_type,
                content_type=guess_content_type(filename, part_type),
            )
        )
    return body, files
