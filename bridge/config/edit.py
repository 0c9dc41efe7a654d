"""The editor's changes to a config file's text: one ``[[controls]]`` table at a time, the rest byte for byte.

Each ``[[controls]]`` table is a *slot* of lines: its header, its body (sub-
tables such as ``[controls.osc]`` included), and before the header the
comment lines right above it (no blank line between), which describe it
and move or go with it. A change reads that slot alone with tomlkit, edits
the table there (so its own comments and key order stay), and puts the
text back in the same place; every other line of the file is untouched.
Trailing blank lines stay where they are, as separators.

Controls made by a ``[[repeat]]`` are not tables of their own: the editor
leaves them to the file. Functions here take and return text; writing the
file, checking the result with the config loader and applying it is the
caller's (:mod:`bridge.web.editor_api`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tomlkit
from tomlkit.items import Comment, Item, Table

from bridge.config.text import headers
from bridge.errors import BridgeError

#: A JSON property written as TOML text, to keep the way it is written: ``{"$toml": "{ address = \"/x\" }"}``.
TOML_TEXT = "$toml"
#: A whole ``[[controls]]`` table as text, its comments with it (what a removal gave back, for its undo).
TOML_BLOCK = "$block"
#: An OSC address typed without quotes, where TOML is expected.
_BARE_ADDRESS = re.compile(r"^/[^\s\"'#{}\[\],=]*$")
_INLINE_EMPTY = re.compile(r"^\s*controls\s*=\s*\[\s*\]\s*(#.*)?$")
#: A table's header line (``[server]``, ``[[views]]``), and a view's.
_HEADER = re.compile(r"""^\s*\[\[?\s*[A-Za-z0-9_."'-][A-Za-z0-9_."' -]*\]\]?\s*(#.*)?$""")
_VIEWS = re.compile(r"""^\s*\[\[\s*(views|"views"|'views')\s*\]\]\s*(#.*)?$""")
BOM = "\ufeff"
_INLINE_VIEWS = re.compile(r"""^\s*(views|"views"|'views')\s*=""")


class EditError(BridgeError):
    """An edit that cannot be made to this file (the message says why and what to do).

    ``field`` names the control's key it is about, when it is about one (shown beside that field).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NoSuchControl(EditError):
    """No ``[[controls]]`` table has that id."""


@dataclass(frozen=True)
class Slot:
    """The lines of one ``[[controls]]`` table: ``start`` (its comments) to ``end``; blank lines to ``after``."""

    cid: str | None
    start: int
    end: int
    after: int


def version(data: bytes) -> str:
    """What the editor sends back in If-Match: a hash of the file's bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def slots(text: str) -> list[Slot]:
    """Every ``[[controls]]`` table of ``text``, in file order."""
    lines = _lines(text)
    found = headers(text)
    made: list[Slot] = []
    for at, header in enumerate(found):
        if not (header.array and header.names == ("controls",)):
            continue
        # Its body runs to the next header that is not one of its own sub-tables.
        stop = len(lines)
        for later in found[at + 1 :]:
            if later.names[0] != "controls" or later.names == ("controls",):
                stop = later.index
                break
        # Its lines end with its last key, and the comments right under it. A comment block after a
        # blank line is the file's own (a heading for what follows, a table parked as comments) and
        # stays where it is; the comments right above the next table are that table's.
        last = header.index
        for i in range(header.index + 1, stop):
            if lines[i].strip() and not _comment(lines[i]):
                last = i
        end = last + 1
        while end < stop and _comment(lines[end]):
            end += 1
        if end == stop and stop < len(lines):
            end = last + 1
        after = end  # its blank lines too: they go with it when it is removed
        while after < stop and not lines[after].strip():
            after += 1
        start = header.index
        while start > 0 and _comment(lines[start - 1]):
            start -= 1
        body = "".join(lines[header.index : end])
        try:
            table = tomllib.loads(body)["controls"][0]
            cid = table.get("id") if isinstance(table.get("id"), str) else None
        except (tomllib.TOMLDecodeError, KeyError, IndexError, TypeError):
            cid = None
        made.append(Slot(cid, start, end, after))
    return made


def _find(text: str, cid: str) -> Slot:
    for slot in slots(text):
        if slot.cid == cid:
            return slot
    raise NoSuchControl(f"no [[controls]] table with id {cid!r} in the file")


def item(value: Any) -> Item:
    """A JSON value as a TOML item: tables inline (``osc = { address = "/x" }``), ``$toml`` text as written."""
    if isinstance(value, dict) and set(value) == {TOML_TEXT}:
        text = value[TOML_TEXT]
        if not isinstance(text, str):
            raise EditError(f"{TOML_TEXT} must be TOML text")
        if _BARE_ADDRESS.match(text.strip()):
            return tomlkit.string(text.strip())  # an OSC address as typed, quotes left out
        try:
            parsed = tomlkit.parse(f"v = {text}\n")
        except tomlkit.exceptions.ParseError as err:
            raise EditError(_not_toml(text)) from err
        found = parsed.item("v")
        if not isinstance(found, Item):
            raise EditError(f"not a TOML value: {text!r}")
        return found
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, inner in value.items():
            table.append(key, item(inner))
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for inner in value:
            array.append(item(inner))
        return array
    if value is None:
        raise EditError("null is not a TOML value (it removes a key only at the top of a control)")
    return tomlkit.item(value)


def _not_toml(text: str) -> str:
    """Why ``text`` is no TOML value, and how it would be one."""
    plain = text.strip()
    if "," in plain and not plain.startswith(("[", "{")):
        quoted = ", ".join(_word(part.strip()) for part in plain.split(","))
        return f"not a TOML value: a list is written in brackets, each text in quotes: [{quoted}]"
    if plain and not plain.startswith(("[", "{", '"', "'")):
        return f"not a TOML value: text is written in quotes: {tomlkit.string(plain).as_string()}"
    return f"not a TOML value: {text!r}"


def _word(text: str) -> str:
    """One item of a list typed bare: a number or true/false as it is, anything else quoted."""
    try:
        tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return tomlkit.string(text).as_string()
    return text


def inline(value: Any) -> str:
    """A value as one line of TOML, as the editor shows a table or list in a field (an OSC address bare)."""
    if isinstance(value, str) and _BARE_ADDRESS.match(value):
        return value
    return item(value).as_string()


def _table_text(props: dict[str, Any]) -> str:
    table = tomlkit.table()
    for key, value in props.items():
        if value is not None:
            table.append(key, item(value))
    aot = tomlkit.aot()
    aot.append(table)
    doc = tomlkit.document()
    doc.append("controls", aot)
    return tomlkit.dumps(doc)


def set_properties(text: str, cid: str, props: dict[str, Any]) -> str:
    """``text`` with the control ``cid``'s keys set (a null value removes the key)."""
    slot = _find(text, cid)
    lines = _lines(text)
    doc = tomlkit.parse("".join(lines[slot.start : slot.end]))
    table = doc["controls"][0]  # type: ignore[index]
    for key, value in props.items():
        if value is None:
            if key in table:
                trailing = _trailing_comments(table[key])
                del table[key]
                for comment in trailing:  # under the table's last key: the file's, not the table's
                    table.add(comment)
            continue
        try:
            table[key] = item(value)
        except EditError as err:
            raise EditError(f"{key}: {err}", key) from err
    block = tomlkit.dumps(doc)
    edited = "".join(lines[: slot.start]) + block + "".join(lines[slot.end :])
    renamed = props.get("id")
    return _in_views(edited, cid, renamed) if isinstance(renamed, str) and renamed != cid else edited


def _in_views(text: str, cid: str, new: str | None) -> str:
    """``text`` with ``cid`` renamed ``new`` (or, None, taken out) in the ``controls`` lists of ``[[views]]``:
    else a view that lists it refuses the rename or the removal ("unknown control")."""

    def follow(_name: object, listed: list[Any]) -> bool:
        places = [i for i, got in enumerate(listed) if got == cid]
        for index in reversed(places):
            if new is None:
                del listed[index]
            else:
                listed[index] = new
        return bool(places)

    return _views(text, follow)


def view_places(text: str, cid: str) -> dict[str, int]:
    """Where ``cid`` stands in each ``[[views]]`` list that names it: {the view's name: its place}, what an
    undo of its removal gives :func:`add` to put it back there (by name: views added meanwhile do not matter)."""
    places: dict[str, int] = {}

    def find(name: object, listed: list[Any]) -> bool:
        if cid in listed and isinstance(name, str):
            places[name] = listed.index(cid)
        return False

    _views(text, find)
    return places


def _views(text: str, act: Callable[[object, list[Any]], bool]) -> str:
    """``text`` with ``act(its name, its controls list)`` run on each view's list, the views it changed (it says
    so) written again on their own lines: every other line stays as it is (a whole document through tomlkit
    regroups arrays of tables written apart, and the show's controls changed order). ``[[views]]`` tables
    and a ``views = [...]`` array (one line or several) alike."""
    if "views" not in text:
        return text
    if text.startswith(BOM):  # (saved by Notepad as "UTF-8 with BOM": the loader reads past it, so here too)
        return BOM + _views(text[len(BOM) :], act)
    lines = _lines(text)
    heads = [i for i, line in enumerate(lines) if _HEADER.match(line)] + [len(lines)]
    spans = [(here, after) for here, after in zip(heads, heads[1:], strict=False) if _VIEWS.match(lines[here])]
    inline = next((i for i in range(heads[0]) if _INLINE_VIEWS.match(lines[i])), None)
    if inline is not None:
        # The array's own lines: the fewest that read as a whole TOML document.
        end = next((j for j in range(inline + 1, heads[0] + 1) if _reads("".join(lines[inline:j]))), None)
        if end is not None:
            spans.insert(0, (inline, end))
    out: list[str] = []
    done = 0
    for here, after in spans:
        try:
            doc = tomlkit.parse("".join(lines[here:after]))
            views = doc["views"]
        except (tomlkit.exceptions.TOMLKitError, KeyError):
            continue  # not a view of its own on these lines: left as it is (the loader says what is wrong)
        changed = False
        for view in views if isinstance(views, list) else []:
            listed = view.get("controls") if isinstance(view, dict) else None
            changed = (isinstance(listed, list) and act(view.get("name"), listed)) or changed
        if changed:
            out += [*lines[done:here], tomlkit.dumps(doc)]
            done = after
    return "".join([*out, *lines[done:]]) if done else text


def _reads(fragment: str) -> bool:
    try:
        return isinstance(tomllib.loads(fragment).get("views"), list)
    except tomllib.TOMLDecodeError:
        return False


def _trailing_comments(value: Any) -> list[Comment]:
    """The comments after the last key of a sub-table (``[controls.midi]``), which a parser files
    under it though they may be about what follows; none for anything else."""
    if not isinstance(value, Table) or value.is_super_table():
        return []
    found: list[Comment] = []
    for key, item in value.value.body:
        if isinstance(item, Comment):
            found.append(item)
        elif key is not None:
            found = []  # a key after them: they were about the table's own keys
    return found


def block_id(props: dict[str, Any]) -> str | None:
    """The id of the table in ``{"$block": text}`` (checked: one ``[[controls]]`` table); None for other props."""
    if set(props) != {TOML_BLOCK}:
        return None
    block = props[TOML_BLOCK]
    try:
        data = tomllib.loads(block) if isinstance(block, str) else None
    except tomllib.TOMLDecodeError as err:
        raise EditError(f"{TOML_BLOCK}: not valid TOML: {err}") from err
    found = data.get("controls") if isinstance(data, dict) and set(data) == {"controls"} else None
    if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0].get("id"), str):
        raise EditError(f"{TOML_BLOCK}: expected one [[controls]] table with its id")
    return str(found[0]["id"])


def removed(text: str, cid: str) -> str:
    """The text :func:`remove` takes out for ``cid``, but its blank lines: put back whole by ``{"$block": ...}``."""
    slot = _find(text, cid)
    return "".join(_lines(text)[slot.start : slot.end])


def add(text: str, props: dict[str, Any], after: str | None = None, views: dict[str, int] | None = None) -> str:
    """``text`` with a new ``[[controls]]`` table after control ``after`` (or after the last one).

    ``props`` are its keys, or ``{"$block": text}``: the table written as it is, comments and all.
    ``views``: the places it had in ``[[views]]`` lists (:func:`view_places`), given back (an undo).
    """
    if views:
        return _back_in_views(add(text, props, after), str(block_id(props) or props.get("id")), views)
    if block_id(props) is not None:
        block = "".join(_lines(props[TOML_BLOCK]))
    else:
        block = _table_text(props)
    lines = _lines(text)
    found = slots(text)
    if after is not None:
        at = _find(text, after).end
    elif found:
        at = found[-1].end
    else:
        return _first(text, lines, block)
    return "".join(lines[:at]) + "\n" + block + "".join(lines[at:])


def _back_in_views(text: str, cid: str, views: dict[str, int]) -> str:
    def insert(name: object, listed: list[Any]) -> bool:
        place = views.get(name) if isinstance(name, str) else None
        if not isinstance(place, int) or cid in listed:
            return False
        listed.insert(min(max(place, 0), len(listed)), cid)
        return True

    return _views(text, insert)


def _first(text: str, lines: list[str], block: str) -> str:
    """The first table of a file with none: an empty ``controls = []`` goes, the table ends the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EditError(f"the file is not valid TOML: {err}") from err
    if data.get("controls"):
        raise EditError(
            "this file writes its controls inline (controls = [...]); the editor edits [[controls]] tables: "
            "write them as tables to edit them here"
        )
    kept = [line for line in lines if not _INLINE_EMPTY.match(line)] if "controls" in data else lines
    body = "".join(kept)
    separator = "\n" if body.strip() else ""
    return body + separator + block


def remove(text: str, cid: str) -> str:
    """``text`` without the control ``cid``'s table (its comments right above it go too)."""
    slot = _find(text, cid)
    lines = _lines(text)
    start = slot.start
    if slot.after == len(lines):  # the file's last lines: the blank lines that set it apart go too
        while start > 0 and not lines[start - 1].strip():
            start -= 1
    return _in_views("".join(lines[:start] + lines[slot.after :]), cid, None)


def reorder(text: str, ids: list[str]) -> str:
    """``text`` with its ``[[controls]]`` tables in the order of ``ids`` (all of them, each once)."""
    found = slots(text)
    current = [slot.cid for slot in found]
    if sorted(ids) != sorted(c for c in current if c is not None) or len(ids) != len(current):
        raise EditError(f"expected every [[controls]] id once, in the new order: {', '.join(map(str, current))}")
    lines = _lines(text)
    content = {slot.cid: "".join(lines[slot.start : slot.end]) for slot in found}
    out: list[str] = []
    cursor = 0
    for slot, cid in zip(found, ids, strict=True):
        out.append("".join(lines[cursor : slot.start]))
        out.append(content[cid])
        cursor = slot.end
    out.append("".join(lines[cursor:]))
    return "".join(out)


def tables(text: str) -> list[dict[str, Any]]:
    """The ``[[controls]]`` tables as the file writes them (plain values), in file order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found = data.get("controls")
    return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []
