"""The recurring mechanics of moving values, each named once.

* :class:`Latest`: the latest value per key, in the order keys were last
  set. Toward a slow browser, a MIDI output over its budget, Redis while it
  is away or an OSCQuery listener, a newer value of a control replaces one
  not sent yet: what arrives late is still the newest.
* :class:`Outbox`: a :class:`Latest` shared between threads, with the
  wake-up of the one thread that empties it.
* :class:`TokenBucket`: so many events a second, with bursts up to a given
  size (a browser's changes, a MIDI cable's messages).
* :class:`Workers`: the threads of one part of the bridge, started and
  stopped together.

None of them logs or knows about controls; the locking of :class:`Latest`
and :class:`TokenBucket` is their owner's (they often share a lock with
other state), :class:`Outbox` and :class:`Workers` lock for themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Latest(Generic[K, V]):
    """The latest value per key, in the order the keys were last set. Not locked."""

    __slots__ = ("_items", "replaced")

    def __init__(self) -> None:
        self._items: dict[K, V] = {}
        #: How many values were replaced by a newer one before they were taken.
        self.replaced = 0

    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` for ``key``, after every other key; True when it replaced one."""
        replaced = self._items.pop(key, _MISSING) is not _MISSING
        if replaced:
            self.replaced += 1
        self._items[key] = value
        return replaced

    def pop(self, key: K) -> V | None:
        """Take the value of ``key`` out, if there is one."""
        return self._items.pop(key, None)

    def first(self) -> tuple[K, V]:
        """The oldest key and its value (``StopIteration`` when empty)."""
        return next(iter(self._items.items()))

    def take(self) -> dict[K, V]:
        """Every value, oldest first; the queue is empty afterwards."""
        items, self._items = self._items, {}
        return items

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)


_MISSING = object()


class Outbox(Generic[K, V]):
    """A :class:`Latest` that any thread fills and one thread empties, woken when there is something."""

    def __init__(self) -> None:
        self._latest: Latest[K, V] = Latest()
        self._lock = threading.Lock()
        self._ready = threading.Event()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._latest.put(key, value)
        self._ready.set()

    def take(self, timeout: float | None = None) -> dict[K, V]:
        """Wait until something is there (or :meth:`wake`, or ``timeout``), then take everything."""
        self._ready.wait(timeout)
        with self._lock:
            self._ready.clear()
            return self._latest.take()

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._latest.pop(key)

    def put_back(self, items: dict[K, V]) -> None:
        """Return what was taken and could not be sent, ahead of what came since; a newer value wins."""
        with self._lock:
            newer = self._latest.take()
            for key, value in items.items():
                if key not in newer:
                    self._latest.put(key, value)
            for key, value in newer.items():
                self._latest.put(key, value)
        self._ready.set()

    def keys(self) -> list[K]:
        """What waits now, by key."""
        with self._lock:
            return list(self._latest)

    def wake(self) -> None:
        """End a :meth:`take` that is waiting, with whatever is there (nothing, when stopping)."""
        self._ready.set()

    @property
    def replaced(self) -> int:
        return self._latest.replaced

    def __len__(self) -> int:
        with self._lock:
            return len(self._latest)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full. Not locked.

    ``rate`` 0 means no limit. ``clock`` is for tests.
    """

    __slots__ = ("rate", "burst", "_tokens", "_refilled", "_clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._refilled = clock()

    def take(self, count: float = 1.0) -> bool:
        """Take ``count`` tokens if there are that many; True when taken."""
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= count:
            self._tokens -= count
            return True
        return False


class Buckets(Generic[K]):
    """A :class:`TokenBucket` per key (a browser, a host), full on first use. With ``keys``, at most
    that many are kept, the oldest forgotten (it starts full again). Not locked."""

    __slots__ = ("rate", "burst", "keys", "_buckets")

    def __init__(self, rate: float, burst: float, keys: int | None = None) -> None:
        self.rate = rate  # (for keys met from now on)
        self.burst = burst
        self.keys = keys
        self._buckets: dict[K, TokenBucket] = {}

    def take(self, key: K) -> bool:
        """Take a token of ``key``'s bucket if it has one; True when taken."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if self.keys is not None and len(self._buckets) >= self.keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket.take()

    def forget(self, key: K) -> None:
        self._buckets.pop(key, None)


class Workers:
    """The threads of one part of the bridge, started and stopped together.

    Each thread's loop watches :attr:`stopping` (or waits with :meth:`wait`,
    which returns True once it is set).
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, *loops: tuple[Callable[[], None], str]) -> None:
        """Clear :attr:`stopping` and start one daemon thread per ``(target, name)``."""
        self.stopping.clear()
        for target, name in loops:
            self.spawn(target, name)

    def spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        """Start one more thread in this group."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]  # short-lived ones (a client's writer) leave
        self._threads.append(thread)
        thread.start()
        return thread

    def wait(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` unless stopped meanwhile; True when stopping."""
        return self.stopping.wait(seconds)

    def stop(self, timeout: float = 2.0, wake: Iterable[Callable[[], object]] = ()) -> None:
        """Set :attr:`stopping`, call each of ``wake`` (what the threads wait on), and join them."""
        self.stopping.set()
        for alarm in wake:
            alarm()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every thread of the group to end (at most ``timeout`` seconds each)."""
        threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=timeout)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
