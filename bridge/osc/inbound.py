"""OSC coming in, whatever carried it (UDP, a TCP target's replies, a TCP client): checked and applied.

Packets are checked whole before python-osc decodes them
(:func:`bridge.osc.codec.decode`); bundles are unpacked and applied in
order. A burst that arrived together is applied as one batch in which the
latest value per control wins (every press and release of a button goes
through). A message a peer sends back exactly as the bridge sent it to that
peer a moment before is its echo and is dropped (:mod:`bridge.echoes`).
Addresses the desk uses to name or colour a control (``label_from``,
``color_from``) go to :class:`bridge.looks.Looks`; the bridge's own
``/bridge/...`` addresses to their handlers.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

from pythonosc.osc_message import OscMessage

from bridge.echoes import ECHOED, Echoes
from bridge.errors import BridgeError, InvalidValue, MalformedPacket, UnknownControl
from bridge.flow import Latest
from bridge.hub import Hub
from bridge.logs import LogLimiter
from bridge.looks import Looks
from bridge.model import Control, Origin
from bridge.monitor import IDLE
from bridge.osc.codec import arguments, plain_text, values_for
from bridge.osc.packets import address_table, controls_at, decode, is_pattern
from bridge.validation import normalize

log = logging.getLogger(__name__)

SYNC_ADDRESS = "/bridge/sync"
#: What a batch files a change under: the control, or (control, press) for a button.
Pending = str | tuple[str, int]
#: A handler of one of the bridge's own addresses: (arguments, the sender's ident).
Command = Callable[[list[object], str], None]
#: A message to a pattern, held until the batch applies it: (message, sender, prefix, its press number,
#: the controls the pattern reaches).
Staged = tuple[OscMessage, str, str, int, tuple[Control, ...]]
#: What a batch files a change under, with the value: (raw value, origin, address).
Filed = tuple[object, Origin, str]
#: Controls reached after which a batch hands the loop a turn: one datagram of 2,000 messages to
#: ``/ch/*/mix/fader`` reaches half a million on a 256-channel desk.
YIELD_PAIRS = 4096


@dataclass(frozen=True)
class Source:
    """Where packets came from: who (``ident``: no echo goes back there), its host, and how to answer it."""

    ident: str
    host: str
    reply: Callable[[bytes], None]
    #: A target's ``prefix``: its answers come with it in front of the controls' addresses.
    prefix: str = ""
    #: The bridge's own listening socket sent it (its broadcast heard on its own port): an echo.
    own: bool = False


class Inbound:
    """Applies OSC input to the hub; counts what it takes, drops and refuses."""

    monitor = IDLE  # the bridge's (bridge.monitor): one check per message while no drawer is open

    def __init__(
        self,
        hub: Hub,
        allow: tuple[IPv4Network | IPv6Network, ...],
        commands: Mapping[str, Command],
        sync: Callable[[list[object], Source], None],
        looks: Looks | None = None,
        echoes: Echoes | None = None,
    ) -> None:
        self.hub = hub
        self.echoes = echoes or Echoes()
        self.allow = allow
        self.commands = dict(commands)
        self._sync = sync
        self.looks = looks
        self.retable()
        self._presses = itertools.count()
        self._warn = LogLimiter(log, interval=5.0)
        # What an address carried that no control takes is said once per address and reason:
        # a desk's replies the show does not use (an Eos ping, QLab's /reply/...) come all night.
        self._once = LogLimiter(log, interval=math.inf)
        self.received = 0
        self.dropped = 0
        self.refused = 0
        self.echoed = 0

    def retable(self) -> None:
        """Build the address tables from the hub's controls (again, after a reload)."""
        controls = list(self.hub.controls.values())
        self.by_address = address_table(controls)
        # Where the desk says what a control looks like: address -> the controls whose label or colour it sets.
        self.label_from = address_table(controls, lambda c: c.label_from)
        self.color_from = address_table(controls, lambda c: c.color_from.address if c.color_from else None)
        #: Controls whose own address names or colours others: what they send is the desk's look too.
        self.naming = frozenset(c.id for c in controls if c.osc in self.label_from or c.osc in self.color_from)

    def allowed(self, host: str) -> bool:
        """True when ``[osc] allow`` lets OSC from ``host`` in (everyone when it lists nothing)."""
        if not self.allow:
            return True
        try:
            address = ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def handle(self, batch: list[tuple[bytes, Source]], arrivals: list[float | None] | None = None) -> None:
        """Check, unpack and apply packets in order; the latest value per control wins. ``arrivals``: when
        each came (``time.monotonic()``), to know an echo by; else (or None) now."""
        self.received += len(batch)
        pending: Latest[Pending, Filed] = Latest()
        # Messages to a pattern wait until applied (or until a message to one address comes), and are
        # then read from the last back: a control a later message set is not read again in an earlier
        # one. A pattern repeated a thousand times is read once per control.
        staged: list[Staged] = []
        reach: dict[str, tuple[Control, ...]] = {}  # per address (of a source with no prefix): what a pattern reaches
        read = now = time.monotonic()
        for number, (data, source) in enumerate(batch):
            if arrivals is not None:
                now = arrivals[number] or read
            peer = source.ident
            if not self.allowed(source.host):
                if self.monitor.watching:
                    self.monitor.saw(_transport(peer), "in", peer, f"(refused: not in [osc] allow, {len(data)} bytes)")
                self.refused += 1
                self._warn.warning(("refused", source.host), "OSC from %s: source not in [osc] allow; dropped", peer)
                continue
            try:
                found = decode(data)
            except MalformedPacket as err:
                if self.monitor.watching:
                    self.monitor.saw(_transport(peer), "in", peer, f"(malformed, {len(data)} bytes: {err})")
                self.drop(("malformed", source.host), "OSC from %s: malformed packet dropped (%s)", peer, err)
                continue
            for message in found:
                address = message.address
                echo = source.own or (
                    address != SYNC_ADDRESS
                    and address not in self.commands
                    and self.echoes.back(source.host, message.dgram, now, address)
                )
                if self.monitor.watching:
                    if echo:  # said, so that an operator sees why it did nothing
                        self.monitor.saw(_transport(peer), "in", peer, f"{address} {ECHOED}", arguments(message))
                    else:
                        self._seen(message, peer)
                if echo:
                    self.echoed += 1  # what the bridge sent that peer a moment ago, straight back
                elif address == SYNC_ADDRESS:
                    self._apply(self._expand(staged, pending))  # the sync reports what came before it
                    self._sync(arguments(message), source)
                elif address in self.commands:
                    self._apply(self._expand(staged, pending))  # e.g. a scene saved after the values before it
                    self._command(message, peer)
                else:
                    prefix = source.prefix
                    reaches = reach.get(address) if not prefix else None
                    if reaches is None:
                        reaches = self._reaches(address, prefix)
                        if not prefix:
                            reach[address] = reaches
                    if reaches:
                        staged.append((message, peer, prefix, next(self._presses), reaches))
                    else:  # one address, or a pattern that reaches no control: as it comes
                        if staged:
                            self._expand(staged, pending)
                        self._collect(message, peer, pending.put, prefix)
        self._apply(self._expand(staged, pending))

    def _reaches(self, address: str, prefix: str) -> tuple[Control, ...]:
        """The controls pattern ``address`` reaches (none for an address that is no pattern, or one
        that cannot be read: said as it comes)."""
        if not is_pattern(address):
            return ()
        try:
            return tuple(controls_at(_unprefixed(address, prefix), self.by_address))
        except MalformedPacket:
            return ()

    def _expand(self, staged: list[Staged], pending: Latest[Pending, Filed]) -> Latest[Pending, Filed]:
        """The staged messages into ``pending``, as if applied in order: each control gets the value of
        the last message with one for it, every press of a button counts, in the order they came."""
        if not staged:
            return pending
        batch = list(staged)
        staged.clear()
        if self.looks is not None and (self.label_from or self.color_from):
            for message, _peer, prefix, _press, _reached in batch:  # (names and colours in order: the last stays)
                self._look(_unprefixed(message.address, prefix), arguments(message))
        got: dict[Pending, tuple[int, Filed]] = {}
        done: set[str] = set()  # patterns whose every control a later message set (and no button)
        work = 0
        for position in range(len(batch) - 1, -1, -1):
            message, peer, prefix, press, reached = batch[position]
            address = _unprefixed(message.address, prefix)
            if address in done:
                continue
            left = [c for c in reached if c.type == "button" or c.id not in got]
            if not left:
                done.add(address)
                continue

            def file(key: Pending, filed: Filed, position: int = position) -> None:
                got[key] = (position, filed)

            whole = len(left) == len(reached)
            work += len(left) + self._collect(message, peer, file, prefix, press, only=left, whole=whole, look=False)
            if work >= YIELD_PAIRS:
                time.sleep(0)  # gevent: a turn for the pages and the rest; threads: the GIL handed on
                work = 0
        for key, (_position, filed) in sorted(got.items(), key=lambda item: item[1][0]):
            pending.put(key, filed)
        return pending

    def _seen(self, message: OscMessage, peer: str) -> None:
        """Tell the monitor of a message in, with the controls at its address."""
        touched = ", ".join(c.id for c in controls_at(message.address, self.by_address))
        self.monitor.saw(_transport(peer), "in", peer, message.address, arguments(message), touched)

    def _collect(
        self,
        message: OscMessage,
        peer: str,
        file: Callable[[Pending, Filed], object],
        prefix: str = "",
        press: int | None = None,
        only: list[Control] | None = None,
        whole: bool = True,
        look: bool = True,
    ) -> int:
        """File the values ``message`` sets (for the controls in ``only``, when given: ``whole`` when they are
        all it reaches); how many it reached.

        ``press`` numbers its presses of buttons (staged messages: numbered as they came); ``look``
        false, its names and colours were applied already.
        """
        address = message.address
        if prefix:
            address = _unprefixed(address, prefix)  # a desk under a prefix answers in its own namespace
        args = arguments(message)
        try:
            looked = look and self._look(address, args)
            found, problems = values_for(address, args, self.by_address, only, whole)
        except MalformedPacket as err:
            self.drop((address, "pattern"), "OSC %s from %s: %s", address, peer, err)
            return 0
        if looked and not found:
            return 0  # a name or colour from the desk, and no value here
        for reason in problems:
            self.drop_once((address, reason), "OSC %s from %s: %s; dropped", address, peer, reason)
        origin = Origin("osc", peer)
        for control, raw in found:
            try:
                normalize(control, raw)
            except InvalidValue as err:
                self.drop_once((address, err.reason), "OSC %s from %s: %s; dropped", address, peer, err.reason)
                continue
            # The latest per control, in order; every press and release of a button.
            if control.type == "button":
                key: Pending = (control.id, next(self._presses) if press is None else press)
            else:
                key = control.id
            file(key, (raw, origin, address))
        return len(found)

    def told(self, control: Control, value: object) -> None:
        """``value`` of a :attr:`naming` control goes out to the desk: the name or colour it now has
        there is shown (a desk that does not report to the sender would never say it, and the echo
        of one that does is dropped)."""
        self._look(control.osc, [value])

    def _look(self, address: str, args: list[object]) -> bool:
        """Apply a label or colour the desk sent; True when ``address`` is one (never mirrored out)."""
        if self.looks is None or not args:
            return False
        arg = args[0]
        labelled = controls_at(address, self.label_from)
        for control in labelled:
            label = arg if isinstance(arg, str) else plain_text(arg)
            # (A desk's channel with no name, an X32's "": the control's own label, not a blank one.)
            self.looks.set(control.id, label=label if label.strip() else "")
        coloured = controls_at(address, self.color_from)
        for control in coloured:
            assert control.color_from is not None  # noqa: S101 - the table holds only these
            color = control.color_from.color(arg)
            if color is not None:
                self.looks.set(control.id, color=color or control.color)  # (mapped to "": the control's own)
        return bool(labelled or coloured)

    def _apply(self, pending: Latest[Pending, tuple[object, Origin, str]]) -> None:
        for key, (raw, origin, address) in pending.take().items():
            cid = key if isinstance(key, str) else key[0]
            try:
                self.hub.set(cid, raw, origin)
            except (InvalidValue, UnknownControl) as err:
                self.drop((address, str(err)), "OSC %s from %s: %s; dropped", address, origin.ident, err)

    def _command(self, message: OscMessage, peer: str) -> None:
        try:
            self.commands[message.address](arguments(message), peer)
        except BridgeError as err:
            self.drop((message.address, str(err)), "OSC %s from %s: %s; dropped", message.address, peer, err)

    def drop(self, key: object, msg: str, *args: object) -> None:
        """Count and log (rate-limited) something dropped."""
        self.dropped += 1
        self._warn.warning(key, msg, *args)

    def drop_once(self, key: object, msg: str, *args: object) -> None:
        """Count something dropped; log it the first time only (``key``: its address and why)."""
        self.dropped += 1
        self._once.warning(key, msg + " (said once for this address)", *args)


def _unprefixed(address: str, prefix: str) -> str:
    return address[len(prefix) :] if prefix and address.startswith(prefix + "/") else address


def _transport(peer: str) -> str:
    """How a peer's packets came: TCP peers' idents start with "tcp:" (bridge.osc.tcp)."""
    return "osc/tcp" if peer.startswith("tcp:") else "osc/udp"
