"""Scenes shared by the processes of a cluster: one list, whichever process a phone or a desk asks.

Without it each process had its own: a scene saved from a phone served by
one process was unknown to the desk's ``/bridge/scene/recall`` on another,
and the scene bars of two phones differed. Redis holds every scene (the
hash ``<name>:scenes``, one JSON text per scene, as the scenes file writes
it). A process that saves, deletes, imports or renames writes what changed
and announces it, texts and all, in one step; every process takes what is
announced in Redis's order, its own included, so two processes saving one
scene at once end on the same. At each join Redis's scenes are the show's
(a process's own fill a Redis no process filled yet; one whose scenes were
all deleted stays empty), but for those changed here while Redis was away,
which are written when it is back. A recall and its fade run where they are
asked: their values reach every process as any change does.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bridge.cluster.store import RedisStore, StoreError
from bridge.errors import SceneError, UnknownScene
from bridge.scenes.store import Scene, parse_export

if TYPE_CHECKING:
    from bridge.scenes.engine import Scenes

log = logging.getLogger("bridge.cluster.adapter")


class SharedScenes:
    """The scenes of this process, kept in step with Redis's. The writer thread calls :meth:`write`, the
    listener :meth:`joined` and :meth:`announced`."""

    def __init__(self, scenes: Scenes, store: RedisStore) -> None:
        self.scenes = scenes
        self.store = store
        #: Wakes the writer (the adapter's).
        self.wake: Callable[[], None] = lambda: None
        self._pending: set[str] = set()  # changed here, not written yet
        self._lock = threading.Lock()
        scenes.store.on_local = self._changed

    def _changed(self, names: list[str]) -> None:
        with self._lock:
            self._pending.update(names)
        self.wake()

    def write(self) -> None:
        """Write what changed here (kept for the next try when Redis cannot take it: :class:`StoreError`)."""
        with self._lock:
            names, self._pending = self._pending, set()
        if not names:
            return
        try:
            self.store.put_scenes({name: self._text(name) for name in sorted(names)})
        except StoreError:
            with self._lock:
                self._pending |= names
            raise

    def joined(self) -> None:
        """At each join: take Redis's scenes (but those changed here meanwhile); fill a Redis never filled."""
        self.scenes.store.load()  # (at start, before the scenes' own start: the file's, then Redis's)
        filled, stored = self.store.scenes()
        if not filled:
            self._changed(self.scenes.names())
            return
        with self._lock:
            pending = set(self._pending)
        changed: dict[str, Scene | None] = {name: None for name in self.scenes.names() if name not in stored}
        changed.update(self._parsed(stored))
        self.scenes.take({name: scene for name, scene in changed.items() if name not in pending})

    def announced(self, message: dict[str, Any]) -> None:
        """Scenes written by a process, this one included, in Redis's order: taken (but those changed here
        since, whose newer version goes out next)."""
        texts = message.get("scenes")
        if not isinstance(texts, dict):
            return
        with self._lock:
            pending = set(self._pending)
        texts = {str(name): text for name, text in texts.items() if name not in pending}
        gone: dict[str, Scene | None] = {name: None for name, text in texts.items() if text is None}
        gone.update(self._parsed({n: t for n, t in texts.items() if t is not None}))
        self.scenes.take(gone, quiet=True)

    def _text(self, name: str) -> str | None:
        try:
            scene = self.scenes.get(name)
        except UnknownScene:
            return None  # deleted
        return json.dumps({"saved_at": scene.saved_at, "values": scene.values}, ensure_ascii=False)

    def _parsed(self, texts: Mapping[str, object]) -> dict[str, Scene | None]:
        found: dict[str, Scene | None] = {}
        for name, text in texts.items():
            try:
                found.update(parse_export({"scenes": {name: json.loads(str(text))}}))
            except (ValueError, SceneError) as err:
                log.warning("cluster: scene %r in Redis is not one this bridge reads (%s); left out", name, err)
        return found
