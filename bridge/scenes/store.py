"""Saved scenes: names, values, and the file they live in.

A scene is a snapshot of the values of every control that takes part in
scenes (``scene = false`` on a control, say a master volume, keeps it out),
saved under a name. Scenes live in a JSON file beside the state file
(``state.json`` -> ``state.scenes.json``), written atomically on every save;
without a state file they live in memory only.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import SceneError, UnknownScene, shown
from bridge.state import SavedFile, read_document

log = logging.getLogger(__name__)

#: The longest fade accepted, in seconds.
MAX_FADE = 600.0
MAX_SCENES = 500
MAX_NAME_LENGTH = 64
FORMAT_VERSION = 1
#: What an exported file says it is, so that importing some other JSON file is refused by name.
EXPORT_FORMAT = "stage-bridge scenes"


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


def load_scenes(path: Path) -> tuple[dict[str, Scene], dict[str, Any]]:
    """Read saved scenes; a corrupt file is moved aside and ``{}`` returned.

    Also returned: the entries left out (a name the bridge would refuse, no
    ``values``), as the file has them. They are written back as they are at
    every save: a hand edit gone wrong is there to mend, not lost.
    """
    saved = read_document(path, "scenes", "scenes file", "starting without scenes")
    if saved is None:
        return {}, {}
    scenes: dict[str, Scene] = {}
    left_out: dict[str, Any] = {}
    for name, body in saved.items():
        values = body.get("values") if isinstance(body, dict) else None
        try:
            check_name(name)
        except SceneError as err:
            log.warning("scenes file %s: %s; left out (kept in the file as it is)", path, err)
            left_out[name] = body
            continue
        if not isinstance(values, dict):
            log.warning(
                "scenes file %s: scene %r has no 'values' object; left out (kept in the file as it is)", path, name
            )
            left_out[name] = body
            continue
        if len(scenes) >= MAX_SCENES:
            left_out[name] = body  # (an export of more would be refused by an import: a backup not restored)
            continue
        saved_at = body.get("saved_at")
        stamp = float(saved_at) if isinstance(saved_at, int | float) and not isinstance(saved_at, bool) else 0.0
        scenes[name] = Scene(name, dict(values), stamp)
    if len(left_out) and len(scenes) >= MAX_SCENES:
        log.warning(
            "scenes file %s: more than %d scenes; the rest left out (kept in the file as it is)", path, MAX_SCENES
        )
    return scenes, left_out


def portable(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as an export writes them, so that import takes them back: a flag mended in by hand as the
    number a recall makes of it (true is 1); what no recall takes (null, a list, NaN) left out."""
    kept: dict[str, Any] = {}
    for cid, value in values.items():
        if isinstance(value, bool):
            kept[cid] = int(value)
        elif isinstance(value, str) or (isinstance(value, int | float) and _finite(value)):
            kept[cid] = value
    return kept


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def parse_export(body: object) -> dict[str, Scene]:
    """The scenes of an exported file (or of a scenes file as the bridge keeps it), checked whole.

    Raises :class:`SceneError` naming the first thing wrong: nothing of a
    file with one bad scene is taken.
    """
    if not isinstance(body, dict):
        raise SceneError('expected a JSON object {"format": "stage-bridge scenes", "version": 1, "scenes": {...}}')
    said = body.get("format")
    if said is not None and said != EXPORT_FORMAT:
        raise SceneError(f"not a scenes file: format is {said!r}, expected {EXPORT_FORMAT!r}")
    if body.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise SceneError(f"scenes file version {body.get('version')!r} is not one this bridge reads ({FORMAT_VERSION})")
    scenes = body.get("scenes")
    if not isinstance(scenes, dict):
        raise SceneError('expected "scenes": an object of scene names, each {"values": {control: value}}')
    if len(scenes) > MAX_SCENES:
        raise SceneError(f"{len(scenes)} scenes in the file; at most {MAX_SCENES}")
    found: dict[str, Scene] = {}
    for name, scene in scenes.items():
        check_name(name)
        values = scene.get("values") if isinstance(scene, dict) else None
        if not isinstance(values, dict):
            raise SceneError(f'scene {name!r}: expected {{"values": {{control: value}}}}')
        for cid, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise SceneError(f"scene {name!r}: {cid}: expected a number or a text, got {shown(value)}")
            if not (isinstance(value, str) or _finite(value)):
                raise SceneError(f"scene {name!r}: {cid}: expected a finite number, got {shown(value)}")
        saved_at = scene.get("saved_at")
        stamp = float(saved_at) if isinstance(saved_at, int | float) and not isinstance(saved_at, bool) else time.time()
        found[name] = Scene(name, dict(values), stamp)
    return found


class SceneStore:
    """The scenes of a show by name, kept in ``path`` (None: in memory only)."""

    def __init__(self, path: Path | None, on_change: Callable[[str | None], None] | None = None) -> None:
        self.path = path
        self._scenes: dict[str, Scene] = {}
        self._left_out: dict[str, Any] = {}  # entries of the file no scene could be made of, kept as they are
        self._lock = threading.Lock()
        self._file = None if path is None else SavedFile(path, "scenes", on_change=on_change)
        #: Told the names of the scenes changed here (saved, deleted, imported, renamed in), not those
        #: taken from elsewhere (:meth:`take`): a cluster shares them with its other processes.
        self.on_local: Callable[[list[str]], None] | None = None
        self._loaded = False

    def load(self) -> None:
        """Read the saved scenes (a corrupt file is moved aside); once (a cluster's join reads them first)."""
        if self._loaded:
            return
        self._loaded = True
        if self.path is None:
            log.info("no state file: scenes are kept in memory only and lost at exit")
            return
        loaded, left_out = load_scenes(self.path)
        with self._lock:
            self._scenes = loaded
            self._left_out = left_out
        if loaded:
            log.info("loaded %d scenes from %s", len(loaded), self.path)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._scenes)

    def all(self) -> list[Scene]:
        with self._lock:
            return list(self._scenes.values())

    def find(self, name: str) -> Scene | None:
        with self._lock:
            return self._scenes.get(name)

    def get(self, name: str) -> Scene:
        with self._lock:
            scene = self._scenes.get(name)
        if scene is None:
            raise UnknownScene(name)
        return scene

    def save(self, raw_name: object, values: dict[str, object]) -> Scene:
        """Save ``values`` as ``raw_name`` (checked), replacing a scene of that name."""
        name = check_name(raw_name)
        scene = Scene(name, values, time.time())
        with self._lock:
            if name not in self._scenes and len(self._scenes) >= MAX_SCENES:
                raise SceneError(f"at most {MAX_SCENES} scenes; delete one first")
            self._scenes[name] = scene
            self._write()
        self._told([name])
        return scene

    def export(self) -> dict[str, Any]:
        """Every scene as one document: what ``GET /api/scenes/export`` serves and import takes back."""
        with self._lock:
            scenes = {n: {"saved_at": s.saved_at, "values": portable(s.values)} for n, s in self._scenes.items()}
        return {"format": EXPORT_FORMAT, "version": FORMAT_VERSION, "exported_at": time.time(), "scenes": scenes}

    def merge(self, scenes: dict[str, Scene]) -> list[str]:
        """Add ``scenes``, replacing those of the same names; the names replaced."""
        with self._lock:
            replaced = [name for name in scenes if name in self._scenes]
            if len(set(self._scenes) | set(scenes)) > MAX_SCENES:
                raise SceneError(f"at most {MAX_SCENES} scenes: this file would make more; delete some first")
            self._scenes.update(scenes)
            self._write()
        self._told(list(scenes))
        return replaced

    def rename_control(self, old: str, new: str) -> int:
        """A control renamed: in every scene, ``old``'s value is ``new``'s; a value ``new`` had there was a
        deleted control's of that name, and goes (recalled, it moved the renamed fader to another channel's
        level); how many scenes changed."""
        with self._lock:
            moved = []
            if not any(old in scene.values for scene in self._scenes.values()):
                # Renamed already: the same rename made on another process of a cluster (each edits its own
                # copy of the show), whose scenes came renamed. Their values under the new id stay.
                return 0
            for name, scene in list(self._scenes.items()):
                if old in scene.values or new in scene.values:
                    values = {cid: value for cid, value in scene.values.items() if cid != new}
                    values = {(new if cid == old else cid): value for cid, value in values.items()}
                    self._scenes[name] = Scene(name, values, scene.saved_at)
                    moved.append(name)
            if moved:
                self._write()
        self._told(moved)
        return len(moved)

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._scenes:
                raise UnknownScene(name)
            del self._scenes[name]
            self._write()
        self._told([name])

    def take(self, changed: dict[str, Scene | None]) -> None:
        """Scenes changed elsewhere (another process of a cluster): each set, or deleted (None), and kept in
        the file; not told to :attr:`on_local`."""
        with self._lock:
            for name, scene in changed.items():
                if scene is None:
                    self._scenes.pop(name, None)
                else:
                    self._scenes[name] = scene
            self._write()

    def _told(self, names: list[str]) -> None:
        if names and self.on_local is not None:
            self.on_local(names)

    @property
    def error(self) -> str | None:
        """Why the scenes on disk are behind those in memory (None when they are not)."""
        return None if self._file is None else self._file.error

    def close(self) -> None:
        """Stop retrying a write that failed (after one last try)."""
        if self._file is not None:
            self._file.close()

    def _write(self) -> None:
        """Write every scene to the file (called under the lock); a failure is logged once and retried."""
        if self._file is None:
            return
        kept = {n: body for n, body in self._left_out.items() if n not in self._scenes}
        scenes = {n: {"saved_at": s.saved_at, "values": s.values} for n, s in self._scenes.items()}
        body = {"version": FORMAT_VERSION, "scenes": {**scenes, **kept}}  # (those taken first: a start takes the same)
        # ("replace": a half character in an imported text must not make the file unwritable)
        payload = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8", "replace")
        self._file.write(payload)  # kept in memory meanwhile, and retried
