"""Where in the file a config error is: the line of the key it names.

tomllib gives no positions, so the key an error names (``controls[2]
(fader3).osc``, ``repeat[0] n=3 controls[1] (ch3).color``, ``server.port``)
is looked for in the text: the ``[table]`` or ``[[array]]`` header it
lives under, counted as TOML counts them, then the key's line in that
table. Only for the message: when the key cannot be found, the error names
the table's header line, or no line at all.
"""

from __future__ import annotations

import re

from bridge.config.text import headers

_SEGMENT = re.compile(r"^([A-Za-z0-9_-]+)(?:\[(\d+)\])?$")

Path = tuple[tuple[str, int | None], ...]


def _segments(key: str) -> list[tuple[str, int | None]]:
    """``repeat[0] n=3 controls[1] (ch3).color`` as [(repeat, 0), (controls, 1), (color, None)]."""
    plain = re.sub(r"\s*\([^)]*\)", "", key)
    plain = re.sub(r"\s+n=-?\d+", "", plain).replace(" ", ".")
    found: list[tuple[str, int | None]] = []
    for part in plain.split("."):
        match = _SEGMENT.match(part.strip())
        if match is None:
            break
        name, index = match.groups()
        found.append((name, int(index) if index is not None else None))
    return found


def line_of(text: str, key: str) -> int | None:
    """The 1-based line of ``key`` in the TOML ``text``; None when it cannot be told."""
    wanted = _segments(key)
    if not wanted:
        return None
    tables: list[tuple[Path, int]] = [((), 0)]  # each header's path, and its line (0: the top of the file)
    counts: dict[tuple[str, ...], int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # the element of each array of tables being filled
    for header in headers(text):
        names = header.names
        if header.array:
            at = counts[names] = counts.get(names, -1) + 1
            arrays[names] = at
            for deeper in [n for n in counts if n[: len(names)] == names and len(n) > len(names)]:
                del counts[deeper]  # a new element: its own sub-arrays count from 0 again
        path = tuple(
            (name, arrays.get(names[: i + 1]) if names[: i + 1] in counts else None) for i, name in enumerate(names)
        )
        tables.append((path, header.index + 1))
    # The header that holds the key: the longest path the key starts with (the last such, for a plain table).
    best: tuple[Path, int] | None = None
    for path, number in tables:
        if tuple(wanted[: len(path)]) == path and (best is None or len(path) >= len(best[0])):
            best = (path, number)
    if best is None:
        return None
    path, top = best
    rest = wanted[len(path) :]
    if not rest:
        return top or None
    lines = text.splitlines()
    following = [h.index + 1 for h in headers(text) if h.index + 1 > top]
    stop = following[0] if following else len(lines) + 1
    assignment = re.compile(rf'^\s*"?{re.escape(rest[0][0])}"?\s*(=|\.)')
    for number in range(top + 1, stop):
        if assignment.match(lines[number - 1]):
            return number
    return top or None
