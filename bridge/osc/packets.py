"""OSC packets at the edge: whole-packet checks, decoding, address patterns and the controls an address names.

Pure functions, no sockets. python-osc decodes the packets; what it lets
through silently (a float argument cut off at the end of a datagram is read
as 0.0 by python-osc 1.10) is caught here first, so that a fader never jumps
because a packet was cut short. :func:`decode` is the one way in: whatever
python-osc raises on a bad packet leaves it as :class:`MalformedPacket`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from bridge.errors import MalformedPacket
from bridge.model import Control

BUNDLE_TAG = b"#bundle\x00"
#: Bundles nested deeper than this are refused: no datagram may recurse forever.
MAX_BUNDLE_DEPTH = 8
_FIXED_SIZES = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "d": 8, "h": 8, "t": 8}
_NO_DATA = "TFNI[]"
#: The type tags python-osc reads; it skips any other, and misreads the arguments after it.
READ_TAGS = frozenset("ihfdsbrmtTFN[]")


def _padded_string_end(data: bytes, start: int, what: str) -> int:
    end = data.find(b"\x00", start)
    if end < 0:
        raise MalformedPacket(f"{what} has no terminating NUL")
    return (end // 4 + 1) * 4


def check_packet(data: bytes, depth: int = 0) -> str | None:
    """Raise :class:`MalformedPacket` unless ``data`` is one whole OSC packet; the first type tag
    in it python-osc does not read (OSC 1.0's optional ``S``, ``c``, ``I``), if any."""
    if not data or len(data) % 4:
        raise MalformedPacket(f"length {len(data)} is not a positive multiple of 4")
    if data.startswith(BUNDLE_TAG):
        return _check_bundle(data, depth)
    elif data.startswith(b"/"):
        return _check_message(data)
    else:
        raise MalformedPacket("neither a message (starts with /) nor a bundle (#bundle)")


def _check_bundle(data: bytes, depth: int) -> str | None:
    if depth >= MAX_BUNDLE_DEPTH:
        raise MalformedPacket(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    pos = len(BUNDLE_TAG) + 8  # time tag
    if len(data) < pos:
        raise MalformedPacket("bundle cut short in its time tag")
    unread: str | None = None
    while pos < len(data):
        if pos + 4 > len(data):
            raise MalformedPacket("bundle element size cut short")
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size <= 0 or pos + size > len(data):
            raise MalformedPacket(f"bundle element of size {size} does not fit the datagram")
        unread = check_packet(data[pos : pos + size], depth + 1) or unread
        pos += size
    return unread


def _check_message(data: bytes) -> str | None:
    pos = _padded_string_end(data, 0, "address")
    if pos > len(data):
        raise MalformedPacket("address cut short")
    if pos == len(data):
        return None  # no type tag string: an old-style message without arguments
    if data[pos : pos + 1] != b",":
        raise MalformedPacket("type tag string does not start with ','")
    tags_end = _padded_string_end(data, pos, "type tag string")
    tags = data[pos + 1 : data.find(b"\x00", pos)].decode("ascii", errors="replace")
    pos = tags_end
    for tag in tags:
        if tag in _FIXED_SIZES:
            pos += _FIXED_SIZES[tag]
        elif tag in "sS":
            pos = _padded_string_end(data, pos, "string argument")
        elif tag == "b":
            if pos + 4 > len(data):
                raise MalformedPacket("blob size cut short")
            (size,) = struct.unpack_from(">i", data, pos)
            if size < 0:
                raise MalformedPacket("negative blob size")
            pos += 4 + (size + 3) // 4 * 4
        elif tag not in _NO_DATA:
            raise MalformedPacket(f"unknown type tag {tag!r}")
        if pos > len(data):
            raise MalformedPacket(f"argument {tag!r} cut short")
    if pos != len(data):
        raise MalformedPacket(f"{len(data) - pos} bytes after the last argument")
    if READ_TAGS.issuperset(tags):
        return None
    return next(tag for tag in tags if tag not in READ_TAGS)


def decode(data: bytes) -> list[OscMessage]:
    """Every message in the packet ``data``, in order; :class:`MalformedPacket` for anything else."""
    try:
        unread = check_packet(data)
        if unread is not None:
            # python-osc would skip it and misread what follows (and say so on the root logger)
            raise MalformedPacket(f"type tag {unread!r} is not read (send the value as s, i, f or T/F)")
        return list(messages(data))
    except MalformedPacket:
        raise
    except Exception as err:  # python-osc's ParseError and whatever its parsers let escape
        raise MalformedPacket(f"not decodable: {err}") from err


def messages(data: bytes) -> Iterator[OscMessage]:
    """Every message in a checked packet, bundles unpacked depth-first, in order.

    Time tags are not waited for: a bundle's messages are applied on arrival.
    """
    if data.startswith(BUNDLE_TAG):
        for element in OscBundle(data):
            if isinstance(element, OscBundle):
                yield from messages(element.dgram)
            else:
                yield element
    else:
        yield OscMessage(data)


_PATTERN_CHARS = re.compile(r"[*?\[\]{}]")


def is_pattern(address: str) -> bool:
    return bool(_PATTERN_CHARS.search(address))


#: An address pattern longer than this, or naming more alternatives ({a,b} lists multiplied
#: together), is refused: whatever a sender writes, matching it stays cheap.
MAX_PATTERN_LENGTH = 256
MAX_ALTERNATIVES = 64

#: A pattern's parts, ``{}`` lists expanded: a character, ``?``, a ``[...]`` set (as a regex), ``*``.
_Token = tuple[str, str]
_STAR: _Token = ("*", "")


@lru_cache(maxsize=1024)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regex for an OSC 1.0 address pattern (``*``, ``?``, ``[a-z]``, ``[!a-z]``, ``{a,b}``).

    It never backtracks far, whatever the pattern: a ``*`` followed by more of
    its path segment and another ``*`` takes the leftmost match of what is
    between them, once (an atomic group; with fixed-length parts between the
    stars the leftmost match is always a right one), and ``{}`` lists are
    expanded into alternatives, at most :data:`MAX_ALTERNATIVES`. A naive
    translation took minutes on a 64-byte datagram of stars.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise MalformedPacket(f"address pattern longer than {MAX_PATTERN_LENGTH} characters")
    alternatives = [_glob(tokens) for tokens in _expand(pattern)]
    try:
        return re.compile("(?:" + "|".join(alternatives) + r")\Z")
    except re.error as err:
        raise MalformedPacket(f"bad address pattern {pattern!r}: {err}") from err


def _expand(pattern: str) -> list[list[_Token]]:
    """The pattern's tokens, one list per combination of its ``{}`` choices."""
    expanded: list[list[_Token]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise MalformedPacket(f"unclosed {{ in address pattern {pattern!r}")
            choices = pattern[i + 1 : end].split(",")
            if len(expanded) * len(choices) > MAX_ALTERNATIVES:
                raise MalformedPacket(f"address pattern with more than {MAX_ALTERNATIVES} alternatives")
            expanded = [[*tokens, *(("c", c) for c in choice)] for tokens in expanded for choice in choices]
            i = end + 1
            continue
        if ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise MalformedPacket(f"unclosed [ in address pattern {pattern!r}")
            token: _Token = ("[", _char_set(pattern[i + 1 : end]))
            i = end
        elif ch == "*":
            token = _STAR
        elif ch == "?":
            token = ("?", "")
        else:
            token = ("c", ch)
        for tokens in expanded:
            if not (token == _STAR and tokens and tokens[-1] == _STAR):  # ** is *
                tokens.append(token)
        i += 1
    return expanded


def _char_set(body: str) -> str:
    """``[a-z]`` or ``[!a-z]`` as a regex set: ranges kept, everything else escaped; never a ``/``
    (that parts the path: only a ``/`` matches it)."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    parts = [re.escape(c) if c != "-" else "-" for c in body if c != "/"]
    if parts and parts[0] == "-":
        parts[0] = r"\-"
    if parts and parts[-1] == "-" and len(parts) > 1:
        parts[-1] = r"\-"
    if negate:
        return "[^/" + "".join(parts) + "]"
    return "[" + "".join(parts) + "]" if parts else "(?!)"


def _glob(tokens: list[_Token]) -> str:
    """One expanded pattern as a regex, each path segment on its own (no ``*`` or ``?`` crosses a ``/``)."""
    out: list[str] = []
    piece: list[str] = []  # what follows the last * of this segment (or its start), one character each
    starred = False  # a * came before ``piece`` in this segment

    def close_piece(last: bool) -> None:
        text = "".join(piece)
        if not starred:
            out.append(text)
        elif last:
            out.append("[^/]*" + text)  # greedy, then the segment's end: at most one step back per character
        else:
            out.append("(?>[^/]*?" + text + ")")  # the leftmost match, taken once
        piece.clear()

    for kind, text in tokens:
        if kind == "*":
            close_piece(last=False)
            starred = True
        elif kind == "c" and text == "/":
            close_piece(last=True)
            out.append("/")
            starred = False
        elif kind == "c":
            piece.append(re.escape(text))
        elif kind == "?":
            piece.append("[^/]")
        else:
            piece.append(text)
    close_piece(last=True)
    return "".join(out)


class AddressTable(dict[str, tuple[Control, ...]]):
    """The controls at each OSC address; apart, the addresses with a ``{value}`` in them, made once
    (an incoming address is matched against those, and only those, one by one)."""

    templates: tuple[tuple[str, tuple[Control, ...]], ...] = ()


def address_table(
    controls: Iterable[Control], address: Callable[[Control], str | None] = lambda c: c.osc
) -> AddressTable:
    """The controls at each OSC address (several when their constant arguments differ).

    ``address`` picks the address: the control's own by default, or another
    it listens to (``label_from``); controls for which it gives None are left out.
    """
    table: dict[str, list[Control]] = {}
    for control in controls:
        at = address(control)
        if at is not None:
            table.setdefault(at, []).append(control)
    made = AddressTable({address: tuple(found) for address, found in table.items()})
    made.templates = tuple((at, found) for at, found in made.items() if "{value}" in at)
    return made


def controls_at(address: str, table: Mapping[str, tuple[Control, ...]]) -> list[Control]:
    """The controls an incoming ``address`` names: those at it, or at every match of an OSC 1.0 pattern.

    Raises :class:`MalformedPacket` for a pattern that cannot be read.
    """
    if is_pattern(address):
        regex = pattern_regex(address)
        return [control for a, found in table.items() if regex.match(a) for control in found]
    exact = list(table.get(address, ()))
    templates = (
        table.templates
        if isinstance(table, AddressTable)
        else tuple((at, found) for at, found in table.items() if "{value}" in at)
    )
    for template, found in templates:
        if _fits(template, address):
            exact += found
    return exact


def _fits(template: str, address: str) -> bool:
    """Whether ``address`` is ``template`` with one path segment where its ``{value}`` stands."""
    head, _, tail = template.partition("{value}")
    if not (address.startswith(head) and address.endswith(tail) and len(address) > len(head) + len(tail)):
        return False
    return "/" not in address[len(head) : len(address) - len(tail)]
