"""Rate-limited warnings, so that a flood of junk cannot fill the log."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import traceback
from pathlib import Path

#: Where the bridge's own code lives: an exception raised there is a bug, never bad input.
_BRIDGE_CODE = str(Path(__file__).resolve().parent) + os.sep
#: The bridge's frames that only hand a library's call on to the library (the WebSocket
#: that the fan-out writes directly wraps Engine.IO's; the polling check sees every request
#: first): what passes through them is the library's.
_PASS_THROUGH = {
    (_BRIDGE_CODE + os.path.join("web", "wire.py"), "__call__"),
    (_BRIDGE_CODE + os.path.join("web", "polling.py"), "checked"),  # every request on its way to the library
}


def raised_by_a_library(err: BaseException, skip: int = 1) -> bool:
    """True when no frame of ``err``'s traceback (after the first ``skip``, the catcher's) is the bridge's.

    A library that chokes on bad input from the network (a broken Socket.IO
    or Engine.IO packet) is worth one rate-limited line; an exception from
    the bridge's own code, called by that library, is a bug to see whole.
    """
    frames = traceback.extract_tb(err.__traceback__)[skip:]
    return not any(
        frame.filename.startswith(_BRIDGE_CODE) and (frame.filename, frame.name) not in _PASS_THROUGH
        for frame in frames
    )


class LibraryTracebacks(logging.Filter):
    """A library's traceback for bad input from a client (Engine.IO's "post request handler
    error" on a broken polling request) becomes one rate-limited line; a traceback through
    the bridge's own code passes whole."""

    def __init__(self, limiter: LogLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        if err is None or not raised_by_a_library(err):
            return True
        message = record.getMessage()
        self.limiter.warning(("library", message), "%s: %s (bad input from a client; dropped)", message, err)
        return False


#: Keys a limiter remembers. Past them (junk with a new address in every datagram), a key not
#: remembered is said in a summary line at most every :data:`OVERFLOW_INTERVAL` seconds.
MAX_KEYS = 1_000
OVERFLOW_INTERVAL = 5.0


class LogLimiter:
    """Lets one message per key through every ``interval`` seconds.

    The count of messages held back is added to the next one let through.
    At most :data:`MAX_KEYS` keys are remembered (those whose interval is
    over go first); past that, new keys share one summary line.
    """

    def __init__(self, logger: logging.Logger, interval: float = 5.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}
        self._overflow = 0  # messages of keys not remembered, since the last summary
        self._overflow_said = -math.inf
        self._lock = threading.Lock()

    def warning(self, key: object, msg: str, *args: object) -> bool:
        """Log ``msg`` at warning unless ``key`` was logged within the interval."""
        return self._say(logging.WARNING, key, msg, args)

    def info(self, key: object, msg: str, *args: object) -> bool:
        """Log ``msg`` at info unless ``key`` was logged within the interval."""
        return self._say(logging.INFO, key, msg, args)

    def _say(self, level: int, key: object, msg: str, args: tuple[object, ...]) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is None and len(self._last) >= MAX_KEYS:
                self._forget_older_than(now - self.interval)
                if len(self._last) >= MAX_KEYS:
                    return self._summary(level, now, msg, args)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
        if held:
            msg += f" ({held} more like it held back)"
        self.logger.log(level, msg, *args)
        return True

    def _forget_older_than(self, moment: float) -> None:
        for old in [k for k, at in self._last.items() if at <= moment]:
            del self._last[old]
            self._held.pop(old, None)

    def _summary(self, level: int, now: float, msg: str, args: tuple[object, ...]) -> bool:
        """(Under the lock.) One line for the keys there is no room to remember, now and then."""
        self._overflow += 1
        if now - self._overflow_said < OVERFLOW_INTERVAL:
            return False
        count, self._overflow, self._overflow_said = self._overflow, 0, now
        more = f"; {count - 1} more of other kinds held back" if count > 1 else ""
        self.logger.log(level, msg + f" (too many kinds of this to say each{more})", *args)
        return True
