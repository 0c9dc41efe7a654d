"""Scenes: every value saved under a name, recalled at once or over a fade.

A scene is a snapshot of the values of every control that takes part in
scenes (``scene = false`` on a control, say a master volume, keeps it out).
Recalling one switches toggles, buttons and text at once and moves every
range in a straight line to its saved value over ``fade`` seconds, one step
every :data:`STEP_INTERVAL` through the hub, so browsers, OSC and MIDI all
follow the fade. The last step lands exactly on the saved value.

The fade engine is an adapter too: it sees every change, and a change to a
fading control from anywhere else (a finger on a fader, a desk) takes that
control out of the fade, so the performer always wins.

Scenes live in a JSON file beside the state file (``state.json`` ->
``state.scenes.json``), written atomically on every save; without a state
file they live in memory only.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, InvalidValue
from bridge.model import Change, Origin, Value
from bridge.state import read_document, write_atomic
from bridge.validation import normalize

if TYPE_CHECKING:
    from bridge.hub import Hub

log = logging.getLogger(__name__)

#: One fade step every 10 ms: 100 steps a second, twice what the eye needs.
STEP_INTERVAL = 0.01
#: The longest fade accepted, in seconds.
MAX_FADE = 600.0
MAX_SCENES = 500
MAX_NAME_LENGTH = 64
FORMAT_VERSION = 1
SAVE_ADDRESS = "/bridge/scene/save"
RECALL_ADDRESS = "/bridge/scene/recall"
#: The origin of a value put back after a fade step overwrote a newer change.
RESTORE_ORIGIN = Origin("scene", "")


class SceneError(BridgeError):
    """A scene request that cannot be served; ``status`` is its HTTP status."""

    status = 400


class UnknownScene(SceneError):
    status = 404

    def __init__(self, name: object) -> None:
        self.name = name
        super().__init__(f"unknown scene {name!r}")


def scene_file_for(state_file: Path) -> Path:
    """Where the scenes of a show live: beside its state file, named after it."""
    return state_file.with_name(f"{state_file.stem}.scenes.json")


def check_name(raw: object) -> str:
    """A scene name as given, or :class:`SceneError` saying what a name may be."""
    if (
        not isinstance(raw, str)
        or not raw
        or len(raw) > MAX_NAME_LENGTH
        or not raw.isprintable()
        or raw != raw.strip()
        or "/" in raw
    ):
        raise SceneError(
            f"a scene name is 1-{MAX_NAME_LENGTH} printable characters, no '/', no space at either end; got {raw!r}"
        )
    return raw


def check_fade(raw: object) -> float:
    """A fade time in seconds: a finite number from 0 to :data:`MAX_FADE`."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise SceneError(f"fade must be a number of seconds, got {raw!r}")
    if not 0 <= raw <= MAX_FADE:
        raise SceneError(f"fade must be 0-{MAX_FADE:g} seconds, got {raw!r}")
    return float(raw)


@dataclass(frozen=True)
class Scene:
    """Saved values by control id (as saved: checked against the controls on recall)."""

    name: str
    values: dict[str, object]
    saved_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "saved_at": self.saved_at, "values": dict(self.values)}


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


def load_scenes(path: Path) -> dict[str, Scene]:
    """Read saved scenes; a corrupt file is moved aside and ``{}`` returned."""
    saved = read_document(path, "scenes", "scenes file", "starting without scenes")
    if saved is None:
        return {}
    scenes: dict[str, Scene] = {}
    for name, body in saved.items():
        values = body.get("values") if isinstance(body, dict) else None
        try:
            check_name(name)
        except SceneError as err:
            log.warning("scenes file %s: %s; left out", path, err)
            continue
        if not isinstance(values, dict):
            log.warning("scenes file %s: scene %r has no 'values' object; left out", path, name)
            continue
        saved_at = body.get("saved_at")
        stamp = float(saved_at) if isinstance(saved_at, int | float) and not isinstance(saved_at, bool) else 0.0
        scenes[name] = Scene(name, dict(values), stamp)
    return scenes


class Scenes:
    """The scenes of a show, their file, and the fade engine (an adapter of the hub)."""

    name = "scenes"

    def __init__(self, hub: Hub, path: Path | None, push: Callable[[str, Any], None] | None = None) -> None:
        self.hub = hub
        self.path = path
        self._push = push
        self._scenes: dict[str, Scene] = {}
        self._lock = threading.Lock()  # the scenes and their file
        self._last: Recall | None = None
        # Only one writer of scene values at a time: a recall waits for the
        # fade step under way, so no step of an old fade lands after it.
        self._run_lock = threading.Lock()
        self._fade_lock = threading.Lock()  # the fade and what interrupted it
        self._fade: _Fade | None = None
        self._interrupted: dict[str, Value] = {}  # id -> latest value from elsewhere during this fade
        self._restore: dict[str, Value] = {}  # id -> value a fade step overwrote
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._recalls = 0

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        """Load the saved scenes and start the fade thread."""
        if self.path is None:
            log.info("no state file: scenes are kept in memory only and lost at exit")
        else:
            loaded = load_scenes(self.path)
            with self._lock:
                self._scenes = loaded
            if loaded:
                log.info("loaded %d scenes from %s", len(loaded), self.path)
        self._announce()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="scene-fade", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def describe(self) -> dict[str, Any]:
        fade = self._fade
        return {
            "file": str(self.path) if self.path else None,
            "scenes": len(self._scenes),
            "recalls": self._recalls,
            "fading": fade.origin.ident if fade else None,
        }

    # -- the scenes ------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return list(self._scenes)

    def all(self) -> list[Scene]:
        with self._lock:
            return list(self._scenes.values())

    def get(self, name: str) -> Scene:
        with self._lock:
            scene = self._scenes.get(name)
        if scene is None:
            raise UnknownScene(name)
        return scene

    def save(self, raw_name: object) -> Scene:
        """Save every current value (but those with ``scene = false``) as ``raw_name``."""
        name = check_name(raw_name)
        controls = self.hub.controls
        values: dict[str, object] = {cid: v for cid, v in self.hub.values().items() if controls[cid].scene}
        scene = Scene(name, values, time.time())
        with self._lock:
            if name not in self._scenes and len(self._scenes) >= MAX_SCENES:
                raise SceneError(f"at most {MAX_SCENES} scenes; delete one first")
            self._scenes[name] = scene
            self._write()
        log.info("scene %r saved (%d values)", name, len(values))
        self._announce()
        return scene

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._scenes:
                raise UnknownScene(name)
            del self._scenes[name]
            self._write()
        log.info("scene %r deleted", name)
        self._announce()

    def _write(self) -> None:
        """Write every scene to the file (called under the lock); a failure is logged, not raised."""
        if self.path is None:
            return
        body = {
            "version": FORMAT_VERSION,
            "scenes": {n: {"saved_at": s.saved_at, "values": s.values} for n, s in self._scenes.items()},
        }
        payload = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, payload)
        except OSError as err:
            log.warning("cannot write scenes to %s (%s); they are kept in memory", self.path, err.strerror)

    def summary(self) -> dict[str, Any]:
        """What every page shows: the scene names and the last recall."""
        last = self._last
        return {"names": self.names(), "recalled": last.as_dict() if last else None}

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
            if not control.scene:
                continue  # saved before it was kept out of scenes: still never touched
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
                    if seconds > 0 and controls[cid].type == "range" and isinstance(start, int | float):
                        if start != value:
                            new.moves[cid] = (float(start), float(value))
                    else:
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

    # -- the fade engine -----------------------------------------------------------
    def send(self, change: Change) -> None:
        """Take a control out of the running fade when it is changed from elsewhere."""
        if self._fade is None:
            return
        cid = change.control.id
        with self._fade_lock:
            fade = self._fade
            if fade is None:
                return
            if change.origin == fade.origin:
                if cid not in fade.moves and cid in self._interrupted:
                    # This step was stored after the change that interrupted the
                    # control (they crossed): the fade thread puts that change back.
                    self._restore[cid] = self._interrupted[cid]
                return
            if cid in fade.moves:
                del fade.moves[cid]
                self._interrupted[cid] = change.value
            elif cid in self._interrupted:
                self._interrupted[cid] = change.value
                self._restore.pop(cid, None)  # a newer change is stored after the step

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopping.is_set():
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
            self._stopping.wait(due - now)

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
