"""MIDI as a hub adapter: controllers in; synths, motorized faders and LEDs out.

Messages are mido's; the translation is :mod:`bridge.midi.codec`'s, the
ports :mod:`bridge.midi.ports`' and the bindings :mod:`bridge.midi.bindings`'.

Threads, and why:

* **Reader.** Woken by the input when messages arrive (see
  :mod:`bridge.midi.system`), it decodes them and sets the hub; under
  gevent the change reaches the browsers' sockets from this same greenlet.
  A message that is the echo of one just sent (an output patched back to
  the input) is dropped first (:mod:`bridge.echoes`).
* **send()** runs on whichever thread made the change, under the hub's
  dispatch lock. It writes to the open output or holds the message back
  for the budget; it never waits for a device.
* **Drain.** It sends what the budget held back, the latest value per
  control, as tokens come in.
* **Watcher.** Every second it looks for the ports: it opens a configured
  device that appeared, closes one that vanished, and when the output comes
  back sends it every current value, so motorized faders and LEDs match at
  once (and once more at the next look, see :meth:`MidiAdapter._put_output`).
  When the MIDI system itself went away (the JACK server stopped), it
  closes it whole, marks both ports missing, and looks for a server every
  second; once one is back, the ports are made or found again as at start.
  A JACK server named in the backend but not started yet is looked for the
  same way from the start.

Locks, in the order they may be taken: the hub's dispatch lock, then
``_out_lock`` (the output, what was last sent, what is held back and the
budget). ``_in_lock`` (the input, between the reader and the watcher) is
taken alone.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido

from bridge.config import MidiConfig
from bridge.echoes import Echoes
from bridge.errors import InvalidValue, MidiPortError, UnknownControl
from bridge.flow import Latest, TokenBucket, Workers
from bridge.hub import Hub, Reshaped
from bridge.logs import LogLimiter
from bridge.midi.bindings import Bindings
from bridge.midi.codec import MOST_MESSAGES, about, encode, has_midi_form, outgoing, same_number
from bridge.midi.jack import NoJackServer, server_name
from bridge.midi.ports import Ports
from bridge.midi.system import Inlet, Outlet
from bridge.model import Change, Control, Origin, Value
from bridge.monitor import IDLE

log = logging.getLogger(__name__)

#: The one peer of the MIDI echoes: the device behind the output and the input.
ECHO_PEER = "midi"
#: Seconds between two looks for missing or vanished ports.
POLL_INTERVAL = 1.0
#: The longest an idle reader waits before it looks again (learn timeouts, stop()).
IDLE_WAIT = 0.05

#: A change held back by the budget: its control, the MIDI number (None for a trigger's
#: press, which is an event and never "shown already"), the messages carrying it, and
#: whether it came from MIDI (its echo is then told apart as bridge.echoes says).
Held = tuple[str, "int | None", tuple[mido.Message, ...], bool]


class MidiAdapter:
    """MIDI input and output ports as a hub source and sink.

    ``push(event, payload)`` sends a status event to every browser (and to
    later ones when they connect): ``midi status`` on every change of a
    port's state, and the bindings' events. ``notify(event, payload)`` tells
    the browsers connected now. ``bindings_file`` holds the learned
    bindings; without one, learned bindings last until a restart.
    """

    name = "midi"
    monitor = IDLE  # the bridge's (bridge.monitor): one check per message while no drawer is open

    def __init__(
        self,
        hub: Hub,
        config: MidiConfig,
        push: Callable[[str, Any], None],
        poll_interval: float = POLL_INTERVAL,
        bindings_file: Path | None = None,
        notify: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.push = push
        self.poll_interval = poll_interval
        self.bindings = Bindings(hub, push, notify or push, self._forget, bindings_file)
        self.ports = Ports(config, self._install_input, self._install_output)
        self._warn = LogLimiter(log)
        self._in_lock = threading.Lock()
        self._inlet: Inlet | None = None
        self._has_input = threading.Event()
        self._out_lock = threading.Lock()
        self._outlet: Outlet | None = None
        self._last_sent: dict[str, int] = {}
        # Output budget: a tenth of a second's worth in a burst (at least one change's messages, or that change
        # never went, nor anything after it); beyond it the changes wait, the latest per control, in order.
        self._budget = TokenBucket(config.budget, max(MOST_MESSAGES, config.budget // 10))
        self._held_out: Latest[str, Held] = Latest()
        self._presses = itertools.count()  # a trigger's presses held back each have a key of their own
        self._out_waiting = threading.Event()
        self.held_out = 0
        #: What was sent lately: an output patched back to the input must not play it again.
        self.echoes = Echoes()
        self._workers = Workers()
        self._resend_due = False
        #: True while the MIDI system is gone (the JACK server stopped) and looked for.
        self._lost = False
        #: Messages read and written (the activity lights).
        self.received = 0
        self.sent = 0

    # -- adapter surface -----------------------------------------------------------
    def start(self) -> None:
        """Load the learned bindings, open the ports (or note them missing) and start the threads. Never raises."""
        self.bindings.load()
        try:
            self._start()
        except Exception:  # a MIDI fault of any kind must not stop the bridge
            log.exception("MIDI failed to start; MIDI is off, everything else runs")
            self.ports.close_all()
            self._set_states("off")

    def stop(self) -> None:
        """Stop the threads, then close the ports."""
        self._workers.stop(timeout=5, wake=(self._has_input.set, self._out_waiting.set))
        self.ports.close_all()
        self.ports.set_states("off")
        self.bindings.close()

    def describe(self) -> dict[str, Any]:
        """The MIDI part of ``/healthz``."""
        return {
            "backend": self.config.backend,
            "virtual": self.config.virtual,
            "scans": self.ports.scans,
            "budget": self.config.budget,
            "held_out": self.held_out,
            "received": self.received,
            "sent": self.sent,
            "echoes": self.echoes.recognised,
            **self.ports.status(),
        }

    @property
    def on(self) -> bool:
        """False when there is no MIDI system here (MIDI is off)."""
        return self.ports.status()["input"]["state"] != "off"

    def send(self, change: Change) -> None:
        """Send ``change`` unless it came from MIDI (feedback aside) or the device shows it already."""
        control = self.bindings.controls.get(change.control.id, change.control)  # with its binding of now
        binding = control.midi
        if binding is None or not has_midi_form(control, change.value):
            return
        if change.origin.kind != "midi":
            # Set elsewhere: a pickup fader must reach the new value before it moves it.
            self.bindings.push_ghost(self.bindings.takeover.moved_elsewhere(control.id, change.value, control))
        number, messages = outgoing(control, change.value)
        with self._out_lock:
            if change.origin.kind == "midi" and not binding.feedback:
                # The controller is there already: a later change to this same
                # number from elsewhere must not be skipped as "already sent".
                if number is not None:
                    self._last_sent[control.id] = number
                return
            outlet = self._outlet
            if outlet is None:
                return  # missing: every value is sent when it comes back
            held = self._held_out
            if number is None:
                key = f"{control.id}\n{next(self._presses)}"  # presses held are kept each, in order
            else:
                key = control.id
                held.pop(key)  # a newer value replaces one still waiting
                if change.origin.kind == "test":
                    self._last_sent.pop(control.id, None)  # the editor's "send test": out even if shown already
                if self._last_sent.get(control.id) == number:
                    return  # the device shows it already
            if held or not self._budget.take(len(messages)):
                # Over the budget: the latest value per control (and every press) waits its turn.
                self._wait_turn(key, (control.id, number, messages, change.origin.kind == "midi"))
                return
            if self._send(outlet, messages, control.id, change.origin.kind == "midi") and number is not None:
                self._last_sent[control.id] = number

    def _wait_turn(self, key: str, held: Held) -> None:  # over the budget (under the output lock)
        self._held_out.put(key, held)
        self.held_out += 1
        self._out_waiting.set()

    def _drain_held(self) -> None:
        """Send held changes as the budget allows; the final value of each control always goes."""
        while not self._workers.stopping.is_set():
            self._out_waiting.wait()
            if self._workers.stopping.is_set():
                return
            with self._out_lock:
                outlet = self._outlet
                while self._held_out and outlet is not None:
                    key, (cid, number, messages, reflected) = self._held_out.first()
                    if number is not None and self._last_sent.get(cid) == number:
                        self._held_out.pop(key)
                        continue
                    if not self._budget.take(len(messages)):
                        break
                    self._held_out.pop(key)
                    if self._send(outlet, messages, cid, reflected) and number is not None:
                        self._last_sent[cid] = number
                if outlet is None:
                    self._held_out.clear()  # every value is sent when the device comes back
                if not self._held_out:
                    self._out_waiting.clear()
                waiting = bool(self._held_out)
            self._workers.wait(1.0 / max(1, self.config.budget) if waiting else 0)

    def reshape(self, reshaped: Reshaped) -> None:
        """The controls changed (a reload, with this same [midi] table): their bindings, and the device told."""
        fresh = [*reshaped.added, *reshaped.redefined]
        self.bindings.reshape(reshaped.redefined)
        self._forget(fresh)
        self._resend(self.hub.values(), only=set(fresh))  # the others are on the device already

    def _forget(self, cids: list[str]) -> None:
        """These controls start afresh on the output (a new binding): nothing counts as sent or waiting."""
        with self._out_lock:
            for cid in cids:
                self._last_sent.pop(cid, None)
                self._held_out.pop(cid)

    # -- start and stop --------------------------------------------------------------
    def _start(self) -> None:
        found: tuple[list[str], list[str]] | None = None
        try:
            found = self.ports.open_system()
        except NoJackServer:
            # JACK is named but not started yet: looked for as after a restart.
            log.warning(
                "MIDI: no JACK server %r yet; MIDI ports are missing, looking for it every second; "
                "everything else runs",
                server_name(),
            )
            self._lost = True
            self._set_states("missing")
        except MidiPortError as err:
            log.warning(
                "MIDI is off: backend %r is not available here (%s); everything else runs. "
                "Start the MIDI system and restart the bridge.",
                self.config.backend,
                err,
            )
            self._set_states("off")
            return
        self._workers.start((self._read, "midi-in"), (self._drain_held, "midi-out"))
        if found is not None:
            self.ports.scan(*found)
            self._publish()
        self._workers.spawn(self._watch, "midi-ports")

    def _set_states(self, state: Any) -> None:
        self.ports.set_states(state)
        self._publish()

    def _publish(self) -> None:
        self.push("midi status", self.ports.status())

    def _watch(self) -> None:
        while not self._workers.wait(self.poll_interval):
            if self._lost:
                self._reconnect()
                continue
            if self.ports.system is None:
                return
            if self.ports.system_lost:
                self._lose()
                continue
            resend, self._resend_due = self._resend_due, False  # before the look: a device it finds waits a look
            try:
                changed = self.ports.look()
            except MidiPortError as err:
                self._warn.warning("list", "MIDI: cannot list ports (%s); trying again", err)
                self._resend_due |= resend
                continue
            if changed:
                self._publish()
            if resend:
                self.hub.with_values(self._resend)

    def _lose(self) -> None:
        """The JACK server went away: close everything of it; both ports missing until one is back."""
        system = self.ports.system
        log.warning(
            "MIDI: the %s went away; MIDI ports are missing, looking for it every second",
            system.server if system is not None else "MIDI system",
        )
        self._lost = True
        self.ports.drop_system()
        self._publish()
        # Closing took a while (libjack's timeouts): a server restarted meanwhile is taken at once.
        self._reconnect()

    def _reconnect(self) -> None:
        """Open the MIDI system again if a JACK server is back (quietly, once a second, until then)."""
        try:
            inputs, outputs = self.ports.open_system()
        except MidiPortError:
            return
        self._lost = False
        log.warning(
            "MIDI: the %s is %s; opening the ports",
            self.ports.system.server if self.ports.system else "MIDI system",
            "back" if self.ports.scans else "there",
        )
        # As at start: virtual ports made again, named ones found and sent every value.
        self.ports.scan(inputs, outputs)
        self._publish()

    # -- the ports in use ------------------------------------------------------------
    def _install_input(self, inlet: Inlet | None) -> None:
        with self._in_lock:
            self._inlet = inlet
            if inlet is not None:
                self._has_input.set()

    def _install_output(self, outlet: Outlet | None) -> None:
        if outlet is None or self.config.virtual:
            with self._out_lock:  # out of use; or a virtual port, where nobody listens yet: nothing to send
                self._outlet = outlet
                self._last_sent.clear()
            return
        # Under the hub's dispatch order: no change slips between the
        # values sent here and the next send(), so the device ends on the newest.
        self.hub.with_values(lambda values: self._put_output(outlet, values))

    def _put_output(self, outlet: Outlet, values: dict[str, Value]) -> None:
        with self._out_lock:
            self._outlet = outlet
            self._last_sent.clear()
            self._send_all(outlet, values)
        # A JACK connection takes effect a cycle or more after it is made, and
        # what is written before is dropped: send everything once more at the
        # next look. The same values again are harmless to any device.
        self._resend_due = True

    def _resend(self, values: dict[str, Value], only: set[str] | None = None) -> None:
        with self._out_lock:
            if self._outlet is not None:
                self._send_all(self._outlet, values, only)

    def _send_all(self, outlet: Outlet, values: dict[str, Value], only: set[str] | None = None) -> None:
        """Send every bound control's value (or those ``only`` names) within the output budget, as
        values of the bridge's own (an echo known at once); the caller holds the output lock."""
        held = self._held_out
        for control in self.bindings.controls.values():
            if only is not None and control.id not in only:
                continue
            if control.midi is None or control.trigger or not has_midi_form(control, values[control.id]):
                continue
            number, messages = encode(control, values[control.id])
            self._last_sent.pop(control.id, None)  # sent again, whatever was sent before
            held.pop(control.id)
            if held or not self._budget.take(len(messages)):
                self._wait_turn(control.id, (control.id, number, messages, False))
                continue
            if not self._send(outlet, messages, control.id, reflected=False):
                return
            self._last_sent[control.id] = number

    def _send(self, outlet: Outlet, messages: tuple[mido.Message, ...], cid: str = "", reflected: bool = True) -> bool:
        """Write ``messages``; ``reflected`` unless they carry a change from elsewhere than MIDI (an
        echo of those is known at once; see bridge.echoes), which only :meth:`send` can tell."""
        now = time.monotonic()
        for message in messages:  # before the write: a patch may bring it back before the write returns
            self.echoes.sent(ECHO_PEER, tuple(message.bytes()), now, reflected)
        try:
            outlet.send(messages)
        except MidiPortError as err:
            self._warn.warning(("send", outlet.name), "MIDI output: %s", err)
            return False
        self.sent += len(messages)
        if self.monitor.watching:
            for message in messages:
                self.monitor.saw("midi", "out", outlet.name, message, None, cid)
        return True

    # -- MIDI in -------------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            self._has_input.wait()
            if self._workers.stopping.is_set():
                return
            with self._in_lock:
                inlet = self._inlet
                if inlet is None:
                    # Cleared under the lock that installs an input: no wake-up is lost.
                    self._has_input.clear()
                    continue
                try:
                    messages = inlet.pending()
                except MidiPortError as err:
                    self._warn.warning(("read", inlet.name), "MIDI input: %s", err)
                    messages = []
            if not messages:
                self.bindings.poll()
                try:
                    inlet.wait(IDLE_WAIT)  # woken as soon as a message arrives
                except (OSError, ValueError):
                    pass  # closed by the watcher meanwhile: the next look sees it
                continue
            try:
                self._apply(inlet.name, messages)
            except Exception:  # the reader must outlive any one bad message
                log.exception("MIDI in: failed to apply %d messages from %r", len(messages), inlet.name)

    def _apply(self, port_name: str, messages: list[mido.Message]) -> None:
        self.received += len(messages)
        messages, echoes = self.echoes.split(ECHO_PEER, messages, lambda m: tuple(m.bytes()), time.monotonic(), about)
        bindings = self.bindings
        if self.monitor.watching:
            bindings.tell(self.monitor, port_name, messages, echoes)
        messages = bindings.feed(messages)
        origin = Origin("midi", port_name)
        for control, value in bindings.decoder.decode(messages, self._current):
            current = self._current(control) if control.fader else None
            if isinstance(value, int | float) and isinstance(current, int | float):
                take, ghost = bindings.takeover.hardware(control, value, current)
                bindings.push_ghost(ghost)
                if not take or same_number(control, value, current):
                    continue  # not picked up yet (the sound stays), or the number the value is (a report back)
            try:
                self.hub.set(control.id, value, origin)
            except (UnknownControl, InvalidValue) as err:
                self._warn.warning(("in", control.id), "MIDI in from %r rejected: %s", port_name, err)

    def _current(self, control: Control) -> Value:
        return self.hub.get(control.id)
