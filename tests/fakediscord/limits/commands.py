"""Application commands: bulk overwrites (``PUT .../commands``) and autocomplete results."""

from __future__ import annotations

import unicodedata
from collections import Counter
from typing import Any

from .form import Form, Path, Refusal

CHAT_INPUT, USER, MESSAGE, PRIMARY_ENTRY_POINT = 1, 2, 3, 4
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, NUMBER, ATTACHMENT = 1, 2, 3, 4, 10, 11
#: "An app can have ... 100 global CHAT_INPUT, 15 USER, 15 MESSAGE, 1 PRIMARY_ENTRY_POINT", per guild too.
COMMANDS_PER_TYPE = {CHAT_INPUT: 100, USER: 15, MESSAGE: 15, PRIMARY_ENTRY_POINT: 1}
#: A bulk overwrite longer than this is a form error (github.com/chenhg5/cc-connect issue 504).
MAX_COMMANDS_IN_SYNC = 130
COMMAND_NAME = 32  # Application Command Structure: name "1-32 characters"
COMMAND_DESCRIPTION = 100  # description "1-100 characters" (options too)
MAX_OPTIONS, MAX_CHOICES = 25, 25  # "max of 25" options; choices "max 25"
CHOICE_NAME, CHOICE_VALUE = 100, 100  # Option Choice Structure: name 1-100, value "up to 100" if string
OPTION_LENGTH = 6000  # Option Structure: min_length/max_length "maximum of 6000"
COMMAND_SIZE = 8000  # Slash Commands: "maximum of 8000 characters for combined name, description, value"
CHOICE_TYPES = {STRING, INTEGER, NUMBER}  # choices and autocomplete are valid for these only
MAX_AUTOCOMPLETE_CHOICES = 25  # Interaction Response "Autocomplete": "max of 25 choices"

# The naming regex ^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$ (Application Command Naming);
# Python's re has no \p{...}, so scripts are the code point ranges of Unicode's Scripts.txt.
_DEVANAGARI = ((0x0900, 0x0950), (0x0955, 0x0963), (0x0966, 0x097F), (0xA8E0, 0xA8FF), (0x11B00, 0x11B09))
_THAI = ((0x0E01, 0x0E3A), (0x0E40, 0x0E5B))


def is_valid_slash_name(name: str) -> bool:
    """A CHAT_INPUT command or option name: the naming regex, lowercase wherever the script has case."""
    return 1 <= len(name) <= COMMAND_NAME and all(_name_char(c) and c.lower() == c for c in name)


def _name_char(char: str) -> bool:
    if char in "-_'" or unicodedata.category(char)[0] in "LN":
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _DEVANAGARI + _THAI)


def command_sync_refusal(commands: Any, *, guild: bool) -> Refusal | None:
    """``PUT /applications/{app}[/guilds/{guild}]/commands``: the whole list, as Discord checks it."""
    form = Form()
    if not isinstance(commands, list):
        form.add((), "BASE_TYPE_ARRAY", "Must be an array.")
        return form.refusal()
    form.array((), commands, MAX_COMMANDS_IN_SYNC)
    seen: set[tuple[str, int]] = set()
    for index, command in enumerate(commands):
        if not isinstance(command, dict):
            form.add((index,), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        _command(form, (index,), command, guild=guild)
        key = (command.get("name"), command.get("type", CHAT_INPUT))
        if key in seen:  # "command names must be unique per application, per type, and within each scope"
            form.add(
                (index,), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
            )
        seen.add(key)  # type: ignore[arg-type]
    refusal = form.refusal()
    if refusal is not None:
        return refusal
    counts = Counter(c.get("type", CHAT_INPUT) for c in commands)
    for command_type, limit in COMMANDS_PER_TYPE.items():
        if counts[command_type] > limit:
            return Refusal(400, 30032, f"Maximum number of application commands reached ({limit})")
    return None


def _command(form: Form, path: Path, command: dict[str, Any], *, guild: bool) -> None:
    command_type = command.get("type", CHAT_INPUT)
    if command_type not in COMMANDS_PER_TYPE:
        form.add((*path, "type"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
        return
    if command_type == PRIMARY_ENTRY_POINT and guild:  # "cannot have a PRIMARY_ENTRY_POINT guild command"
        form.add((*path, "type"), "APPLICATION_COMMAND_INVALID_TYPE", "Entry point commands must be global")
    for where, name in _localized(path, command, "name"):
        if command_type == CHAT_INPUT:
            _slash_name(form, where, name)
        else:  # "USER and MESSAGE commands may be mixed case and can include spaces"
            form.text(where, name, COMMAND_NAME, low=1)
    if command_type != CHAT_INPUT:
        if command.get("options"):  # "options can only be set for application commands of type CHAT_INPUT"
            form.add(
                (*path, "options"), "APPLICATION_COMMAND_OPTIONS_INVALID", "Only slash commands have options"
            )
        return
    _description(form, path, command)
    _options(form, (*path, "options"), command.get("options"), parent=None)
    if _size(command) > COMMAND_SIZE:
        form.add(path, "APPLICATION_COMMAND_TOO_LARGE", f"Command exceeds maximum size ({COMMAND_SIZE})")


def _slash_name(form: Form, path: Path, name: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= COMMAND_NAME:
        form.text(path, name, COMMAND_NAME, low=1)
    elif not is_valid_slash_name(name):
        form.add(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _localized(path: Path, item: dict[str, Any], field: str) -> list[tuple[Path, Any]]:
    """``field`` and each of its localizations ("values follow the same restrictions as" the field)."""
    localizations = item.get(f"{field}_localizations") or {}
    return [((*path, field), item.get(field))] + [
        ((*path, f"{field}_localizations", locale), text) for locale, text in localizations.items()
    ]


def _description(form: Form, path: Path, item: dict[str, Any]) -> None:
    for where, text in _localized(path, item, "description"):
        form.text(where, text, COMMAND_DESCRIPTION, low=1)


def _options(form: Form, path: Path, options: Any, *, parent: int | None) -> None:
    """Options of a command (``parent`` None), of a group (2) or of a subcommand (1)."""
    options = form.array(path, options, MAX_OPTIONS)
    names: set[str] = set()
    optional_seen = False
    # A command holds subcommands/groups or plain options, never both ("the only kind of nesting").
    mixed = parent is None and len({o.get("type") in (1, 2) for o in options if isinstance(o, dict)}) > 1
    for index, option in enumerate(options):
        here = (*path, index)
        if not isinstance(option, dict):
            form.add(here, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        kind = option.get("type")
        if kind not in range(SUB_COMMAND, ATTACHMENT + 1):
            form.add((*here, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, ..., 11).")
            continue
        nested = kind in (SUB_COMMAND, SUB_COMMAND_GROUP)
        # A group holds subcommands only; a subcommand holds plain options only.
        if (
            (mixed and not nested)
            or (parent == SUB_COMMAND_GROUP and kind != SUB_COMMAND)
            or (parent == SUB_COMMAND and nested)
        ):
            form.add((*here, "type"), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Invalid option nesting")
        for where, name in _localized(here, option, "name"):
            _slash_name(form, where, name)
        if option.get("name") in names:  # "name must be unique within an array of options"
            form.add(
                (*here, "name"),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(option.get("name"))
        _description(form, here, option)
        if nested:
            _options(form, (*here, "options"), option.get("options"), parent=kind)
            continue
        if option.get("required") and optional_seen:  # "Required options must be listed before optional"
            form.add(
                here,
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        optional_seen |= not option.get("required")
        _option_values(form, here, option, kind)


def _option_values(form: Form, path: Path, option: dict[str, Any], kind: int) -> None:
    choices = option.get("choices")
    if choices is not None and kind not in CHOICE_TYPES:
        form.add(
            (*path, "choices"), "APPLICATION_COMMAND_OPTION_CHOICES_INVALID", "Choices are not allowed here"
        )
    for index, choice in enumerate(form.array((*path, "choices"), choices, MAX_CHOICES)):
        _choice(form, (*path, "choices", index), choice, kind)
    # "autocomplete may not be set to true if choices are present" (and only STRING/INTEGER/NUMBER)
    if option.get("autocomplete") and (choices or kind not in CHOICE_TYPES):
        form.add((*path, "autocomplete"), "AUTOCOMPLETE_INVALID", "Autocomplete cannot be used with choices")
    if kind == STRING:
        form.number((*path, "min_length"), option.get("min_length"), 0, OPTION_LENGTH)
        form.number((*path, "max_length"), option.get("max_length"), 1, OPTION_LENGTH)


def _choice(form: Form, path: Path, choice: Any, kind: int) -> None:
    if not isinstance(choice, dict):
        form.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    for where, name in _localized(path, choice, "name"):
        form.text(where, name, CHOICE_NAME, low=1)
    value = choice.get("value")
    if kind == STRING:
        form.text((*path, "value"), value, CHOICE_VALUE)
    elif (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind == INTEGER and isinstance(value, float))
    ):
        form.add(
            (*path, "value"),
            "NUMBER_TYPE_COERCE",
            f'Value "{value}" is not {"int" if kind == INTEGER else "number"}.',
        )


def _size(item: dict[str, Any]) -> int:
    """Characters counted towards the 8000: name, description, string values; the longest localization."""
    total = 0
    for field in ("name", "description"):
        texts = [item.get(field) or "", *(item.get(f"{field}_localizations") or {}).values()]
        total += max(len(t) for t in texts if isinstance(t, str))
    if isinstance(item.get("value"), str):
        total += len(item["value"])
    for child in [*(item.get("options") or []), *(item.get("choices") or [])]:
        if isinstance(child, dict):
            total += _size(child)
    return total


def autocomplete_refusal(data: dict[str, Any]) -> Refusal | None:
    """Callback type 8 ``data``: at most 25 choices, each a valid option choice."""
    form = Form(("data",))
    for index, choice in enumerate(form.array(("choices",), data.get("choices"), MAX_AUTOCOMPLETE_CHOICES)):
        kind = STRING if isinstance(choice, dict) and isinstance(choice.get("value"), str) else NUMBER
        _choice(form, ("choices", index), choice, kind)
    return form.refusal()
