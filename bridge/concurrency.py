"""The server model, in one place.

``python -m bridge`` runs on gevent: the standard library is monkey-patched
before anything else is imported, so every thread of the bridge (the OSC
reader, the MIDI poller, the fan-out, the state writer) is a greenlet and
every socket cooperates. The measurements behind that choice are in the
performance page (docs/performance.md).

Code that would block the whole process for a while (``fsync`` on a slow
card) goes through :func:`run_blocking`, which hands it to a real OS thread
when the process is patched and just calls it otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: ``threading`` (or ``eventlet``, when installed) runs the bridge without
#: gevent. For measuring and debugging only: both are slower under load, and
#: eventlet's maintainers discourage new use (see docs/performance.md).
SERVER_MODEL_VARIABLE = "STAGE_BRIDGE_SERVER_MODEL"
MODELS = ("gevent", "threading", "eventlet")


def wanted_model() -> str:
    """The model asked for in the environment; gevent unless told otherwise."""
    model = os.environ.get(SERVER_MODEL_VARIABLE, "gevent")
    if model not in MODELS:
        raise SystemExit(f"error: {SERVER_MODEL_VARIABLE} must be one of {', '.join(MODELS)}, got {model!r}")
    return model


def patch() -> str:
    """Monkey-patch for gevent unless the environment asks for threads; the model in use."""
    model = wanted_model()
    if model == "gevent":
        from gevent import monkey

        monkey.patch_all()
    elif model == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    return model


def patched() -> bool:
    """True when gevent has patched this process's sockets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def _eventlet_patched() -> bool:
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("socket"))


def async_mode() -> str:
    """Flask-SocketIO's async mode that matches this process."""
    if patched():
        return "gevent"
    return "eventlet" if _eventlet_patched() else "threading"


def run_blocking(function: Callable[..., T], *args: object) -> T:
    """Run ``function(*args)`` without stalling the other greenlets; its exception is raised here."""
    if patched():
        import gevent

        outcome: tuple[bool, Any] = gevent.get_hub().threadpool.apply(_outcome, (function, args))
        succeeded, value = outcome
        if not succeeded:
            # Raised in the caller only: gevent's pool would print it to stderr as a crash
            # (an expected OSError, such as a full disk, included).
            raise value
        result: T = value
        return result
    if _eventlet_patched():
        from eventlet import tpool

        done: T = tpool.execute(function, *args)
        return done
    return function(*args)


def within(timeout: float, function: Callable[..., object], *args: object) -> bool:
    """Run ``function(*args)`` on an OS thread of its own; True when it returned within ``timeout`` seconds.
    Else it is left to finish (or not) on its own: for a library call that may wait for good on a lock of its
    own (libjack's client close), which must not hold up the bridge's stop, nor a test."""
    if patched():
        from gevent import monkey

        start, lock = (
            monkey.get_original("_thread", "start_new_thread"),
            monkey.get_original("_thread", "allocate_lock"),
        )
    else:
        import _thread

        start, lock = _thread.start_new_thread, _thread.allocate_lock
    done = lock()
    done.acquire()

    def run() -> None:
        try:
            function(*args)
        finally:
            done.release()

    start(run, ())
    return bool(done.acquire(True, timeout))


def _outcome(function: Callable[..., Any], args: tuple[object, ...]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)`` of ``function(*args)``."""
    try:
        return True, function(*args)
    except Exception as err:
        return False, err


def runtime_counts() -> dict[str, int]:
    """What a long run must not pile up: threads, greenlets, open descriptors, resident memory (Linux).

    ``threads`` are the OS threads of the process (the event loop's, the
    thread pool's, libjack's); ``greenlets`` every greenlet not finished, found by
    walking the heap (tens of milliseconds: for soak runs, not for polling), but
    for those made at start-up, which are frozen out of it with the rest of the
    start-up heap; ``frozen`` is the number of those objects.
    """
    import gc
    import threading

    counts = {"python_threads": threading.active_count(), "frozen": gc.get_freeze_count()}
    try:
        from greenlet import greenlet
    except ImportError:
        pass
    else:
        # Live ones only: a finished greenlet waiting for the cycle collector is no leak.
        counts["greenlets"] = sum(1 for item in gc.get_objects() if isinstance(item, greenlet) and not item.dead)
    try:
        counts["fds"] = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/status", encoding="ascii") as status:
            lines = status.read().splitlines()
        for line in lines:
            name, _, rest = line.partition(":")
            if name == "Threads":
                counts["threads"] = int(rest)
            elif name == "VmRSS":
                counts["rss_kb"] = int(rest.split()[0])
            elif name == "RssAnon":
                # The process's own memory: RSS also counts shared pages, libjack's included.
                counts["anon_kb"] = int(rest.split()[0])
    except OSError:
        pass  # not Linux: the counts Python has
    return counts
