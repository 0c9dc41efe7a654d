"""Access keys: who may control the show, who may only watch it.

A key travels once as ``?key=...`` in the join URL (or QR code) and then as
an HttpOnly, SameSite cookie; scripts may send ``Authorization: Bearer KEY``
and Socket.IO clients ``auth={"key": KEY}``. Keys are compared in constant
time with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["control", "viewer"]
COOKIE = "stage_bridge_key"


def generate_key() -> str:
    """A fresh key that is easy to type from a printout: 12 URL-safe characters."""
    return secrets.token_urlsafe(9)


def same_key(presented: str, expected: str) -> bool:
    """Compare two keys in constant time (for equal lengths)."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class Access:
    """The keys in force: ``key`` gives control, ``viewer_key`` read-only access."""

    key: str | None = None
    viewer_key: str | None = None

    @classmethod
    def from_config(cls, key: str | None, viewer_key: str | None) -> Access:
        """Resolve ``"auto"`` into generated keys."""
        return cls(
            key=generate_key() if key == "auto" else key,
            viewer_key=generate_key() if viewer_key == "auto" else viewer_key,
        )

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def role_for(self, presented: str | None) -> Role | None:
        """The role a presented key gives, or None; everyone controls when no key is set."""
        if self.key is None:
            return "control"
        if not presented:
            return None
        # Both comparisons always run, so the time taken does not tell which key is near.
        is_control = same_key(presented, self.key)
        is_viewer = self.viewer_key is not None and same_key(presented, self.viewer_key)
        if is_control:
            return "control"
        if is_viewer:
            return "viewer"
        return None

    def key_for(self, role: Role) -> str | None:
        return self.key if role == "control" else self.viewer_key
