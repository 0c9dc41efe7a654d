"""What waits for an OSC peer (a TCP desk, a client, a UDP target on a full link) and how: a value is
kept the latest per control, a button's press and release each, and a GO never goes out late.

A trigger's press that waited for its peer longer than :data:`FIRE_WITHIN` (a
desk that stopped reading, a connection that dropped meanwhile, a link that
stays full) is not sent: a cue fired late is worse than one not fired, and an
operator who sees nothing happen presses again. Its age is checked when the
writer reaches it, and again while it waits for room.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Literal

from bridge.logs import LogLimiter

log = logging.getLogger("bridge.osc.tcp")
said = LogLimiter(log, interval=5.0)

#: A button's presses and releases waiting for one peer are kept each, in order, up to
#: this many things waiting; past them (a peer that stopped reading) a button is held to its
#: latest state, like a fader.
EVENTS_MAX = 64

#: What a packet carries: a value (None; the latest per control is enough), a button's press
#: or release ("press": each counts), or a trigger's press ("fire": each counts, and it is
#: never kept for a connection that is not there: a cue fired late is worse than none).
Event = Literal["press", "fire"] | None
#: A trigger's press (a GO) that waited longer than this (seconds) for its peer to take it (a desk
#: that stopped reading, a connection that dropped meanwhile, a full link) is not sent: a cue fired
#: late is worse than one not fired (as :attr:`bridge.hub.Held.FIRE_WITHIN`).
FIRE_WITHIN = 0.5


_events = itertools.count()


@dataclass(frozen=True)
class Fire:
    """The outbox key of a trigger's press; when it was pressed goes with it, no part of the key."""

    key: object
    number: int
    at: float = field(compare=False)


def event_key(outbox: Sized, key: object, event: Event) -> object:
    """The outbox key for a packet of control ``key``: one of its own for an event, while few wait."""
    room = len(outbox) < EVENTS_MAX
    if event == "fire":
        return Fire(key, next(_events) if room else -1, time.monotonic())
    if event is not None and room:
        return (key, next(_events))
    return key


def in_time(batch: Mapping[object, bytes], peer: str, room: Callable[[float], bool] | None = None) -> Iterator[bytes]:
    """The packets of ``batch``, each checked as it is reached (the writer waits for room between two): a
    trigger's press that waited past :data:`FIRE_WITHIN` by then, or that ``room(until)`` finds no room for
    by then, is dropped, and said."""
    for key, packet in batch.items():
        until = fire_deadline(key)
        if until is not None and (time.monotonic() > until or (room is not None and not room(until))):
            said_late(peer, key)
            continue
        yield packet


def fire_deadline(key: object) -> float | None:
    """When a trigger's press waiting under ``key`` is too late to send (None: not one)."""
    return key.at + FIRE_WITHIN if isinstance(key, Fire) else None


def said_late(peer: str, key: object) -> None:
    waited = time.monotonic() - key.at if isinstance(key, Fire) else 0.0
    said.warning(
        ("late", peer),
        "OSC to %s: a trigger press waited %.1f s for it; not sent (a cue fired late is worse than none)",
        peer,
        waited,
    )
