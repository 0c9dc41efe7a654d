"""The table headers of a TOML text, with their lines: what the error lines and the editor stand on.

A line that looks like a header inside a multi-line array (``curve = [`` ...
``[0.5]`` ...) or a multi-line string is not one: the scan follows strings,
comments and brackets the way TOML reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class Header:
    """``[a.b]`` or ``[[a.b]]`` on line ``index`` (0-based)."""

    index: int
    array: bool
    names: tuple[str, ...]


def headers(text: str) -> list[Header]:
    """Every table header of ``text``, in order."""
    found: list[Header] = []
    depth = 0  # brackets and braces open across lines (a multi-line array)
    quote = ""  # the delimiter of a multi-line string still open: ''' or \"\"\"
    for index, line in enumerate(text.splitlines()):
        if not quote and depth == 0:
            match = _HEADER.match(line)
            if match is not None:
                names = tuple(part.strip().strip("\"'") for part in match.group(2).split("."))
                found.append(Header(index, match.group(1) == "[[", names))
                continue
        depth, quote = _scan(line, depth, quote)
    return found


def _scan(line: str, depth: int, quote: str) -> tuple[int, str]:
    """The bracket depth and open multi-line string after ``line``."""
    i = 0
    while i < len(line):
        if quote:
            end = line.find(quote, i)
            if end < 0:
                return depth, quote
            i, quote = end + 3, ""
            continue
        ch = line[i]
        if ch == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            quote, i = line[i : i + 3], i + 3
            continue
        if ch in "\"'":
            i = _string_end(line, i)
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return depth, quote


def _string_end(line: str, start: int) -> int:
    """The index after the one-line string opening at ``start``."""
    delimiter = line[start]
    i = start + 1
    while i < len(line):
        if delimiter == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == delimiter:
            return i + 1
        i += 1
    return i
