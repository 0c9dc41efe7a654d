"""The controls as an OSCQuery namespace: a tree of OSC addresses with types, ranges and values.

Follows the OSCQuery proposal (Vidvox/OSCQueryProposal). Pure: the tree is
built once from the controls, and every answer is built from values handed
in, so there is no second copy of them to drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.auth import Role
from bridge.model import Control, Value
from bridge.osc.codec import encode

#: The attributes a node may carry here, in the order they are written.
ATTRIBUTES = ("FULL_PATH", "DESCRIPTION", "ACCESS", "TYPE", "VALUE", "RANGE", "CLIPMODE", "UNIT", "CONTENTS")
#: What ``?HOST_INFO`` says this server supports. There is no config reload,
#: so the namespace never changes while the bridge runs: no PATH_* messages.
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
    "PATH_CHANGED": False,
    "PATH_RENAMED": False,
    "PATH_ADDED": False,
    "PATH_REMOVED": False,
}
#: ACCESS: 0 a container, 1 read only (the viewer key), 3 read and write.
ACCESS = {"control": 3, "viewer": 1}


def osc_type(control: Control) -> str:
    """The OSC type tag a control has here.

    A range is a float and a text a string, as over UDP. A toggle is an OSC
    boolean (``T``/``F``), which OSCQuery clients show as a switch; a button
    is an int 0/1 (pressed, released), as buttons send in OSC software.
    """
    return {"range": "f", "toggle": "T", "button": "i", "text": "s"}[control.type]


def json_value(control: Control, value: Value) -> float | int | bool | str:
    """A stored value as its OSCQuery ``VALUE`` item."""
    if control.type == "range":
        return float(value)
    if control.type == "toggle":
        return bool(value)
    if control.type == "button":
        return int(value)
    return str(value)


def frame(control: Control, value: Value) -> bytes:
    """The binary OSC message a listener gets for ``value``, typed as ``TYPE`` says."""
    if control.type == "toggle":
        builder = OscMessageBuilder(address=control.osc)
        builder.add_arg(bool(value))  # T or F: no data bytes
        return bytes(builder.build().dgram)
    return encode(control.osc, control, value)


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
        for control in controls:
            self.by_address[control.osc] = control
            node = self.root
            for part in control.osc.strip("/").split("/"):
                child = node.children.get(part)
                if child is None:
                    path = ("" if node.path == "/" else node.path) + "/" + part
                    child = node.children[part] = self.nodes[path] = Node(path)
                node = child
            node.control = control

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
            out["ACCESS"] = ACCESS[role]
            out["TYPE"] = osc_type(control)
            out["VALUE"] = [json_value(control, values[control.id])]
            if control.type == "range":
                out["RANGE"] = [{"MIN": control.min, "MAX": control.max}]
                out["CLIPMODE"] = ["both"]  # out-of-range values are clamped, never refused
            elif control.type == "button":
                out["RANGE"] = [{"MIN": 0, "MAX": 1}]
            if control.unit:
                out["UNIT"] = [control.unit]
        if node.children:
            out["CONTENTS"] = {name: self.describe(child, values, role) for name, child in node.children.items()}
        return out
