"""The cluster's version protocol, without Redis: what each process knows and when it may apply.

Redis runs the write script of every accepted change one at a time, so each
control's versions are one global order. Each process remembers, per
control, the highest version it knows and its value, and the local changes
not written yet (the latest per control). The rules:

* a local change is filed, written later, and counts as pending (queued or
  in flight) until Redis acknowledges it with its version;
* an announcement from another process with a version higher than the one
  known is remembered, and applied only if nothing of this process is
  pending for that control: a pending change of its own comes later in the
  global order and will win;
* once nothing is pending, the process shows the value of the highest
  version it knows (:meth:`Versions.settled`), so the last write in Redis's
  order is the value everywhere.

Pure bookkeeping under one lock; ``tests/test_cluster_protocol.py`` plays it
without Redis.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.errors import InvalidValue
from bridge.flow import Latest
from bridge.model import Control, Value
from bridge.validation import normalize

#: A local change waiting to be written: (value, origin kind).
Pending = tuple[Value, str]


@dataclass
class Known:
    """What this process knows of one control in the cluster."""

    version: int = 0  # the highest version known from Redis
    value: Value | None = None  # the value at that version
    inflight: int = 0  # writes sent and not yet acknowledged


class Versions:
    """Per control, the highest version known; the local changes waiting to be written."""

    def __init__(self, control_ids: Iterable[str]) -> None:
        self._known: dict[str, Known] = {cid: Known() for cid in control_ids}
        self._queued: Latest[str, Pending] = Latest()
        self._lock = threading.Lock()
        #: False while Redis is away: local changes are held, announcements not applied.
        self.joined = False
        #: Local changes filed so far, and how many of them the last :meth:`take` took (a trigger's press is
        #: shared once the changes filed before it are written: see the adapter's writer).
        self.filed = self.taken = 0

    # -- local changes -----------------------------------------------------------
    def file(self, cid: str, value: Value, kind: str) -> None:
        """A local change to write; a newer one for the same control replaces it."""
        with self._lock:
            self._queued.put(cid, (value, kind))
            self.filed += 1

    def take(self) -> list[tuple[str, Pending]] | None:
        """The changes to write now, each counted in flight; None while not joined."""
        with self._lock:
            if not self.joined:
                return None
            batch = list(self._queued.take().items())
            self.taken = self.filed
            for cid, _pending in batch:
                self._known[cid].inflight += 1
            return batch

    def requeue(self, batch: list[tuple[str, Pending]]) -> None:
        """Put back changes whose write failed, unless a newer one for the same control is queued."""
        with self._lock:
            newer = self._queued.take()
            for cid, pending in batch:
                known = self._known.get(cid)
                if known is None:
                    continue  # removed by a reload meanwhile
                known.inflight -= 1
                if cid not in newer:
                    self._queued.put(cid, pending)
            for cid, pending in newer.items():
                self._queued.put(cid, pending)

    def acknowledged(self, batch: list[tuple[str, Pending]], versions: list[int]) -> list[str]:
        """Redis wrote ``batch`` with these versions; the controls to settle now."""
        with self._lock:
            for (cid, (value, _kind)), version in zip(batch, versions, strict=True):
                known = self._known.get(cid)
                if known is None:
                    continue  # removed by a reload meanwhile
                known.inflight -= 1
                if version > known.version:
                    known.version, known.value = version, value
        return list(dict.fromkeys(cid for cid, _pending in batch if cid in self._known))

    # -- what the others say -------------------------------------------------------
    def announced(self, cid: str, version: int, value: Value) -> bool:
        """A change announced on the channel; True when it is news (a higher version)."""
        with self._lock:
            known = self._known.get(cid)
            if known is None:
                return False  # a control this process does not run (a reload not made here yet)
            if version <= known.version:
                return False  # stale, or already known (its own write, acknowledged)
            known.version, known.value = version, value
            return True

    def settled(self, cid: str) -> Value | None:
        """The value to show for ``cid`` now, or None while a change of this process is pending."""
        with self._lock:
            known = self._known.get(cid)
            if known is None or not self.joined or cid in self._queued or known.inflight or known.value is None:
                return None
            return known.value

    # -- joining -------------------------------------------------------------------
    def known(self) -> dict[str, tuple[Value | None, int]]:
        """Every control's value and version as known here, for the join script."""
        with self._lock:
            return {cid: (k.value, k.version) for cid, k in self._known.items()}

    def replace(self, fresh: dict[str, tuple[int, Value]]) -> int:
        """Take what Redis holds after a join as known, and count as joined; the changes still queued."""
        with self._lock:
            for cid, (version, value) in fresh.items():
                known = self._known.setdefault(cid, Known())
                # Replaced, not merged: after a restart that lost data, versions may have gone down.
                known.version, known.value = version, value
            self.joined = True
            return len(self._queued)

    def reshape(self, control_ids: Iterable[str]) -> None:
        """A config reload: new controls start unknown (version 0); removed ones are forgotten, queued or not."""
        with self._lock:
            ids = list(control_ids)
            self._known = {cid: self._known.get(cid) or Known() for cid in ids}
            queued = self._queued.take()
            for cid, pending in queued.items():
                if cid in self._known:
                    self._queued.put(cid, pending)

    def left(self) -> None:
        """Redis is away: hold the writes until the next join."""
        with self._lock:
            self.joined = False

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    @property
    def inflight(self) -> int:
        with self._lock:
            return sum(k.inflight for k in self._known.values())


def checked(control: Control, text: str) -> Value | None:
    """The value a JSON text in Redis holds for ``control``, or None (said) when it does not fit it."""
    try:
        return normalize(control, json.loads(text))
    except (ValueError, InvalidValue) as err:
        logging.getLogger("bridge.cluster.adapter").warning(
            "cluster: %s holds %r in Redis, which does not fit it (%s); ignored", control.id, text, err
        )
        return None
