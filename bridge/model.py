"""Plain frozen data shared by every layer: controls, origins and changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ControlType = Literal["range", "knob", "toggle", "button", "select", "text", "label", "meter", "led"]
CONTROL_TYPES: tuple[str, ...] = ("range", "knob", "toggle", "button", "select", "text", "label", "meter", "led")
#: Numbers between min and max: faders, knobs and meters.
NUMERIC_TYPES: tuple[str, ...] = ("range", "knob", "meter")
#: What a performer moves continuously: touch, takeover, fades.
FADER_TYPES: tuple[str, ...] = ("range", "knob")
#: Shown, never moved from a page: set by OSC, MIDI, HTTP and scenes.
READ_ONLY_TYPES: tuple[str, ...] = ("label", "meter", "led")
#: How a MIDI fader meets a value set elsewhere: follow at once, or wait to be picked up.
Takeover = Literal["jump", "pickup"]
TAKEOVER_MODES: tuple[str, ...] = ("jump", "pickup")

#: A value as stored: a number for ranges, 0/1 for toggles and buttons, str for text,
#: an option's value for a select, a number or a string for a label.
Value = int | float | str

#: What a toggle or button carries on the wire when on or off: a number, a
#: string, or ``()`` for an OSC message with no argument.
Payload = int | float | str | tuple[()]

#: Longest text a text control (or a label) stores; longer input is cut to this many characters.
MAX_TEXT_LENGTH = 1024


@dataclass(frozen=True)
class Scale:
    """Between what the page shows (the control's min..max) and what the wire carries (lo..hi).

    ``curve`` is ``linear``, ``log`` (the wire follows the logarithm of the
    shown value: frequencies, times), ``exp`` (the wire grows exponentially
    with the shown value), or ``table``: ``points`` (display, wire) pairs,
    linear between them.
    """

    lo: float
    hi: float
    curve: Literal["linear", "log", "exp", "table"] = "linear"
    points: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class MidiBinding:
    """Where a control lives on MIDI. ``channel`` is 1-16 as users write it."""

    channel: int
    kind: Literal["cc", "cc14", "note", "pitchbend", "program", "nrpn"]
    number: int = 0  # CC, note or NRPN number; unused for pitch bend and program change
    feedback: bool = False
    scale: Scale | None = None  # MIDI numbers other than 0..top, or a curve


@dataclass(frozen=True)
class Option:
    """One choice of a select: the value stored and sent, and what the page shows."""

    value: int | float | str
    label: str


class _ValueSlot:
    """Where the value goes in an OSC argument template: ``"{value}"`` in the config."""

    _instance: _ValueSlot | None = None

    def __new__(cls) -> _ValueSlot:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "VALUE"


#: The one marker of the value's place among an OSC message's arguments.
VALUE = _ValueSlot()
OscArg = int | float | str | bool | _ValueSlot


@dataclass(frozen=True)
class ColorFrom:
    """The OSC address whose argument sets a control's colour, through ``map`` (text -> "#rrggbb")."""

    address: str
    map: tuple[tuple[str, str], ...] = ()

    def color(self, arg: object) -> str | None:
        """The colour an argument stands for: mapped, or itself when it is a colour already."""
        key = address_text(arg)
        for text, color in self.map:
            if text == key:
                return color
        if isinstance(arg, str) and is_color(arg):
            return arg.lower()
        return None


def address_text(arg: object) -> str:
    """A value as a path segment of an address, or a key of a ``map``: 5, not 5.0; a boolean 1 or 0."""
    if isinstance(arg, bool):
        return "1" if arg else "0"
    if isinstance(arg, float) and arg.is_integer():
        return str(int(arg))
    return str(arg)


def is_color(text: str) -> bool:
    """``#rrggbb``, the one colour form the config and the desk may use."""
    return len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in text[1:])


@dataclass(frozen=True)
class Control:
    """One control, built once from the config."""

    id: str
    type: ControlType
    label: str
    default: Value
    osc: str  # the OSC address
    min: float = 0.0
    max: float = 1.0
    step: float = 0.0  # 0: continuous
    midi: MidiBinding | None = None
    group: str = ""
    unit: str = ""
    decimals: int | None = None
    scene: bool = True  # False: never saved into a scene nor touched by a recall (a master volume)
    takeover: Takeover | None = None  # None: chosen from the MIDI binding (see bridge.midi.takeover)
    page: str = ""
    color: str = ""
    orientation: Literal["horizontal", "vertical"] = "horizontal"
    touch: Literal["relative", "absolute"] = "relative"
    reset: bool = False  # a double tap puts the default back
    mode: Literal["push", "trigger"] = "push"
    on: Payload | None = None  # what the wire carries for 1 (None: 1)
    off: Payload | None = None  # what the wire carries for 0 (None: 0)
    confirm: bool = False
    options: tuple[Option, ...] = ()
    style: Literal["buttons", "dropdown"] = "buttons"
    peak_hold: float = 0.0
    colors: tuple[tuple[float, str], ...] = ()
    osc_args: tuple[OscArg, ...] | None = None  # None: the value alone
    osc_types: str | None = None
    osc_scale: Scale | None = None
    osc_json: str | None = None  # an argument that is JSON text (QLab's replies): the field to take, "data"
    label_from: str | None = None
    color_from: ColorFrom | None = None
    where: str = ""  # where the config defines it: "controls[3]", or "repeat[0] n=5 controls[1]"

    @property
    def integral(self) -> bool:
        """True when every value this control can hold is a whole number (a stepped range, a switch)."""
        if self.switch:
            return True
        return (
            self.type in NUMERIC_TYPES
            and self.step > 0
            and float(self.min).is_integer()
            and float(self.step).is_integer()
            and float(self.max).is_integer()
        )

    @property
    def numeric(self) -> bool:
        """A number between min and max (range, knob, meter)."""
        return self.type in NUMERIC_TYPES

    @property
    def fader(self) -> bool:
        """Moved continuously by a performer: relative touch, soft takeover, fades (range, knob)."""
        return self.type in FADER_TYPES

    @property
    def switch(self) -> bool:
        """Stores 0 or 1 (toggle, button, a plain LED)."""
        return self.type in ("toggle", "button") or (self.type == "led" and not self.colors)

    @property
    def read_only(self) -> bool:
        """Shown on the page, set only by OSC, MIDI, HTTP and scenes (label, meter, LED)."""
        return self.type in READ_ONLY_TYPES

    @property
    def trigger(self) -> bool:
        """A button that fires on press only: nothing is stored, recalled or replayed."""
        return self.type == "button" and self.mode == "trigger"

    @property
    def push(self) -> bool:
        """A pad held down while pressed (a button that is not a trigger)."""
        return self.type == "button" and self.mode != "trigger"

    def option_index(self, value: object) -> int | None:
        """The position of ``value`` among a select's options, or None."""
        for index, option in enumerate(self.options):
            if _same_option(option.value, value):
                return index
        return None


def _same_option(a: object, b: object) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return a == b


@dataclass(frozen=True)
class Origin:
    """Where a change came from, so that no source hears its own change back.

    ``kind`` is the adapter ("web", "http", "osc", "midi", "state", ...);
    ``ident`` tells one peer of that adapter from another (a Socket.IO sid,
    an OSC ``host:port``, a MIDI port name).
    """

    kind: str
    ident: str = ""
    #: The network host it came from (an OSC peer's, an OSCQuery client's): what goes back to
    #: that host is reflected, not echoed at random (bridge.echoes).
    host: str = ""


@dataclass(frozen=True)
class Change:
    """A value accepted by the hub, handed to every adapter."""

    control: Control
    value: Value
    origin: Origin

    @property
    def control_id(self) -> str:
        return self.control.id
