"""The shape of Discord's refusals: :class:`Refusal` and the :class:`Form` that collects field errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Refusal:
    """Discord's error answer: HTTP ``status``, JSON ``code`` and ``message``, form ``errors``."""

    status: int
    code: int
    message: str
    errors: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body

    def describe(self) -> str:
        """One line, e.g. ``50035 Invalid Form Body: data.content: Must be 2000 or fewer in length.``"""
        details = "; ".join(f"{path or '(body)'}: {message}" for path, message in _flatten(self.errors or {}))
        return f"{self.code} {self.message}" + (f": {details}" if details else "")


def _flatten(errors: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for key, value in errors.items():
        if key == "_errors":
            found += [(prefix, e["message"]) for e in value]
        else:
            found += _flatten(value, f"{prefix}.{key}" if prefix else key)
    return found


class Form:
    """Collects field errors, then renders them nested the way Discord does."""

    def __init__(self, prefix: Path = ()) -> None:
        self.prefix = prefix
        self.problems: list[tuple[Path, str, str]] = []

    def add(self, path: Path, code: str, message: str) -> None:
        self.problems.append((self.prefix + path, code, message))

    def text(self, path: Path, value: Any, high: int, *, low: int = 0, trim: bool = False) -> str:
        """A string field of ``low``..``high`` characters (absent counts as empty); returns it."""
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.add(path, "BASE_TYPE_STRING", "Must be a string.")
            return ""
        length = len(value.strip() if trim else value)
        if low and length == 0:
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        elif length > high or length < low:
            if low:
                self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")
            else:
                self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
        return value.strip() if trim else value

    def array(self, path: Path, value: Any, high: int, *, low: int = 0) -> list[Any]:
        """A list of ``low``..``high`` items (absent counts as empty); returns it."""
        if value is None:
            value = []
        if not isinstance(value, list):
            self.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
            return []
        if len(value) > high or len(value) < low:
            if low:
                self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")
            else:
                self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
        return value

    def number(self, path: Path, value: Any, low: int, high: int) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
        elif value < low:
            self.add(path, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
        elif value > high:
            self.add(path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")

    def refusal(self) -> Refusal | None:
        if not self.problems:
            return None
        errors: dict[str, Any] = {}
        for path, code, message in self.problems:
            node = errors
            for key in path:
                node = node.setdefault(str(key), {})
            node.setdefault("_errors", []).append({"code": code, "message": message})
        return Refusal(400, 50035, "Invalid Form Body", errors)
