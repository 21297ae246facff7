"""The YAML reader of the workspace's files (catalog.yaml, playbooks.yaml, config.yaml).

It keeps line numbers: every value is read with its dotted key (``plans[2].limits.seats``) and the
line of that key, and every problem names file, line and key. `Reader` checks shapes and types and
collects every error at once; each file's reader builds on it. A file that is not YAML (or not
UTF-8) raises the error class of that file (`CatalogError`, `PlaybooksError`, `ConfigError`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from upsell.domain.money import to_decimal
from upsell.errors import Problem, ProblemsError

T = TypeVar("T")


def read_utf8(file: str, what: str, error: type[ProblemsError]) -> str:
    """A configuration file's text; unreadable or non-UTF-8 files raise `error` naming the place."""
    try:
        data = Path(file).read_bytes()
    except OSError as e:
        raise error([Problem(f"cannot read {what}: {e.strerror or e}", file=file)]) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error([Problem("not UTF-8 text", file=file, line=line)]) from None


def in_file_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: p.line or 0)


def parse_yaml(text: str, file: str, error: type[ProblemsError]) -> Any:
    """The YAML document of `text` with its line numbers; `error` names where it is not YAML."""
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = f"invalid YAML: {e.problem or e.context}"
        if e.problem and e.context and e.context_mark is not None:
            message += f" ({e.context} at line {e.context_mark.line + 1})"
        line = mark.line + 1 if mark is not None else None
        raise error([Problem(message, file=file, line=line)]) from None
    except ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise error([Problem(f"invalid YAML: {e.reason}", file=file, line=line)]) from None
    except YAMLError as e:
        raise error([Problem(f"invalid YAML: {e}", file=file)]) from None
    except ValueError as e:  # an unquoted date that is no day, such as 2024-02-30
        message = f"invalid date: {e}; write a day as YYYY-MM-DD"
        raise error([Problem(message, file=file, line=_bad_date_line(text))]) from None


_DATE_LIKE = re.compile(r"(?<![\w.])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w.])")


def _bad_date_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        for m in _DATE_LIKE.finditer(line.split("#", 1)[0]):
            try:
                date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return number
    return None


class At(NamedTuple):
    """Where a value sits: its dotted key and the 1-based line of that key (or list item)."""

    key: str
    line: int

    def child(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name


def show(value: Any) -> str:
    """A value as the file's author would recognise it in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool | ScalarBoolean):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return str(float(value))
    if isinstance(value, int):
        return str(int(value))
    return type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool | ScalarBoolean)


def key_line(node: Any, key: Any, default: int) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return default


def item_line(node: Any, index: int, default: int) -> int:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return default


INDEX = re.compile(r"\[(\d+)\]")


def line_of(root: Any, key: str) -> int:
    """The line of the deepest node that `key` (``plans[2].limits.seats``) reaches in the YAML.

    Mapping keys are matched against the text, longest first, so ids holding dots still resolve.
    """
    node, line, rest = root, 1, key
    while rest:
        if isinstance(node, CommentedSeq):
            match = INDEX.match(rest)
            if match is None or int(match.group(1)) >= len(node):
                break
            index = int(match.group(1))
            line = item_line(node, index, line)
            node, rest = node[index], rest[match.end() :]
        elif isinstance(node, CommentedMap):
            rest = rest.removeprefix(".")
            names = [
                k
                for k in node
                if isinstance(k, str) and (rest == k or rest.startswith((k + ".", k + "[")))
            ]
            if not names:
                break
            name = max(names, key=len)
            line = key_line(node, name, line)
            node, rest = node[name], rest[len(name) :]
        else:
            break
    return line


def plain(value: Any) -> Any:
    """ruamel's commented and scalar types as plain Python values."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool | ScalarBoolean):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


Fields = dict[str, tuple[Any, At]]


class Reader:
    """The first pass: shapes and types. Collects every error and builds what it can."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Problem] = []

    def fail(self, key: str, line: int, message: str) -> None:
        self.errors.append(Problem(message, key=key, file=self.file, line=line))

    # -- generic shapes ---------------------------------------------------------------------

    def fields(
        self,
        value: Any,
        at: At,
        what: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> Fields | None:
        """A mapping with a fixed set of keys: report unknown and missing ones."""
        if not isinstance(value, Mapping):
            self.fail(at.key, at.line, f"{what} must be a mapping, got {show(value)}")
            return None
        allowed = tuple(dict.fromkeys((*required, *optional)))
        out: Fields = {}
        for k, v in value.items():
            line = key_line(value, k, at.line)
            if isinstance(k, str) and k in allowed:
                out[k] = (v, At(at.child(k), line))
                continue
            hint = difflib.get_close_matches(str(k), allowed, n=1)
            self.fail(
                at.child(str(k)),
                line,
                f"unknown key {str(k)!r} in {what}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": expected {one_of(allowed)}",
            )
        for name in required:
            if name not in value:
                self.fail(at.child(name), at.line, f"{what} needs {name!r}, which is missing")
        return out

    def entries(self, value: Any, at: At, what: str) -> list[tuple[str, Any, At]]:
        """A mapping keyed by ids or names chosen in the file; null counts as empty."""
        if value is None:
            return []
        if not isinstance(value, Mapping):
            self.fail(at.key, at.line, f"must be a mapping of {what}, got {show(value)}")
            return []
        out = []
        for k, v in value.items():
            line = key_line(value, k, at.line)
            if not isinstance(k, str) or not k:
                self.fail(at.child(str(k)), line, f"{what} must be named by text, got {show(k)}")
                continue
            out.append((k, v, At(at.child(k), line)))
        return out

    def items(self, value: Any, at: At, what: str) -> list[tuple[Any, At]]:
        """A list; null counts as empty."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(at.key, at.line, f"must be a list of {what}, got {show(value)}")
            return []
        return [
            (v, At(f"{at.key}[{i}]", item_line(value, i, at.line))) for i, v in enumerate(value)
        ]

    def get(self, fields: Fields, name: str, read: Callable[[Any, At], T]) -> T | None:
        """`read` applied to the field `name`; None when the field is absent."""
        return read(*fields[name]) if name in fields else None

    # -- scalars ----------------------------------------------------------------------------

    def text(self, value: Any, at: At) -> str | None:
        if isinstance(value, str) and value.strip():
            return str(value)
        self.fail(at.key, at.line, f"must be non-empty text, got {show(value)}")
        return None

    def texts(self, value: Any, at: At) -> tuple[str, ...]:
        out = []
        for v, item_at in self.items(value, at, "names"):
            name = self.text(v, item_at)
            if name is not None:
                out.append(name)
        return tuple(out)

    def flag(self, value: Any, at: At) -> bool:
        if isinstance(value, bool | ScalarBoolean):
            return bool(value)
        self.fail(at.key, at.line, f"must be true or false, got {show(value)}")
        return False

    def count(self, value: Any, at: At) -> int | None:
        if is_int(value) and value >= 0:
            return int(value)
        self.fail(at.key, at.line, f"must be a non-negative integer, got {show(value)}")
        return None

    def amount(self, value: Any, at: At, *, positive: bool = False) -> Decimal | None:
        amount: Decimal | None = None
        if not isinstance(value, bool | ScalarBoolean):
            if isinstance(value, float):
                value = str(float(value))
            if isinstance(value, int | str):
                try:
                    amount = to_decimal(str(value))
                except ValueError:
                    amount = None
        if amount is None or amount < 0 or (positive and amount == 0):
            expected = "a positive rate" if positive else "a non-negative amount"
            self.fail(at.key, at.line, f"must be {expected}, got {show(value)}")
            return None
        return amount

    def choice(self, value: Any, at: At, choices: tuple[T, ...]) -> T | None:
        for c in choices:
            if isinstance(value, str) and value == c:
                return c
        self.fail(at.key, at.line, f"must be {one_of(choices)}, got {show(value)}")
        return None


def one_of(choices: Iterable[Any]) -> str:
    names = [str(c) for c in choices]
    if len(names) <= 2:
        return " or ".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]
