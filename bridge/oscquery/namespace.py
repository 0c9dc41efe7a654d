"""The controls as an OSCQuery namespace: a tree of OSC addresses with types, ranges and values.

Follows the OSCQuery proposal (Vidvox/OSCQueryProposal). Pure: the tree is
built once from the controls, and every answer is built from values handed
in, so there is no second copy of them to drift.

Everything is said in OSC's terms, as the wire carries it: a fader with an
OSC ``range`` or ``curve`` (an X32's 0-1 law under a -90..10 dB fader) has
its RANGE and VALUE in wire units, as the frames a listener gets and the
messages the bridge takes; TYPE is the tag of those frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.auth import Role
from bridge.mapping import to_wire
from bridge.model import VALUE, Control, Value
from bridge.osc.codec import encode, natural_tag, options_tag
from bridge.osc.packets import address_table

#: The attributes a node may carry here, in the order they are written.
ATTRIBUTES = ("FULL_PATH", "DESCRIPTION", "ACCESS", "TYPE", "VALUE", "RANGE", "CLIPMODE", "UNIT", "CONTENTS")
#: What ``?HOST_INFO`` says this server supports. A config reload changes the
#: namespace: listeners are told with PATH_ADDED, PATH_REMOVED and PATH_CHANGED
#: (a rename shows as a removal and an addition).
EXTENSIONS = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "UNIT": True,
    "CLIPMODE": True,
    "LISTEN": True,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "CRITICAL": False,
    "OVERLOADS": False,
    "HTML": False,
    "PATH_CHANGED": True,
    "PATH_RENAMED": False,
    "PATH_ADDED": True,
    "PATH_REMOVED": True,
}
#: ACCESS: 0 a container, 1 read only (the viewer key), 3 read and write.
ACCESS = {"control": 3, "viewer": 1}


def osc_type(control: Control) -> str:
    """The OSC type tag of the value's place.

    A range, knob or meter is a float and a text a string, as over UDP. A
    toggle is an OSC boolean (``T``/``F``), which OSCQuery clients show as
    a switch; a button is an int 0/1 (pressed, released), as buttons send
    in OSC software, and a trigger that sends no argument is ``N``. A
    select's type is its options'.
    """
    if control.switch and (control.on is not None or control.off is not None):
        sent = control.on if control.on is not None else control.off
        return "N" if sent == () else natural_tag(sent)
    if control.type == "toggle":
        return "T"
    if control.switch:
        return "i"
    if control.type == "select":
        return options_tag(control)
    if control.type == "label":
        # What a desk feeds may be a whole number or not: any number is a float, text a string.
        return "s" if isinstance(control.default, str) else "f"
    if control.numeric or control.type == "led":
        return "f"
    return "s"


def type_string(control: Control) -> str:
    """``TYPE``: one tag per argument, the constants of a template included."""
    if control.osc_types is not None:
        return control.osc_types
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    tags = []
    for arg in template:
        if arg is VALUE:
            tags.append(osc_type(control))
        else:
            tags.append(natural_tag(arg))
    return "".join(tags)


def _value_tag(control: Control) -> str:
    """The type tag of the argument that carries the value: as the control's ``types`` say, else :func:`osc_type`."""
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    if control.osc_types is not None:
        at = next((i for i, arg in enumerate(template) if arg is VALUE), None)
        if at is not None and at < len(control.osc_types):
            return control.osc_types[at]
    return osc_type(control)


def _wire(control: Control, value: Value) -> Value:
    """A number as OSC carries it: through the control's OSC ``range`` or ``curve``, if it has one."""
    if control.numeric and control.osc_scale is not None and isinstance(value, int | float):
        return to_wire(control.osc_scale, control.min, control.max, float(value))
    return value


def json_value(control: Control, value: Value) -> float | int | bool | str | None:
    """A stored value as its OSCQuery ``VALUE`` item at the value's place: what a frame carries."""
    tag = _value_tag(control)
    if tag == "N":
        return None
    if control.switch and (control.on is not None or control.off is not None):
        sent = control.on if value else control.off
        return None if isinstance(sent, tuple) or sent is None else sent
    if tag == "T":
        return bool(value)
    value = _wire(control, value)
    if tag in ("f", "d") and isinstance(value, int | float):
        return float(value)
    if tag in ("i", "h") and isinstance(value, int | float):
        return int(math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1))  # as the frame rounds it
    return value


def frame(control: Control, value: Value) -> bytes:
    """The binary OSC message a listener gets for ``value``, typed as ``TYPE`` says."""
    if type_string(control) == "T":  # a toggle as an OSC boolean, as TYPE says
        builder = OscMessageBuilder(address=control.osc)
        builder.add_arg(bool(value))  # T or F: no data bytes
        return bytes(builder.build().dgram)
    if control.osc_types is None and isinstance(value, int | float) and not isinstance(value, bool):
        tag = _value_tag(control)
        if tag in ("f", "i") and not control.switch:  # a select's or a label's number, as TYPE says
            return encode(control.osc, control, value, "float" if tag == "f" else "int")
    return encode(control.osc, control, value)


def _attributes(control: Control, value: Value) -> dict[str, Any]:
    """TYPE, VALUE, RANGE and CLIPMODE, one entry per argument (constants as a VALS of one)."""
    template = control.osc_args if control.osc_args is not None else (VALUE,)
    values: list[Any] = []
    ranges: list[Any] = []
    for arg in template:
        if arg is VALUE:
            values.append(json_value(control, value))
            ranges.append(_range(control))
        else:
            values.append(arg)
            ranges.append({"VALS": [arg]})
    out: dict[str, Any] = {"TYPE": type_string(control), "VALUE": values}
    if any(r is not None for r in ranges):
        out["RANGE"] = ranges
    if control.numeric:
        out["CLIPMODE"] = ["both" if arg is VALUE else "none" for arg in template]
    return out


def _range(control: Control) -> dict[str, Any] | None:
    if control.numeric:
        lo, hi = control.min, control.max
        if control.osc_scale is not None:  # the wire's ends (a curve may run either way)
            lo, hi = sorted(to_wire(control.osc_scale, control.min, control.max, end) for end in (lo, hi))
        return {"MIN": lo, "MAX": hi}
    if control.type == "select":
        return {"VALS": [option.value for option in control.options]}
    if control.switch and control.on is None and control.off is None and control.type != "toggle":
        return {"MIN": 0, "MAX": 1}
    return None


def _described(control: Control | None) -> Control | None:
    """What a node says of its control: all of it but where in the file it is (``where`` shifts
    for every control after one added, and is no business of a client's)."""
    return None if control is None else replace(control, where="")


@dataclass
class Node:
    """One address in the namespace: a control, a container, or both."""

    path: str
    control: Control | None = None
    children: dict[str, Node] = field(default_factory=dict)


class Namespace:
    """The tree of OSC addresses built once from the controls."""

    def __init__(self, controls: list[Control] | tuple[Control, ...], name: str) -> None:
        self.name = name
        self.root = Node("/")
        self.nodes: dict[str, Node] = {"/": self.root}
        self.by_address: dict[str, Control] = {}
        #: Every control at each address (several when their constant arguments differ), for messages in.
        self.table = address_table(controls)
        for control in controls:
            if control.osc in self.by_address or "{value}" in control.osc:
                # One node per address, the first control there describes it; an address
                # that carries the value (/cue/{value}/start) is no one node at all.
                continue
            self.by_address[control.osc] = control
            node = self.root
            for part in control.osc.strip("/").split("/"):
                child = node.children.get(part)
                if child is None:
                    path = ("" if node.path == "/" else node.path) + "/" + part
                    child = node.children[part] = self.nodes[path] = Node(path)
                node = child
            node.control = control

    def changes(self, old: Namespace) -> list[tuple[str, str]]:
        """What a listener is told when ``old`` becomes this namespace: (command, path), removals first."""
        removed = [("PATH_REMOVED", p) for p in old.nodes if p not in self.nodes]
        added = [("PATH_ADDED", p) for p in self.nodes if p not in old.nodes]
        changed = [
            ("PATH_CHANGED", p)
            for p, node in self.nodes.items()
            if p in old.nodes
            and node.control is not None
            and _described(node.control) != _described(old.nodes[p].control)
        ]
        return removed + added + changed

    def find(self, path: str) -> Node | None:
        """The node at ``path`` (a trailing slash is ignored), or None."""
        if path != "/":
            path = path.rstrip("/") or "/"
        return self.nodes.get(path)

    def describe(self, node: Node, values: dict[str, Value], role: Role) -> dict[str, Any]:
        """The node's JSON object, with its whole subtree in ``CONTENTS``."""
        out: dict[str, Any] = {"FULL_PATH": node.path}
        control = node.control
        if control is None:
            if node is self.root:
                out["DESCRIPTION"] = self.name
            out["ACCESS"] = 0
        else:
            out["DESCRIPTION"] = control.label
            # Read only: the viewer key, or a display the desk feeds (label, meter, LED).
            out["ACCESS"] = ACCESS["viewer"] if control.read_only else ACCESS[role]
            # Out-of-range values are clamped, never refused: CLIPMODE "both".
            out.update(_attributes(control, values[control.id]))
            if control.unit:
                template = control.osc_args if control.osc_args is not None else (VALUE,)
                out["UNIT"] = [control.unit if arg is VALUE else "" for arg in template]
        if node.children:
            out["CONTENTS"] = {name: self.describe(child, values, role) for name, child in node.children.items()}
        return out
