"""Messages: create and edit bodies (content, embeds, attachments, components, voice messages),
the flags each route keeps, and modals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import UploadedFile
from .form import Form, Path, Refusal

# -- message flags (resources/message.mdx, "Message Flags") -----------------------------------------

SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_VOICE_MESSAGE = 1 << 13
IS_COMPONENTS_V2 = 1 << 15

# Flags a bot may set per route; Discord drops others without an error (Edit Message: "unsupported
# flag changes are currently ignored without error"; a deferred callback keeps only EPHEMERAL).
#: Create Message, JSON/Form Params ``flags``.
CHANNEL_MESSAGE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2
#: Interaction Callback Data ``flags`` (types 4 and 7).
RESPONSE_FLAGS = CHANNEL_MESSAGE_FLAGS | EPHEMERAL
#: Callback type 5: "the only valid message flag you may use is EPHEMERAL".
DEFERRED_FLAGS = EPHEMERAL
#: Execute Webhook ``flags``, plus EPHEMERAL for interaction follow-ups (Create Followup Message).
FOLLOWUP_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2 | EPHEMERAL
#: Edit Message ``flags``: "SUPPRESS_EMBEDS and IS_COMPONENTS_V2 only".
EDIT_FLAGS = SUPPRESS_EMBEDS | IS_COMPONENTS_V2

# -- limits -----------------------------------------------------------------------------------------

MAX_CONTENT = 2000  # Create Message: content "up to 2000 characters"
MAX_EMBEDS = 10  # Create Message: "Up to 10 rich embeds"
MAX_EMBED_TOTAL = 6000  # message.mdx "Embed Limits": combined sum across all embeds
EMBED_TITLE, EMBED_DESCRIPTION, EMBED_FIELDS = 256, 4096, 25  # message.mdx "Embed Limits"
FIELD_NAME, FIELD_VALUE, FOOTER_TEXT, AUTHOR_NAME = 256, 1024, 2048, 256  # same table
MAX_ATTACHMENTS = 10  # discord.py abc.Messageable.send: files "Must be a maximum of 10"
ATTACHMENT_DESCRIPTION = 1024  # Attachment Request Structure: description "max 1024 characters"
MAX_STICKERS = 3  # Create Message: sticker_ids "up to 3"
LEGACY_ROWS = 5  # components/reference.mdx: "Legacy messages allow up to 5 action rows"
V2_TOTAL_COMPONENTS = 40  # components/reference.mdx: "Messages allow up to 40 total components"
ROW_BUTTONS = 5  # Action Row: "Up to 5 interactive button components or a single select"
CUSTOM_ID = 100  # components/reference.mdx: custom_id "1-100 characters"
BUTTON_LABEL, BUTTON_URL = 80, 512  # Button Structure: label "max 80", url "max 512"
SELECT_OPTIONS, SELECT_PLACEHOLDER, SELECT_VALUES = 25, 150, 25  # String Select Structure
OPTION_TEXT = 100  # Select Option Structure: label, value, description "max 100 characters"
MODAL_TITLE, MODAL_COMPONENTS = 45, 5  # Interaction Response "Modal": title max 45, 1-5 components
LABEL_TEXT, LABEL_DESCRIPTION = 45, 100  # Label Structure: label max 45, description max 100
TEXT_INPUT_LENGTH, TEXT_INPUT_PLACEHOLDER = 4000, 100  # Text Input Structure


def kept_flags(requested: Any, allowed: int) -> int:
    """The flags a new message carries: the route's ``allowed`` ones of those ``requested``."""
    return int(requested or 0) & allowed


def edited_flags(current: int, requested: Any) -> int:
    """Flags after an edit: only EDIT_FLAGS change, and IS_COMPONENTS_V2 "can't be removed"."""
    if requested is None:
        return current
    return (current & ~EDIT_FLAGS) | (int(requested) & EDIT_FLAGS) | (current & IS_COMPONENTS_V2)


def message_refusal(
    body: dict[str, Any],
    files: Sequence[UploadedFile] = (),
    *,
    flags: int = 0,
    current: dict[str, Any] | None = None,
    prefix: Path = (),
) -> Refusal | None:
    """A message create (``current`` None) or an edit of ``current`` (the message payload).

    ``flags`` are those the message will carry (see :func:`kept_flags`, :func:`edited_flags`);
    ``files`` the uploads of this request; ``prefix`` where the body sits (``("data",)`` in callbacks).
    Order as Discord answers: form errors (50035), voice-message rules (5015x), then empty (50006).
    """
    form = Form(prefix)
    form.text(("content",), body.get("content"), MAX_CONTENT)
    _embeds(form, body.get("embeds"))
    form.array(("sticker_ids",), body.get("sticker_ids"), MAX_STICKERS)
    listed = body.get("attachments")
    if listed is not None and not isinstance(listed, list):
        form.add(("attachments",), "BASE_TYPE_ARRAY", "Must be an array.")
    for index, entry in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(entry, dict):
            form.text(("attachments", index, "description"), entry.get("description"), ATTACHMENT_DESCRIPTION)
    after = _after(body, files, current or {})
    if after["attachments"] > MAX_ATTACHMENTS:
        form.add(("attachments",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ATTACHMENTS} or fewer in length.")
    if "components" in body:
        _message_components(form, body["components"], v2=bool(flags & IS_COMPONENTS_V2))
    if flags & IS_COMPONENTS_V2:  # "the message can only contain components"
        for field in ("content", "embeds", "sticker_ids", "poll"):
            if body.get(field):
                form.add(
                    (field,),
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    f"The '{field}' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                )
    refusal = form.refusal()
    if refusal is None and current is None and flags & IS_VOICE_MESSAGE:
        refusal = _voice_message(body, files)
    if refusal is None and not any(after.values()):
        # Create Message: "At least one of content, embeds, sticker_ids, components, files[n], poll".
        refusal = Refusal(400, 50006, "Cannot send an empty message")
    return refusal


def _after(body: dict[str, Any], files: Sequence[UploadedFile], current: dict[str, Any]) -> dict[str, Any]:
    """What the message would hold: edits replace the fields they give, keep the others."""

    def pick(field: str) -> Any:
        return body[field] if field in body else current.get(field)

    content = pick("content")
    listed = body.get("attachments")
    if not isinstance(listed, list):  # no list: new files are added to those already there
        kept = len(current.get("attachments") or [])
    else:  # "the attachments array must contain all attachments that should be present after edit"
        ids = {str(a.get("id")) for a in current.get("attachments") or []}
        kept = sum(1 for entry in listed if isinstance(entry, dict) and str(entry.get("id")) in ids)
    return {
        "content": content.strip() if isinstance(content, str) else "",  # Discord trims content
        "embeds": pick("embeds") or [],
        "components": pick("components") or [],
        "attachments": kept + len(files),
        "sticker_ids": body.get("sticker_ids") or [],
        "poll": body.get("poll"),
    }


def _voice_message(body: dict[str, Any], files: Sequence[UploadedFile]) -> Refusal | None:
    # resources/message.mdx "Voice Messages": "Only a single audio attachment is allowed. No content,
    # stickers, etc..."; the attachment needs duration_secs and waveform (Attachment Request Structure).
    if any(body.get(field) for field in ("content", "embeds", "components", "sticker_ids", "poll")):
        return Refusal(400, 50159, "Voice messages do not support additional content.")
    entries = body.get("attachments") or [{"id": f.index} for f in files]
    if len(entries) != 1 or len(files) != 1 or not files[0].content_type.startswith("audio/"):
        return Refusal(400, 50160, "Voice messages must have a single audio attachment.")
    entry = entries[0] if isinstance(entries[0], dict) else {}
    if entry.get("duration_secs") is None or not entry.get("waveform"):
        return Refusal(400, 50161, "Voice messages must have supporting metadata.")
    return None


def _embeds(form: Form, embeds: Any) -> None:
    total = 0  # "Leading and trailing whitespace characters are not included"
    for index, embed in enumerate(form.array(("embeds",), embeds, MAX_EMBEDS)):
        path: Path = ("embeds", index)
        if not isinstance(embed, dict):
            form.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        total += len(form.text((*path, "title"), embed.get("title"), EMBED_TITLE, trim=True))
        total += len(
            form.text((*path, "description"), embed.get("description"), EMBED_DESCRIPTION, trim=True)
        )
        for number, field in enumerate(form.array((*path, "fields"), embed.get("fields"), EMBED_FIELDS)):
            where = (*path, "fields", number)
            field = field if isinstance(field, dict) else {}
            total += len(form.text((*where, "name"), field.get("name"), FIELD_NAME, low=1, trim=True))
            total += len(form.text((*where, "value"), field.get("value"), FIELD_VALUE, low=1, trim=True))
        for part, key, high in (("footer", "text", FOOTER_TEXT), ("author", "name", AUTHOR_NAME)):
            if isinstance(embed.get(part), dict):
                total += len(form.text((*path, part, key), embed[part].get(key), high, low=1, trim=True))
    if total > MAX_EMBED_TOTAL:
        form.add(
            ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}"
        )


# -- components and modals -----------------------------------------------------------------------------

BUTTON, STRING_SELECT, TEXT_INPUT, ACTION_ROW, LABEL, TEXT_DISPLAY = 2, 3, 4, 1, 18, 10
SELECTS = {3, 5, 6, 7, 8}  # string, user, role, mentionable, channel
LINK, PREMIUM = 5, 6  # button styles without a custom_id


def _walk(components: list[Any], path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every component with its path, layouts' children included (rows, sections, containers, labels)."""
    found = []
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        here = (*path, index)
        found.append((here, component))
        found += _walk(list(component.get("components") or []), (*here, "components"))
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                found.append(((*here, key), child))
                found += _walk(list(child.get("components") or []), (*here, key, "components"))
    return found


def _message_components(form: Form, components: Any, *, v2: bool) -> None:
    components = form.array(("components",), components, V2_TOTAL_COMPONENTS if v2 else LEGACY_ROWS)
    walked = _walk(components, ("components",))
    if v2 and len(walked) > V2_TOTAL_COMPONENTS:
        form.add(
            ("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {V2_TOTAL_COMPONENTS} or fewer in length."
        )
    for index, top in enumerate(components):
        if not v2 and isinstance(top, dict) and top.get("type") != ACTION_ROW:  # legacy: rows only
            form.add(("components", index, "type"), "UNION_TYPE_CHOICES", "Value must be one of (1,).")
    for path, component in walked:
        kind = component.get("type")
        if kind == ACTION_ROW:
            children = form.array((*path, "components"), component.get("components"), ROW_BUTTONS, low=1)
            if len(children) > 1 and any(isinstance(c, dict) and c.get("type") in SELECTS for c in children):
                form.add(
                    (*path, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
        elif kind == BUTTON:
            _button(form, path, component)
        elif kind in SELECTS:
            _select(form, path, component)
    _custom_ids(form, walked)


def _button(form: Form, path: Path, button: dict[str, Any]) -> None:
    form.text((*path, "label"), button.get("label"), BUTTON_LABEL)
    style = button.get("style")
    if style == LINK:  # "Link buttons must have a url, and cannot have a custom_id"
        form.text((*path, "url"), button.get("url"), BUTTON_URL, low=1)
        if "custom_id" in button:
            form.add(
                (*path, "custom_id"), "COMPONENT_CUSTOM_ID_INVALID", "Link buttons cannot have a custom_id"
            )
    elif style == PREMIUM:  # "Premium buttons must contain a sku_id"
        if not button.get("sku_id"):
            form.add((*path, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required")
    else:  # "Non-link and non-premium buttons must have a custom_id"
        form.text((*path, "custom_id"), button.get("custom_id"), CUSTOM_ID, low=1)


def _select(form: Form, path: Path, select: dict[str, Any]) -> None:
    form.text((*path, "custom_id"), select.get("custom_id"), CUSTOM_ID, low=1)
    form.text((*path, "placeholder"), select.get("placeholder"), SELECT_PLACEHOLDER)
    form.number((*path, "min_values"), select.get("min_values"), 0, SELECT_VALUES)
    form.number((*path, "max_values"), select.get("max_values"), 1, SELECT_VALUES)
    if select.get("type") == STRING_SELECT:
        for index, option in enumerate(
            form.array((*path, "options"), select.get("options"), SELECT_OPTIONS, low=1)
        ):
            option = option if isinstance(option, dict) else {}
            here = (*path, "options", index)
            form.text((*here, "label"), option.get("label"), OPTION_TEXT, low=1)
            form.text((*here, "value"), option.get("value"), OPTION_TEXT, low=1)
            form.text((*here, "description"), option.get("description"), OPTION_TEXT)


def _custom_ids(form: Form, walked: list[tuple[Path, dict[str, Any]]]) -> None:
    # "Multiple components on the same message must not share the same custom_id"
    seen: set[str] = set()
    for path, component in walked:
        custom_id = component.get("custom_id")
        if not isinstance(custom_id, str):
            continue
        if custom_id in seen:
            form.add(
                (*path, "custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(custom_id)


def modal_refusal(data: dict[str, Any]) -> Refusal | None:
    """Callback type 9 ``data``: custom_id, title and 1-5 rows or labels around inputs."""
    form = Form(("data",))
    form.text(("custom_id",), data.get("custom_id"), CUSTOM_ID, low=1)
    form.text(("title",), data.get("title"), MODAL_TITLE, low=1)
    components = form.array(("components",), data.get("components"), MODAL_COMPONENTS, low=1)
    for index, top in enumerate(components):
        here: Path = ("components", index)
        kind = top.get("type") if isinstance(top, dict) else None
        if kind == ACTION_ROW:  # deprecated, still accepted: one text input with its own label
            inputs = form.array((*here, "components"), top.get("components"), 1, low=1)
            for number, child in enumerate(inputs):
                _modal_input(form, (*here, "components", number), child, labelled=False)
        elif kind == LABEL:
            form.text((*here, "label"), top.get("label"), LABEL_TEXT, low=1)
            form.text((*here, "description"), top.get("description"), LABEL_DESCRIPTION)
            _modal_input(form, (*here, "component"), top.get("component"), labelled=True)
        elif kind != TEXT_DISPLAY:
            form.add((*here, "type"), "UNION_TYPE_CHOICES", "Value must be one of (1, 10, 18).")
    _custom_ids(form, _walk(components, ("components",)))
    return form.refusal()


def _modal_input(form: Form, path: Path, component: Any, *, labelled: bool) -> None:
    if not isinstance(component, dict):
        form.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        return
    if component.get("type") in SELECTS:
        _select(form, path, component)
        return
    if component.get("type") != TEXT_INPUT:
        return
    form.text((*path, "custom_id"), component.get("custom_id"), CUSTOM_ID, low=1)
    if component.get("style") not in (1, 2):
        form.add((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2).")
    if not labelled:  # the deprecated Text Input ``label``: "max 45 characters"
        form.text((*path, "label"), component.get("label"), LABEL_TEXT, low=1)
    form.number((*path, "min_length"), component.get("min_length"), 0, TEXT_INPUT_LENGTH)
    form.number((*path, "max_length"), component.get("max_length"), 1, TEXT_INPUT_LENGTH)
    form.text((*path, "value"), component.get("value"), TEXT_INPUT_LENGTH)
    form.text((*path, "placeholder"), component.get("placeholder"), TEXT_INPUT_PLACEHOLDER)
