"""What a console is sent that is not a value: the messages written in its config (``on_connect``,
``keepalive``), and with ``query_on_connect`` the addresses it is asked for its values at."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config.sections import OscCall
from bridge.model import Control


def message(call: OscCall, prefix: str = "") -> bytes:
    """One message written in the config (on_connect, keepalive), as bytes."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    builder = OscMessageBuilder(address=prefix + call[0])
    for arg in call[1]:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


def queries(controls: Mapping[str, Control]) -> list[str]:
    """The addresses a desk is asked for its values at: every control's that carries a value, and label_from's.

    A trigger's address, or one whose message has no argument, is never
    sent bare: to a console that is the cue itself (QLab's /go).
    """
    found: dict[str, None] = {}
    for control in controls.values():
        empty = control.on == () or control.off == ()
        if not control.trigger and not empty and control.osc_args is None:
            found[control.osc] = None
    for control in controls.values():
        for address in (control.label_from, control.color_from.address if control.color_from else None):
            if address:
                found[address] = None
    return list(found)
