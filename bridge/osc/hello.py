"""What a console is sent that is not a value: the messages written in its config (``on_connect``,
``keepalive``), and with ``query_on_connect`` the addresses it is asked for its values at.

A desk is asked when it connects (TCP), at start and when it is back (UDP),
and, after a reload, at the addresses the reload added (a strip added, or
pointed at another mix): else those showed their default, or the old mix's
level, and the first touch on a phone jumped the desk. A control whose newer
value waits for the desk (changed while it was down) is not asked for: its
answer, the desk's value from before, would undo the newer one, which the
desk gets next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from bridge.config.sections import OscCall, OscTarget
from bridge.model import Control, Value

if TYPE_CHECKING:
    from bridge.osc.tcp import TcpTarget
    from bridge.osc.udp import UdpTarget


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
    return list(dict.fromkeys(address for _cid, address in asked_at(controls)))


def asked_at(controls: Mapping[str, Control]) -> list[tuple[str, str]]:
    """What :func:`queries` asks, per control: (id, address), values first, then names and colours. A reload
    asks at those it added, by control: two strips that swapped their mixes are asked again."""
    found: list[tuple[str, str]] = []
    for control in controls.values():
        empty = control.on == () or control.off == ()
        # (A meter is fed all the time, and a desk ignores the bare address: an X32's /meters/...)
        if not control.trigger and not empty and control.osc_args is None and control.type != "meter":
            found.append((control.id, control.osc))
    for control in controls.values():
        for address in (control.label_from, control.color_from.address if control.color_from else None):
            if address:
                found.append((control.id, address))
    return found


def asking(config: OscTarget, controls: Mapping[str, Control], newer: Iterable[str], at: Iterable[str]) -> list[bytes]:
    """The queries for the addresses ``at`` (with ``query_on_connect``), but those of the controls ``newer``
    (their value waits to go out to the desk)."""
    if not config.query_on_connect:
        return []
    waiting = {controls[cid].osc for cid in newer if cid in controls}
    return [message((address, ()), config.prefix) for address in at if address not in waiting]


def greeting(config: OscTarget, controls: Mapping[str, Control], newer: Iterable[str]) -> list[bytes]:
    """What a target is sent first, whenever it connects: its on_connect messages, the keepalive when its
    answer is waited for (a desk back is shown connected, and sent GOs, one round trip later), the queries."""
    calls = config.on_connect + (config.keepalive if config.answer_within else ())
    return [message(call, config.prefix) for call in calls] + asking(config, controls, newer, queries(controls))


def owed(
    targets: Sequence[UdpTarget | TcpTarget],
    controls: Mapping[str, Control],
    values: Mapping[str, Value],
    cids: Iterable[str],
) -> None:
    """Give ``targets`` the values of ``cids`` to send after their greeting, not asked for: a UDP target's
    :attr:`~bridge.osc.udp.UdpTarget.missed`, a TCP target's outbox (a trigger's press is never replayed)."""
    from bridge.osc.codec import encode
    from bridge.osc.udp import UdpTarget

    for cid in cids:
        control = controls.get(cid)
        if control is None or control.trigger or cid not in values:
            continue
        for target in targets:
            if isinstance(target, UdpTarget):
                target.missed[cid] = 0.0
            else:
                config = target.config
                target.put(cid, encode(config.prefix + control.osc, control, values[cid], config.arg_type))
