"""Interactions: building the INTERACTION_CREATE payloads a Discord client would send, and recording
everything the bot answers.

Payloads follow Discord's interaction object with the keys discord.py 2.7 reads (``id``,
``application_id``, ``type``, ``token``, ``version``, ``attachment_size_limit``, ``guild_id``,
``member`` with ``permissions``, ``channel``, ``app_permissions``, ``locale``). Covered:

* slash commands (type 2, data.type 1) with string/integer/boolean/number/user/channel/role/
  mentionable/attachment options, resolved users/members/roles/channels/attachments, subcommands
  (option type 1) and groups (type 2); options are typed from the schema the bot synced;
* autocomplete (type 4) with one ``focused`` option;
* user and message context-menu commands (data.type 2/3, ``target_id``, resolved users/members or
  messages, e.g. a voice message with its Ogg/Opus attachment);
* message components (type 3: buttons, string selects) and modal submits (type 5) mirroring the
  modal the bot opened (action rows or labels around text inputs / selects).

Not covered: DMs and user-installed app contexts, entity selects with resolved data, file-upload
components in modals, PING (type 1, only for HTTP interactions).

:class:`InteractionRecord` is what ``FakeDiscord.invoke`` and friends return. Each bot action on it
becomes a :class:`Reply` (callback, edit of @original, follow-up, follow-up edit, delete) in
arrival order; ``await record.wait_for(...)`` waits for them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .models import Attachment, Channel, Guild, Member, Message, MessageFlag, Role, UploadedFile, User
from .state import World


class InteractionType:
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType:
    CHANNEL_MESSAGE = 4
    DEFERRED_CHANNEL_MESSAGE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE_RESULT = 8
    MODAL = 9


#: Which callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS: dict[int, set[int]] = {
    InteractionType.APPLICATION_COMMAND: {4, 5, 9, 12},
    InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9, 12},
    InteractionType.AUTOCOMPLETE: {8},
    InteractionType.MODAL_SUBMIT: {4, 5, 6, 7},
}


@dataclass
class Reply:
    """One thing the bot did in answer to an interaction (or in a channel).

    ``kind`` is ``"callback"``, ``"edit"`` (of @original), ``"followup"``, ``"followup_edit"``,
    ``"delete"``, or for channel messages ``"message"``, ``"message_edit"``, ``"message_delete"``.
    Message fields (``content``, ``embeds``, ``components``, ``attachments``, ``flags``) describe the
    message *after* the action; ``files`` are the bytes uploaded by this request; ``payload`` is the
    JSON the bot sent (for callbacks the whole ``{type, data}`` body).
    """

    kind: str
    at: float = field(default_factory=time.monotonic)
    callback_type: int | None = None
    message_id: int | None = None
    channel_id: int | None = None
    content: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)
    flags: int = 0
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def is_voice_message(self) -> bool:
        return bool(self.flags & MessageFlag.IS_VOICE_MESSAGE)

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices (callback type 8)."""
        if self.callback_type == CallbackType.AUTOCOMPLETE_RESULT:
            return list(self.payload.get("data", {}).get("choices", []))
        return None

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot opened (callback type 9): ``custom_id``, ``title``, ``components``."""
        if self.callback_type == CallbackType.MODAL:
            return self.payload.get("data", {})
        return None

    def with_message(self, message: Message) -> Reply:
        """Fill the message fields from the stored message's current state."""
        self.message_id = message.id
        self.channel_id = message.channel_id
        self.content = message.content
        self.embeds = list(message.embeds)
        self.components = list(message.components)
        self.attachments = [dict(a) for a in message.attachments]
        self.flags = message.flags
        return self

    def summary(self) -> str:
        parts = [self.kind]
        if self.callback_type is not None:
            parts.append(f"type={self.callback_type}")
        if self.content:
            parts.append(f"content={self.content[:60]!r}")
        if self.files:
            parts.append(f"files={[f.filename for f in self.files]}")
        if self.ephemeral:
            parts.append("ephemeral")
        return " ".join(parts)


class InteractionRecord:
    """One dispatched interaction and everything the bot answered, in order."""

    def __init__(self, world: World, *, payload: dict[str, Any], name: str) -> None:
        self._world = world
        self.payload = payload
        self.name = name
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id = int(payload["guild_id"])
        self.channel_id = int(payload["channel_id"])
        self.user_id = int(payload["member"]["user"]["id"])
        self.source_message_id: int | None = int(payload["message"]["id"]) if "message" in payload else None
        self.dispatched_at = time.monotonic()
        self.replies: list[Reply] = []
        self.rejected: list[str] = []
        self.original_message_id: int | None = None
        self.loading = False

    # -- what the bot did ------------------------------------------------------------------------

    @property
    def callback(self) -> Reply | None:
        return next((r for r in self.replies if r.kind == "callback"), None)

    @property
    def callback_type(self) -> int | None:
        callback = self.callback
        return None if callback is None else callback.callback_type

    @property
    def acked(self) -> bool:
        return self.callback is not None

    @property
    def ack_delay(self) -> float | None:
        """Seconds from dispatch to the callback (Discord allows 3)."""
        callback = self.callback
        return None if callback is None else callback.at - self.dispatched_at

    @property
    def original(self) -> Message | None:
        """The @original message as it stands now (None before a message callback)."""
        if self.original_message_id is None:
            return None
        return self._world.messages.get(self.original_message_id)

    @property
    def ephemeral(self) -> bool:
        """Whether the response (@original) is ephemeral (flags & 64)."""
        original = self.original
        if original is not None:
            return original.ephemeral
        callback = self.callback
        return bool(callback and callback.payload.get("data", {}).get("flags", 0) & MessageFlag.EPHEMERAL)

    @property
    def edits(self) -> list[Reply]:
        return [r for r in self.replies if r.kind == "edit"]

    @property
    def followups(self) -> list[Reply]:
        return [r for r in self.replies if r.kind == "followup"]

    @property
    def files(self) -> list[UploadedFile]:
        """Every file the bot uploaded for this interaction, in order."""
        return [f for r in self.replies for f in r.files]

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        callback = self.callback
        return None if callback is None else callback.choices

    @property
    def modal(self) -> dict[str, Any] | None:
        callback = self.callback
        return None if callback is None else callback.modal

    # -- waiting ---------------------------------------------------------------------------------

    async def wait_for(
        self,
        what: int | Callable[[Reply], bool] = 1,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Any:
        """Wait for replies: an int ``n`` returns the first ``n`` replies once they exist; a
        predicate returns the first reply it accepts (already received or arriving later)."""
        if isinstance(what, int):
            count = max(what, 1)
            return await self._world.signal.wait_until(
                lambda: self.replies[:count] if len(self.replies) >= count else None,
                timeout=timeout,
                describe=self.describe,
            )
        predicate = what
        return await self._world.signal.wait_until(
            lambda: next((r for r in self.replies if predicate(r)), None),
            timeout=timeout,
            describe=self.describe,
        )

    async def wait_for_callback(self, *, timeout: float = 5.0) -> Reply:  # noqa: ASYNC109
        return await self.wait_for(lambda r: r.kind == "callback", timeout=timeout)

    async def wait_for_answer(self, *, timeout: float = 10.0) -> Reply:  # noqa: ASYNC109
        """The first reply a member reads: a message callback, a modal or choices, or the edit that
        replaces a deferred "thinking…" (a command that writes defers first)."""

        def answers(reply: Reply) -> bool:
            if reply.kind == "callback":
                return bool(reply.content or reply.embeds or reply.modal is not None or reply.choices)
            return reply.kind in ("edit", "followup") and bool(reply.content or reply.embeds)

        return await self.wait_for(answers, timeout=timeout)

    async def wait_for_choices(self, *, timeout: float = 5.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        reply = await self.wait_for(lambda r: r.choices is not None, timeout=timeout)
        return reply.choices

    def describe(self) -> str:
        got = "; ".join(r.summary() for r in self.replies) or "no replies"
        rejected = f"; rejected: {self.rejected}" if self.rejected else ""
        return f"interaction {self.name!r} ({self.id}): {got}{rejected}"

    def __repr__(self) -> str:
        return f"<InteractionRecord {self.describe()}>"


class InteractionFactory:
    """Turns test-friendly arguments into the interaction payloads Discord would dispatch."""

    def __init__(self, world: World) -> None:
        self._world = world

    # -- public builders -------------------------------------------------------------------------

    def slash(
        self,
        path: str,
        values: dict[str, Any],
        *,
        member: Member,
        channel: Channel,
        attachments: Iterable[Attachment] = (),
        focused: str | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        guild = self._world.guilds[member.guild_id]
        root, *subpath = path.split()
        command = self._require_command(root, 1, guild)
        resolved: dict[str, dict[str, Any]] = {}
        options = self._options_for_path(
            command, subpath, dict(values), guild, member, list(attachments), focused, resolved
        )
        data: dict[str, Any] = {"id": command["id"], "name": root, "type": 1, "options": options}
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        kind = InteractionType.AUTOCOMPLETE if focused else InteractionType.APPLICATION_COMMAND
        return self._record(kind, data, member=member, channel=channel, name=path, locale=locale)

    def user_command(
        self, name: str, target: Member | User, *, member: Member, channel: Channel, locale: str = "en-US"
    ) -> InteractionRecord:
        guild = self._world.guilds[member.guild_id]
        command = self._require_command(name, 2, guild)
        resolved: dict[str, dict[str, Any]] = {}
        self._resolve_user(target, guild, resolved)
        return self._context_menu(
            command, str(target.id), resolved, member=member, channel=channel, locale=locale
        )

    def message_command(
        self, name: str, message: Message, *, member: Member, channel: Channel, locale: str = "en-US"
    ) -> InteractionRecord:
        guild = self._world.guilds[member.guild_id]
        command = self._require_command(name, 3, guild)
        resolved = {"messages": {str(message.id): message.payload()}}
        return self._context_menu(
            command, str(message.id), resolved, member=member, channel=channel, locale=locale
        )

    def _context_menu(
        self,
        command: dict[str, Any],
        target_id: str,
        resolved: dict[str, Any],
        *,
        member: Member,
        channel: Channel,
        locale: str,
    ) -> InteractionRecord:
        """A user (type 2) or message (type 3) context-menu invocation of `command` on `target_id`."""
        data = {
            "id": command["id"],
            "name": command["name"],
            "type": command["type"],
            "target_id": target_id,
            "resolved": resolved,
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._record(
            InteractionType.APPLICATION_COMMAND,
            data,
            member=member,
            channel=channel,
            name=command["name"],
            locale=locale,
        )

    def component(
        self,
        message: Message,
        custom_id: str,
        *,
        member: Member,
        values: list[str] | None = None,
    ) -> InteractionRecord:
        component = _find_component(message.components, custom_id)
        if component is None:
            raise LookupError(f"message {message.id} has no component with custom_id {custom_id!r}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = list(values)
        channel = self._world.channel(message.channel_id)
        assert channel is not None
        return self._record(
            InteractionType.MESSAGE_COMPONENT,
            data,
            member=member,
            channel=channel,
            name=custom_id,
            message=message,
        )

    def modal_submit(
        self,
        modal: dict[str, Any],
        values: dict[str, Any],
        *,
        member: Member,
        channel: Channel,
        message: Message | None = None,
    ) -> InteractionRecord:
        remaining = dict(values)
        components = [_submitted(c, remaining) for c in modal.get("components", [])]
        if remaining:
            raise ValueError(f"modal {modal.get('custom_id')!r} has no inputs named {sorted(remaining)}")
        data = {"custom_id": modal["custom_id"], "components": [c for c in components if c]}
        return self._record(
            InteractionType.MODAL_SUBMIT,
            data,
            member=member,
            channel=channel,
            name=modal["custom_id"],
            message=message,
        )

    # -- payload assembly ------------------------------------------------------------------------

    def _record(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        member: Member,
        channel: Channel,
        name: str,
        message: Message | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        world = self._world
        guild = world.guilds[member.guild_id]
        # Discord sends both as they stand in this channel, overwrites applied.
        permissions = guild.permissions_in(member, channel)
        bot_permissions = guild.permissions_in(guild.members[world.bot.id], channel)
        payload: dict[str, Any] = {
            "id": str(world.snowflake()),
            "application_id": str(world.application_id),
            "type": interaction_type,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            "channel_id": str(channel.id),
            "channel": {**channel.payload(), "permissions": str(permissions)},
            "member": member.payload(permissions=permissions),
            "token": secrets.token_urlsafe(48),
            "version": 1,
            "app_permissions": str(bot_permissions),
            "locale": locale,
            "guild_locale": guild.preferred_locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": guild.upload_limit,
        }
        if message is not None:
            payload["message"] = message.payload()
        record = InteractionRecord(world, payload=payload, name=name)
        world.interactions[record.id] = record
        return record

    def _require_command(self, name: str, command_type: int, guild: Guild) -> dict[str, Any]:
        command = self._world.commands.find(name, command_type, guild.id)
        if command is None:
            synced = [c["name"] for scope in self._world.commands.by_scope.values() for c in scope.values()]
            raise LookupError(
                f"no type-{command_type} command {name!r} synced for guild {guild.id} or globally "
                f"(synced: {synced}); the bot must sync its command tree first"
            )
        return command

    def _options_for_path(
        self,
        command: dict[str, Any],
        path: list[str],
        values: dict[str, Any],
        guild: Guild,
        member: Member,
        attachments: list[Attachment],
        focused: str | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        schema = command.get("options", [])
        if path:
            sub = next((o for o in schema if o["name"] == path[0] and o["type"] in (1, 2)), None)
            if sub is None:
                raise LookupError(f"{command['name']!r} has no subcommand or group {path[0]!r}")
            inner = self._options_for_path(
                sub, path[1:], values, guild, member, attachments, focused, resolved
            )
            return [{"name": sub["name"], "type": sub["type"], "options": inner}]
        if any(o["type"] in (1, 2) for o in schema):
            raise ValueError(f"{command['name']!r} needs a subcommand: invoke 'name sub ...'")
        known = {o["name"] for o in schema}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{command['name']!r} has no options {sorted(unknown)} (has {sorted(known)})")
        options = []
        for spec in schema:
            name = spec["name"]
            if name in values:
                value = values.pop(name)
            elif spec["type"] == 11 and attachments:
                value = attachments.pop(0)
            elif spec.get("required") and focused is None:
                raise ValueError(f"required option {name!r} of {command['name']!r} was not given")
            else:
                continue
            options.append(self._option(spec, value, guild, member, focused == name, resolved))
        if focused is not None and not any(o.get("focused") for o in options):
            raise ValueError(f"focused option {focused!r} needs a value (the text typed so far)")
        return options

    def _option(
        self,
        spec: dict[str, Any],
        value: Any,
        guild: Guild,
        member: Member,
        focused: bool,
        resolved: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        option_type = spec["type"]
        option: dict[str, Any] = {"name": spec["name"], "type": option_type}
        if focused:
            option.update(value=value, focused=True)
            return option
        if option_type == 3:
            option["value"] = str(value)
        elif option_type == 4:
            option["value"] = int(value)
        elif option_type == 5:
            option["value"] = bool(value)
        elif option_type == 10:
            option["value"] = float(value)
        elif option_type in (6, 9) and isinstance(value, Member | User):
            self._resolve_user(value, guild, resolved)
            option["value"] = str(value.id)
        elif option_type in (8, 9) and isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            option["value"] = str(value.id)
        elif option_type == 7 and isinstance(value, Channel):
            entry = {**value.payload(), "permissions": str(guild.permissions_in(member, value))}
            resolved.setdefault("channels", {})[str(value.id)] = entry
            option["value"] = str(value.id)
        elif option_type == 11 and isinstance(value, Attachment):
            resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            option["value"] = str(value.id)
        else:
            raise TypeError(f"option {spec['name']!r} (type {option_type}) cannot take {value!r}")
        return option

    def _resolve_user(self, target: Member | User, guild: Guild, resolved: dict[str, dict[str, Any]]) -> None:
        user = target.user if isinstance(target, Member) else target
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        member = guild.members.get(user.id)
        if member is not None:
            member_payload = member.payload(with_user=False, permissions=guild.permissions_of(member))
            resolved.setdefault("members", {})[str(user.id)] = member_payload


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        children = list(component.get("components", []))
        if "component" in component:
            children.append(component["component"])
        if "accessory" in component:
            children.append(component["accessory"])
        found = _find_component(children, custom_id)
        if found is not None:
            return found
    return None


def _submitted(component: dict[str, Any], values: dict[str, Any]) -> dict[str, Any] | None:
    """The modal-submit shape of one modal component, consuming its value from ``values``."""
    kind = component["type"]
    if kind == 1:  # action row
        inner = [_submitted(c, values) for c in component.get("components", [])]
        return {"type": 1, "components": [c for c in inner if c]}
    if kind == 18:  # label wrapping one input
        inner = _submitted(component["component"], values)
        return {"type": 18, "component": inner} if inner else None
    custom_id = component.get("custom_id")
    if custom_id is None:
        return None
    if kind == 4:  # text input
        return {"type": 4, "custom_id": custom_id, "value": str(values.pop(custom_id, ""))}
    if kind in (3, 5, 6, 7, 8):  # selects
        chosen = values.pop(custom_id, [])
        return {"type": kind, "custom_id": custom_id, "values": [str(v) for v in chosen]}
    return None
