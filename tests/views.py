"""A test client that knows what a page would show: the last value it sent or was sent."""

from __future__ import annotations

from typing import Any

from tests.helpers import Client


class ViewClient(Client):
    """A :class:`Client` that also records its own changes, in order with what it receives.

    A page shows the last value it sent or was sent for each control; this
    client answers the same question with :meth:`shows`.
    """

    def send(self, who: Any, data: Any) -> None:
        # Recorded before it leaves: anything received afterwards is recorded after it.
        with self._lock:
            self.events.append(("sent", {"who": who, "data": data}))
        super().send(who, data)

    def shows(self, who: str) -> Any:
        for event, payload in reversed(self.events_copy()):
            if event in ("sent", "update value") and payload["who"] == who:
                return payload["data"]
            if event == "snapshot" and who in payload["values"]:
                return payload["values"][who]
        return None
