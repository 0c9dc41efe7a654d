"""Which MIDI message each control listens to, while the bridge runs: the config's, learned, or none.

The config's ``midi`` tables are overridden, control by control, by the
bindings learned from the page (:mod:`bridge.midi.learn`), saved beside the
config. The tables the reader and the output use (each control with its
binding of now, and the decoder of incoming messages) are rebuilt and
swapped whole, so they always use one consistent set. Faders that pick a
value up instead of jumping to it are :mod:`bridge.midi.takeover`'s
business: this class holds their state and pushes their ghosts.

Locks: ``_bind_lock`` (one binding change at a time) is taken before
``_table_lock``; ``_ghost_lock`` is taken alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import mido

from bridge.echoes import ECHOED
from bridge.errors import LearnRefused
from bridge.hub import Hub
from bridge.midi.codec import Decoder, slot_of
from bridge.midi.learn import BindingStore, Learned, Learner, describe, effective, label, overlaps, to_table
from bridge.midi.takeover import Ghost, SoftTakeover
from bridge.midi.takeover import mode as takeover_mode
from bridge.model import Control, MidiBinding
from bridge.monitor import Monitor

log = logging.getLogger(__name__)


class Bindings:
    """The bindings in force, MIDI learn, and the soft-takeover state of every fader.

    ``push(event, payload)`` sends a status event to every browser (and to
    later ones when they connect): ``midi bindings``, ``midi learning`` and
    ``midi ghost``. ``notify(event, payload)`` tells the browsers connected
    now (``midi learned``). ``forget(ids)`` tells the output that these
    controls start afresh (nothing counts as sent for them).
    """

    def __init__(
        self,
        hub: Hub,
        push: Callable[[str, Any], None],
        notify: Callable[[str, Any], None],
        forget: Callable[[list[str]], None],
        store_path: Path | None = None,
    ) -> None:
        self.hub = hub
        self.push = push
        self.notify = notify
        self._forget = forget
        self._store = BindingStore(store_path) if store_path is not None else None
        self._overrides: dict[str, MidiBinding | None] = {}
        self._bind_lock = threading.Lock()
        self._table_lock = threading.Lock()
        self.takeover = SoftTakeover()
        self._ghost_lock = threading.Lock()
        self.learner = Learner()
        #: Every control with its binding of now.
        self.controls: dict[str, Control] = {}
        self.decoder = Decoder(())
        self._install({cid: c.midi for cid, c in hub.controls.items()})

    def load(self) -> None:
        """Read the learned bindings and put them in force."""
        if self._store is not None:
            self._overrides = self._store.load(self.hub.controls)
            if self._overrides:
                log.info("MIDI: %d bindings from %s override the config's", len(self._overrides), self._store.path)
        where = str(self._store.path) if self._store is not None else "config"
        self._install(effective(self.hub.controls.values(), self._overrides, where))
        self._publish()
        self.push("midi learning", {"who": None})

    def reshape(self, redefined: Iterable[str]) -> None:
        """New controls (a config reload): the learned bindings as read at start and learned since, fitted to them.

        The file is not read again (a write the disk refused is still pending
        in memory). Learning goes on unless its control went or changed.
        """
        if self._store is not None:
            self._overrides = self._store.overrides(self.hub.controls)
        where = str(self._store.path) if self._store is not None else "config"
        self._install(effective(self.hub.controls.values(), self._overrides, where))
        self._publish()
        target = self.learner.target
        if target is not None and (target not in self.hub.controls or target in redefined):
            self.cancel_learn()

    def rename(self, old: str, new: str) -> None:
        """A control renamed (the editor, once the new config is in force): what was learned for it
        goes with it (a controller's fader kept moving nothing after a rename)."""
        if self._store is not None and self._store.rename(old, new):
            log.info("MIDI: %s's learned binding goes with it, as %s", old, new)
            self.reshape(())

    def close(self) -> None:
        """Stop retrying a bindings file the disk refused (after one last try)."""
        if self._store is not None:
            self._store.close()

    def _install(self, bindings: dict[str, MidiBinding | None]) -> None:
        """Swap in the tables for ``bindings`` (every control id -> its binding or None)."""
        controls = {cid: replace(c, midi=bindings.get(cid)) for cid, c in self.hub.controls.items()}
        decoder = Decoder(controls.values())
        with self._table_lock:
            self.controls = controls
            self.decoder = decoder
        for ghost in self.takeover.configure({cid: takeover_mode(c, c.midi) for cid, c in controls.items()}):
            self.push_ghost(ghost)

    # -- what pages see ------------------------------------------------------------
    def described(self) -> dict[str, dict[str, Any] | None]:
        """Every control that can have a binding, with it (or None): what pages and the API show."""
        controls = self.controls
        return {
            cid: describe(c.midi, c.type, cid in self._overrides) for cid, c in controls.items() if c.type != "text"
        }

    def takeover_modes(self) -> dict[str, str]:
        """How each bound range meets values set elsewhere: "jump" or "pickup"."""
        return {cid: self.takeover.mode(cid) for cid, c in self.controls.items() if c.fader}

    def _publish(self) -> None:
        self.push("midi bindings", {"bindings": self.described(), "takeover": self.takeover_modes()})

    def tell(self, monitor: Monitor, port: str, messages: list[mido.Message], echoes: list[mido.Message]) -> None:
        """Tell ``monitor`` of messages in, each with the control its slot belongs to, and of the echoes
        dropped (so that an operator sees why they did nothing)."""
        for message in messages:
            slot = slot_of(message)
            listener = self.decoder.table.get(slot) if slot is not None else None
            monitor.saw("midi", "in", port, message, None, listener.control.id if listener else "")
        for echo in echoes:
            monitor.saw("midi", "in", port, f"{echo} {ECHOED}")

    def push_ghost(self, ghost: Ghost | None) -> None:
        """Tell every page where a waiting fader's hardware is (data None: picked up)."""
        if ghost is None:
            return
        with self._ghost_lock:  # pushed in the order decided: the last map is the newest
            cid, value = ghost
            self.push("midi ghost", {"who": cid, "data": value, "ghosts": self.takeover.ghosts()})

    # -- learn ---------------------------------------------------------------------
    def learn(self, cid: object, midi_on: bool) -> Control:
        """Wait for the next knob, fader or pad moved, and bind it to ``cid``.

        Raises :class:`UnknownControl`, or :class:`LearnRefused` saying why
        (a text control, MIDI off).
        """
        control = self.hub.control(cid)
        if control.type == "text":
            raise LearnRefused(f"{control.label} is a text control: text has no MIDI form")
        if not midi_on:
            raise LearnRefused("MIDI is off: no MIDI system for this backend here (see the log); nothing to learn from")
        self.learner.start(control)
        log.info("MIDI learn: move a knob, fader or pad for %s", control.id)
        self.push("midi learning", {"who": control.id})
        return control

    def cancel_learn(self) -> str | None:
        """Stop waiting; returns the control that was waiting, if any."""
        cid = self.learner.cancel()
        if cid is not None:
            log.info("MIDI learn for %s cancelled", cid)
            self.push("midi learning", {"who": None})
        return cid

    def feed(self, messages: list[mido.Message]) -> list[mido.Message]:
        """Let a learn in progress take what it binds; the messages left for the controls."""
        if self.learner.target is None:
            return messages
        learned, rest = self.learner.feed(messages, time.monotonic())
        if learned is not None:
            self._learned(learned)  # the rest of the batch already uses the new binding
        return rest

    def poll(self) -> None:
        """A lone CC whose 14-bit partner never came: bound as 7-bit once the window passed."""
        if self.learner.target is None:
            return
        learned = self.learner.poll(time.monotonic())
        if learned is not None:
            self._learned(learned)

    def _learned(self, learned: Learned) -> None:
        self.push("midi learning", {"who": None})
        try:
            self.bind(learned.control_id, learned.binding)
        except Exception:  # the reader must go on whatever befell the binding
            log.exception("MIDI learn: could not bind %s", learned.control_id)

    # -- bind and unbind -------------------------------------------------------------
    def bind(self, cid: str, binding: MidiBinding) -> list[str]:
        """Bind ``cid`` to ``binding`` now, and save it; returns the controls it was moved from."""
        control = self.hub.control(cid)
        with self._bind_lock:
            current = {c: ctl.midi for c, ctl in self.controls.items()}
            moved = [o for o, m in current.items() if o != cid and m is not None and overlaps(m, binding)]
            current[cid] = binding
            self._overrides[cid] = binding
            changes: dict[str, dict[str, Any] | None] = {cid: to_table(binding, control.type)}
            removals = []
            for other in moved:
                current[other] = None
                if self.hub.controls[other].midi is None:
                    self._overrides.pop(other, None)  # learned only: back to the config's "none"
                    removals.append(other)
                else:
                    self._overrides[other] = None  # the config's binding stays off
                    changes[other] = None
            problem = self._save(changes, removals)
            self._rebind(current, [cid, *moved])
        names = ", ".join(self.hub.controls[o].label for o in moved)
        message = f"{control.label}: {label(binding)}" + (f", moved from {names}" if moved else "") + problem
        log.info(
            "MIDI learn: %s bound to %s%s%s",
            cid,
            label(binding),
            f" (moved from {', '.join(moved)})" if moved else "",
            problem,
        )
        described = describe(binding, control.type, True)
        self.notify("midi learned", {"who": cid, "binding": described, "moved_from": moved, "message": message})
        return moved

    def unbind(self, cid: object) -> bool:
        """Remove ``cid``'s binding (learned or from the config); False when it had none."""
        control = self.hub.control(cid)
        with self._bind_lock:
            if self.controls[control.id].midi is None:
                return False
            current = {c: ctl.midi for c, ctl in self.controls.items()}
            current[control.id] = None
            if control.midi is None:
                self._overrides.pop(control.id, None)
                problem = self._save({}, [control.id])
            else:
                self._overrides[control.id] = None
                problem = self._save({control.id: None}, [])
            self._rebind(current, [control.id])
        log.info("MIDI: %s unbound%s", control.id, problem)
        message = f"{control.label}: no MIDI binding{problem}"
        self.notify("midi learned", {"who": control.id, "binding": None, "moved_from": [], "message": message})
        return True

    def _save(self, changes: dict[str, dict[str, Any] | None], removals: list[str]) -> str:
        """Write the learned bindings; returns "" or what went wrong, for the message."""
        if self._store is None:
            return " (not saved: no bindings file)"
        if not self._store.update(changes, removals):
            return " (not saved yet: the disk refused; saved as soon as it takes it)"
        return ""

    def _rebind(self, bindings: dict[str, MidiBinding | None], changed: list[str]) -> None:
        """Install ``bindings``; the ``changed`` controls start afresh on the output and for takeover."""
        self._install(bindings)
        self._forget(changed)
        for cid in changed:
            self.push_ghost(self.takeover.reset(cid))
        self._publish()
