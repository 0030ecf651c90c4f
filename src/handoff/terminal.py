"""Text from outside shown on a terminal: data, never markup, never control.

Reasons, notes, names, titles, file names and error messages come from people and files. Before any
of it reaches an operator's terminal:

- ``clean`` removes escape sequences (CSI, OSC, and any other ESC sequence), C0 and C1 control
  characters, and the invisible bidirectional and zero-width marks that reorder or hide text. Every
  string a ``Console`` renders passes through it (``SafeConsole``), whatever its origin.
- ``moment`` is how every time is printed for people: ISO 8601 to the second, UTC with ``Z``; a
  court's time with its offset.
- ``plain`` is for a value put into a line that carries handoff's own Rich markup: it cleans the
  value, puts it on one line, and escapes it, so ``[/]`` or ``[link=…]`` in a reason is printed as
  typed instead of being read as markup (or raising ``MarkupError`` for everyone); ``:x:`` stays
  ``:x:`` too (``SafeConsole`` renders no emoji codes).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.text import Text

# ESC [ … final (CSI); ESC ] … BEL or ESC \ (OSC, also P/X/^/_ strings); ESC and one more character.
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
)
# C0 controls but tab and newline, DEL, C1 controls, zero-width and bidirectional marks.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_LINE_BREAKS = re.compile(r"[\t\n\x0b\x0c\r\x85\u2028\u2029]+")


def clean(text: str) -> str:
    """The text without escape sequences, control characters or invisible reordering marks."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


def plain(value: object) -> str:
    """A value from outside, safe inside a Rich markup line: cleaned, on one line, markup escaped."""
    return escape(clean(_LINE_BREAKS.sub(" ", str(value))))


def moment(value: object, zone: str | None = None) -> str:
    """A time as handoff prints it for people: ISO 8601 to the second, in UTC with ``Z``, or in ``zone`` (a
    court's) with its offset. A naive time is shown as given; text that is not a time, unchanged."""
    try:
        t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    t = t.replace(microsecond=0)
    if t.tzinfo is None:
        return t.isoformat()
    if zone:
        return t.astimezone(ZoneInfo(zone)).isoformat()
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def styled(text: str, style: str) -> Text:
    """handoff's own short label in a style (a table cell), without markup parsing."""
    return Text(text, style=style)


class SafeConsole(Console):
    """A Rich console that cleans every string it renders (printed lines, table cells, tree labels), and
    leaves ``:name:`` as typed: Rich would show a reason of ``:x:`` as an emoji (and load its table of
    3,600 codes to find out, in every command that prints a line with a colon)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(clean(text), **kwargs)
