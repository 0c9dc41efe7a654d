"""OSCQuery as a hub adapter: every change to the listeners of its path, binary OSC in as values.

Software such as ossia score, Chataigne or a VRChat tool finds every
control, its type, range and current value by itself, without anyone typing
addresses (:mod:`bridge.oscquery.namespace`), and listens to changes over a
WebSocket (:mod:`bridge.oscquery.server`). A client whose bindings go both
ways sends back what it was sent: that echo is known and dropped
(:mod:`bridge.echoes`, shared with OSC, as such a client may answer over UDP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.auth import Access, Origins
from bridge.config import Config
from bridge.echoes import Echoes, came_from
from bridge.errors import InvalidValue, MalformedPacket, UnknownControl
from bridge.hub import Hub, Reshaped
from bridge.model import Change, Origin
from bridge.osc.codec import arguments, values_for
from bridge.osc.packets import decode
from bridge.oscquery.namespace import Namespace, frame
from bridge.oscquery.server import Client, OscQueryServer

log = logging.getLogger(__name__)


class OscQueryAdapter:
    """The OSCQuery server, and the hub's sink toward its listeners."""

    name = "oscquery"

    def __init__(
        self,
        hub: Hub,
        config: Config,
        access: Access | None = None,
        origins: Origins | None = None,
        osc_port: Callable[[], int | None] | None = None,
        echoes: Echoes | None = None,
    ) -> None:
        self.hub = hub
        self.echoes = echoes or Echoes()
        self.namespace = Namespace(list(hub.controls.values()), config.discovery.name)
        self.server = OscQueryServer(
            self.namespace, config, access or Access(), hub.values, self._osc_in, origins, osc_port
        )
        self.received = 0
        self.refused = 0
        self.echoed = 0

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def describe(self) -> dict[str, Any]:
        return {
            **self.server.describe(),
            "received": self.received,
            "dropped": self.server.dropped,
            "refused": self.refused,
            "echoes": self.echoed,
        }

    def follow(self, config: Config) -> None:
        """A reload kept this table as it was: HOST_INFO and the namespace's name follow the rest."""
        self.server.config = config
        if config.discovery.name != self.namespace.name:
            self.namespace.name = config.discovery.name

    def recheck_keys(self) -> None:
        self.server.recheck_keys()

    def reshape(self, reshaped: Reshaped) -> None:
        """The controls changed (a reload): a new namespace, and the clients told."""
        self.namespace = Namespace(list(self.hub.controls.values()), self.namespace.name)
        self.server.reshape(self.namespace)

    def send(self, change: Change) -> None:
        """Offer ``change`` to the clients listening to its path, except the one it came from."""
        source = change.origin.ident if change.origin.kind == "oscquery" else None
        control = change.control
        # Controls sharing an address (constant arguments tell them apart) each keep their frame;
        # a button's every press and release goes out (a trigger's presses are events).
        key = control.osc if control.osc_args is None else (control.osc, control.id)
        data = frame(control, change.value)
        offered = self.server.offer(control.osc, data, source, key, control.type == "button")
        if offered:
            # (a change a client sent, over UDP or this WebSocket, comes back to its host: that is
            # reflected, not probed; another client on that host sending the same is a hand's)
            back_to = came_from(change.origin)
            self.echoes.sent_all([(c.host, data, c.host == back_to) for c in offered], time.monotonic())

    def _osc_in(self, client: Client, data: bytes) -> None:
        self.received += 1
        if client.role != "control":
            self.refused += 1
            self.server.warn((client.ident, "viewer"), "OSCQuery %s: read-only (viewer key); OSC dropped", client.peer)
            return
        try:
            found = decode(data)
        except MalformedPacket as err:
            self.server.drop((client.ident, "malformed"), "OSCQuery %s: malformed OSC dropped (%s)", client.peer, err)
            return
        origin = Origin("oscquery", client.ident, client.host)
        now = time.monotonic()
        for message in found:
            if self.echoes.back(client.host, message.dgram, now, message.address):
                self.echoed += 1  # what it was sent a moment ago, straight back (a binding both ways)
                continue
            address = message.address
            try:
                pairs, problems = values_for(address, arguments(message), self.namespace.table)
            except MalformedPacket as err:
                self.server.drop((client.ident, "pattern"), "OSCQuery %s: %s: %s", client.peer, address, err)
                continue
            for reason in problems:  # (an unknown address is one kind, whatever the address; a value that
                # does not fit, another: it is not hidden behind the noise of the first)
                kind = "address" if reason == "no control at this address" else reason
                self.server.drop((client.ident, kind), "OSCQuery %s: %s: %s; dropped", client.peer, address, reason)
            for control, raw in pairs:
                try:
                    applied = self.hub.set(control.id, raw, origin)
                except (InvalidValue, UnknownControl) as err:
                    self.server.drop(
                        (client.ident, "address"), "OSCQuery %s: %s %s; dropped", client.peer, address, err
                    )
                    continue
                if applied.adjusted and control.osc in client.paths:
                    # Clamped or stepped: the sender shows something else; correct it.
                    correction = frame(control, applied.value)
                    client.offer(control.osc, correction)
                    self.echoes.sent(client.host, correction, time.monotonic(), reflected=True)
