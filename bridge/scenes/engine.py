"""Scenes recalled: switched at once or moved over a fade, through the hub.

Recalling a scene switches toggles, buttons, selects and text at once and
moves every range, knob and meter in a straight line to its saved value over ``fade`` seconds, one step
every :data:`STEP_INTERVAL` through the hub, so browsers, OSC and MIDI all
follow the fade. The last step lands exactly on the saved value.

The fade engine is an adapter too: it sees every change, and a change to a
fading control from anywhere else (a finger on a fader, a desk) takes that
control out of the fade, so the performer always wins. The scenes
themselves are :mod:`bridge.scenes.store`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, InvalidValue, SceneError
from bridge.flow import Workers
from bridge.model import Change, Origin, Value
from bridge.scenes.store import Scene, SceneStore, check_fade, parse_export
from bridge.validation import normalize

if TYPE_CHECKING:
    from bridge.hub import Hub, Reshaped

log = logging.getLogger(__name__)

#: One fade step every 10 ms: 100 steps a second, twice what the eye needs.
STEP_INTERVAL = 0.01
SAVE_ADDRESS = "/bridge/scene/save"
RECALL_ADDRESS = "/bridge/scene/recall"
#: The origin of a value put back after a fade step overwrote a newer change.
RESTORE_ORIGIN = Origin("scene", "")
#: A value that comes back this soon (seconds) equal to one a fade step sent out, within the
#: rounding of an OSC float32, is that step's echo (a desk or app that confirms what it is sent),
#: not a hand on the control: it does not take the control out of the fade.
ECHO_WINDOW = 0.5
ECHO_TOLERANCE = 1e-6
#: The steps kept per control for that: half a second of them at 100 a second.
ECHO_STEPS = 64
#: Where a fade's own step can come back from (a desk, a controller): from a page or a script, a
#: value equal to a recent step is a hand on the control, not an echo.
ECHOING = frozenset({"osc", "oscquery", "midi", "cluster"})


@dataclass(frozen=True)
class Recall:
    """What a recall did: the controls it set or fades, and those it had to skip."""

    name: str
    fade: float
    recalled: tuple[str, ...]
    skipped: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"scene": self.name, "fade": self.fade, "recalled": list(self.recalled), "skipped": list(self.skipped)}


@dataclass
class _Fade:
    origin: Origin
    started: float
    duration: float
    moves: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (from, to)
    #: id -> the values its steps stored lately, with when (``time.monotonic``): to know their echoes.
    sent: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def echoes(self, cid: str, value: object, now: float) -> bool:
        """Whether ``value`` for ``cid`` is one of this fade's own steps coming back."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        sent = self.sent.get(cid, ())
        return any(
            now - at <= ECHO_WINDOW and abs(value - step) <= ECHO_TOLERANCE * max(1.0, abs(step)) for at, step in sent
        )


class Scenes:
    """The scenes of a show and the fade engine (an adapter of the hub).

    Locks: ``_run_lock`` (one writer of scene values at a time: a recall
    waits for the fade step under way, so no step of an old fade lands
    after it) is taken before ``_fade_lock`` (the fade and what interrupted it).
    """

    name = "scenes"

    def __init__(
        self,
        hub: Hub,
        path: Path | None,
        push: Callable[[str, Any], None] | None = None,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.hub = hub
        self.store = SceneStore(path, on_change)
        self._push = push
        self._last: Recall | None = None
        self._run_lock = threading.Lock()
        self._fade_lock = threading.Lock()
        self._fade: _Fade | None = None
        self._interrupted: dict[str, Value] = {}  # id -> latest value from elsewhere during this fade
        self._restore: dict[str, Value] = {}  # id -> value a fade step overwrote
        self._wake = threading.Event()
        self._workers = Workers()
        self._recalls = 0

    @property
    def path(self) -> Path | None:
        return self.store.path

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        """Load the saved scenes and start the fade thread."""
        self.store.load()
        self._announce()
        self._workers.start((self._run, "scene-fade"))

    def stop(self) -> None:
        self._workers.stop(wake=(self._wake.set,))
        self.store.close()

    def describe(self) -> dict[str, Any]:
        fade = self._fade
        return {
            "file": str(self.path) if self.path else None,
            "error": self.store.error,
            "scenes": len(self.store.names()),
            "recalls": self._recalls,
            "fading": fade.origin.ident if fade else None,
        }

    # -- the scenes ------------------------------------------------------------
    def names(self) -> list[str]:
        return self.store.names()

    def all(self) -> list[Scene]:
        return self.store.all()

    def get(self, name: str) -> Scene:
        return self.store.get(name)

    def save(self, raw_name: object) -> Scene:
        """Save every current value (but those with ``scene = false``) as ``raw_name``."""
        controls = self.hub.controls
        # A trigger is an event, not a state: never in a scene.
        values: dict[str, object] = {
            cid: v for cid, v in self.hub.values().items() if controls[cid].scene and not controls[cid].trigger
        }
        scene = self.store.save(raw_name, values)
        log.info("scene %r saved (%d values)", scene.name, len(values))
        self._announce()
        return scene

    def export(self) -> dict[str, Any]:
        """Every scene, as one JSON document."""
        return self.store.export()

    def import_scenes(self, body: object) -> dict[str, Any]:
        """Take the scenes of an exported file (checked whole; :class:`SceneError` when anything is wrong).

        A scene of the same name is replaced; the others stay. Controls this
        show does not have are kept in the scene (a recall skips them, as it
        does for a control removed from the config) and reported.
        """
        scenes = parse_export(body)
        replaced = self.store.merge(scenes)
        unknown = {
            name: sorted(cid for cid in scene.values if cid not in self.hub.controls) for name, scene in scenes.items()
        }
        unknown = {name: ids for name, ids in unknown.items() if ids}
        log.info("imported %d scenes (%d replaced)", len(scenes), len(replaced))
        self._announce()
        return {"imported": list(scenes), "replaced": replaced, "unknown": unknown}

    def delete(self, name: str) -> None:
        self.store.delete(name)
        log.info("scene %r deleted", name)
        self._announce()

    def take(self, changed: dict[str, Scene | None], quiet: bool = False) -> None:
        """Scenes saved or deleted (None) on another process of the cluster: kept here too, every page told
        (``quiet``: the log is not, of those the same as here already)."""
        known = {name: self.store.find(name) for name in changed}
        changed = {name: scene for name, scene in changed.items() if not quiet or scene != known[name]}
        if changed:
            self.store.take(changed)
            log.info("scenes from another process: %s", ", ".join(sorted(changed)))
            self._announce()

    def summary(self) -> dict[str, Any]:
        """What every page shows: the scene names, the last recall and how many there were (a page says
        "Recalled" when that number moves, not at every change of the list)."""
        last = self._last
        return {"names": self.names(), "recalled": last.as_dict() if last else None, "recalls": self._recalls}

    def _announce(self) -> None:
        if self._push is not None:
            self._push("scenes", self.summary())

    # -- recall ------------------------------------------------------------------
    def recall(self, name: str, fade: object = 0.0) -> Recall:
        """Recall ``name``: switches at once, ranges over ``fade`` seconds.

        A control the scene names that no longer exists, or whose saved value
        no longer fits it (the config changed), is skipped and reported; the
        rest is recalled. A running fade is replaced.
        """
        scene = self.get(name)
        seconds = check_fade(fade)
        controls = self.hub.controls
        targets: dict[str, Value] = {}
        skipped: list[str] = []
        for cid, raw in scene.values.items():
            control = controls.get(cid)
            if control is None:
                skipped.append(cid)
                continue
            if not control.scene or control.trigger:
                continue  # saved before it was kept out of scenes (or became a trigger): still never touched
            try:
                targets[cid] = normalize(control, raw)
            except InvalidValue:
                skipped.append(cid)
        origin = Origin("scene", name)
        with self._run_lock:
            instant: dict[str, Value] = {}
            with self._fade_lock:
                # The old fade ends here; the new one is in place before any of its
                # values is stored, so a change from elsewhere meanwhile interrupts it.
                self._interrupted.clear()
                self._restore.clear()
                current = self.hub.values()
                new = _Fade(origin, time.monotonic(), seconds)
                for cid, value in targets.items():
                    start = current[cid]
                    if seconds > 0 and controls[cid].numeric and isinstance(start, int | float) and start != value:
                        new.moves[cid] = (float(start), float(value))
                    else:  # (one already there is set all the same: a recall is a move, bridge.hub.BY_HAND)
                        instant[cid] = value
                self._fade = new if new.moves else None
            for cid, value in instant.items():
                self._set(cid, value, origin)
        if self._fade is not None:
            self._wake.set()
        result = Recall(name, seconds, tuple(targets), tuple(skipped))
        self._recalls += 1
        self._last = result
        if skipped:
            log.warning(
                "scene %r recalled; skipped %s (no longer in the config, or the value no longer fits)",
                name,
                ", ".join(skipped),
            )
        else:
            log.info("scene %r recalled (fade %g s)", name, seconds)
        self._announce()
        return result

    def _set(self, cid: str, value: Value | float, origin: Origin) -> None:
        try:
            self.hub.set(cid, value, origin)
        except BridgeError as err:  # the control cannot take it: the rest goes on
            log.warning("scene recall: %s", err)

    def reshape(self, reshaped: Reshaped) -> None:
        """The controls changed (a reload): a running fade lets go of the controls that went, or are no
        longer a range or knob; one given a new label, colour or range, or renamed, goes on (each step kept
        in range)."""
        controls = self.hub.controls
        with self._fade_lock:
            if self._fade is not None:
                for new, old in reshaped.renamed.items():  # the same control under a new name: it goes on
                    for part in (self._fade.moves, self._fade.sent):
                        if old in part:
                            part[new] = part.pop(old)  # type: ignore[assignment]
                for cid in (*reshaped.removed, *reshaped.redefined, *reshaped.renamed):
                    control = controls.get(cid)
                    if control is None or not control.fader:
                        self._fade.moves.pop(cid, None)

    # -- the fade engine -----------------------------------------------------------
    def send(self, change: Change) -> None:
        """Take a control out of the running fade when it is changed from elsewhere (a reload's own change,
        a range's clamp or a renamed control told at its new address, is no hand on it)."""
        if self._fade is None or change.origin.kind == "config":
            return
        cid = change.control.id
        with self._fade_lock:
            fade = self._fade
            if fade is None:
                return
            now = time.monotonic()
            if change.origin == fade.origin:
                if cid in fade.moves and isinstance(change.value, int | float):
                    steps = fade.sent.setdefault(cid, deque(maxlen=ECHO_STEPS))
                    steps.append((now, float(change.value)))
                if cid not in fade.moves and cid in self._interrupted:
                    # This step was stored after the change that interrupted the
                    # control (they crossed): the fade thread puts that change back.
                    self._restore[cid] = self._interrupted[cid]
                return
            if cid in fade.moves:
                if change.origin.kind in ECHOING and fade.echoes(cid, change.value, now):
                    return  # its own step, confirmed by a desk: the fade goes on
                del fade.moves[cid]
                self._interrupted[cid] = change.value
            elif cid in self._interrupted:
                self._interrupted[cid] = change.value
                self._restore.pop(cid, None)  # a newer change is stored after the step

    def _run(self) -> None:
        due = time.monotonic()
        while not self._workers.stopping.is_set():
            if self._fade is None:
                self._wake.wait()
                self._wake.clear()
                due = time.monotonic()
                continue
            try:
                self._step()
            except Exception:  # the engine must outlive any one fade
                log.exception("scene fade failed; stopped")
                with self._fade_lock:
                    self._fade = None
            # On a fixed grid, so the time a step takes does not slow the rate;
            # a late step is not followed by a burst to catch up.
            now = time.monotonic()
            due = max(due + STEP_INTERVAL, now)
            self._workers.wait(due - now)

    def _step(self) -> None:
        """One step of the fade: every moving control to where the line is now."""
        with self._run_lock:
            with self._fade_lock:
                fade = self._fade
                if fade is None:
                    return
                elapsed = time.monotonic() - fade.started
                done = elapsed >= fade.duration
                share = 1.0 if done else elapsed / fade.duration
                moves = list(fade.moves.items())
            for cid, (start, end) in moves:
                # The last step is the saved value itself, not a sum that nearly is.
                self._set(cid, end if done else start + (end - start) * share, fade.origin)
            with self._fade_lock:
                restore, self._restore = self._restore, {}
                if (done or not fade.moves) and self._fade is fade:
                    self._fade = None
                    self._interrupted.clear()
            for cid, value in restore.items():
                self._set(cid, value, RESTORE_ORIGIN)

    # -- OSC -------------------------------------------------------------------------
    def osc_commands(self) -> dict[str, Callable[[list[object], str], None]]:
        """The bridge's own OSC addresses for scenes, for the OSC adapter."""
        return {SAVE_ADDRESS: self._osc_save, RECALL_ADDRESS: self._osc_recall}

    def _osc_save(self, args: list[object], peer: str) -> None:
        if len(args) != 1:
            raise SceneError(f"{SAVE_ADDRESS} expects one string: the scene's name")
        self.save(args[0])

    def _osc_recall(self, args: list[object], peer: str) -> None:
        if len(args) not in (1, 2) or not isinstance(args[0], str):
            raise SceneError(f"{RECALL_ADDRESS} expects a scene name and optionally a fade in seconds")
        self.recall(args[0], args[1] if len(args) == 2 else 0.0)
