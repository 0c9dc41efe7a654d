"""Plain frozen data shared by every layer: controls, origins and changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ControlType = Literal["range", "toggle", "button", "text"]
CONTROL_TYPES: tuple[str, ...] = ("range", "toggle", "button", "text")
#: How a MIDI fader meets a value set elsewhere: follow at once, or wait to be picked up.
Takeover = Literal["jump", "pickup"]
TAKEOVER_MODES: tuple[str, ...] = ("jump", "pickup")

#: A value as stored: a number for ranges, 0/1 for toggles and buttons, str for text.
Value = int | float | str

#: Longest text a text control stores; longer input is cut to this many characters.
MAX_TEXT_LENGTH = 1024


@dataclass(frozen=True)
class MidiBinding:
    """Where a control lives on MIDI. ``channel`` is 1-16 as users write it."""

    channel: int
    kind: Literal["cc", "cc14", "note", "pitchbend"]
    number: int = 0  # CC or note number; unused for pitch bend
    feedback: bool = False


@dataclass(frozen=True)
class Control:
    """One control, built once from the config."""

    id: str
    type: ControlType
    label: str
    default: Value
    osc: str
    min: float = 0.0
    max: float = 1.0
    step: float = 0.0  # 0: continuous
    midi: MidiBinding | None = None
    group: str = ""
    unit: str = ""
    decimals: int | None = None
    scene: bool = True  # False: never saved into a scene nor touched by a recall (a master volume)
    takeover: Takeover | None = None  # None: chosen from the MIDI binding (see bridge.takeover)

    @property
    def integral(self) -> bool:
        """True when every value this range can hold is a whole number."""
        return self.type != "range" or (
            self.step > 0
            and float(self.min).is_integer()
            and float(self.step).is_integer()
            and float(self.max).is_integer()
        )


@dataclass(frozen=True)
class Origin:
    """Where a change came from, so that no source hears its own change back.

    ``kind`` is the adapter ("web", "http", "osc", "midi", "state", ...);
    ``ident`` tells one peer of that adapter from another (a Socket.IO sid,
    an OSC ``host:port``, a MIDI port name).
    """

    kind: str
    ident: str = ""


@dataclass(frozen=True)
class Change:
    """A value accepted by the hub, handed to every adapter."""

    control: Control
    value: Value
    origin: Origin

    @property
    def control_id(self) -> str:
        return self.control.id
