"""What a desk says a control looks like: its label and colour (``label_from``, ``color_from``).

A mixing desk knows its channels' names and colours; a show layout shows
them on the faders. The OSC adapter hands every name or colour arriving at
a ``label_from`` or ``color_from`` address to :class:`Looks`, which keeps
the latest per control (so a page that joins late, or reloads, shows the
desk's names), tells its listeners (the pages, the state file) and never
sends anything out again: a look is the desk's, not a value to mirror.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bridge.model import is_color

#: A look: {"label": text, "color": "#rrggbb"}, either or both.
Look = dict[str, str]
Listener = Callable[[str, Look], None]
#: Longest label a desk may set (the page shows a short name; the rest is cut).
MAX_LABEL = 256


class Looks:
    """The latest label and colour per control, from the desk."""

    def __init__(self, control_ids: Iterable[str]) -> None:
        self._ids = set(control_ids)
        self._looks: dict[str, Look] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def reshape(self, control_ids: Iterable[str], renamed: Mapping[str, str] | None = None) -> None:
        """The controls changed (a reload): looks are kept for the ids that stay (and for those that come back);
        a renamed control's (``renamed``: new id -> old) goes with it, over one its new id had before."""
        with self._lock:
            self._ids = set(control_ids)
            for new, old in (renamed or {}).items():
                look = self._looks.pop(old, None)
                if look is None:
                    self._looks.pop(new, None)
                else:
                    self._looks[new] = look

    def listen(self, listener: Listener) -> None:
        """Call ``listener(control id, its whole look)`` after every change."""
        self._listeners.append(listener)

    def set(self, cid: str, label: str | None = None, color: str | None = None) -> bool:
        """Give ``cid`` a new label and/or colour; True when it changed (listeners told)."""
        if cid not in self._ids:
            return False
        with self._lock:
            look = dict(self._looks.get(cid, {}))
            if label == "":
                look.pop("label", None)  # (the control's own again: a desk's channel nobody named)
            elif label is not None:
                look["label"] = label[:MAX_LABEL]
            if color is not None:
                look["color"] = color.lower()
            if look == self._looks.get(cid):
                return False
            self._looks[cid] = look
        for listener in self._listeners:
            listener(cid, dict(look))
        return True

    def all(self) -> dict[str, Look]:
        """Every control with a look, and its look."""
        with self._lock:
            return {cid: dict(look) for cid, look in self._looks.items()}

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Load saved looks (the state file's) without telling anyone; what does not fit is left out."""
        with self._lock:
            for cid, look in saved.items():
                if cid not in self._ids or not isinstance(look, dict):
                    continue
                kept: Look = {}
                label, color = look.get("label"), look.get("color")
                if isinstance(label, str):
                    kept["label"] = label[:MAX_LABEL]
                if isinstance(color, str) and is_color(color):
                    kept["color"] = color.lower()
                if kept:
                    self._looks[cid] = kept
