"""The cluster's Redis I/O: the scripts, the channel and the members. Nothing else.

Keys, under the ``[cluster] name`` prefix:

``<name>:values``
    one hash: ``<id>`` holds the JSON value, ``<id>:version`` its version.
``<name>:signature``
    the controls' signature (ids, types, ranges) of the processes running.
``<name>:members``
    a sorted set of the processes alive, each scored with the Redis time at
    which it counts as gone unless it beats again.
``<name>:changes``
    the channel: one JSON announcement per accepted change.

Every error of redis-py leaves this module as :class:`StoreError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from bridge.errors import BridgeError
from bridge.model import Value

T = TypeVar("T")

#: A process that has not beaten for this long no longer counts as running.
MEMBER_TTL_MS = 5000
#: How long a SUBSCRIBE may take to be confirmed.
SUBSCRIBE_TIMEOUT = 5.0

# One accepted change: next version, value, announcement, in one step.
_WRITE = """
local version = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':version', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], '{"control":"' .. ARGV[1] .. '","version":' .. version ..
  ',"process":"' .. ARGV[3] .. '","origin":"' .. ARGV[4] .. '","value":' .. ARGV[2] .. '}')
return version
"""

# Joining: check the controls' signature against the processes running (or
# take over when none is), register as a member, fill in controls Redis does
# not have or holds at an older version than this process knows, and return
# the whole hash.
_JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local current = redis.call('GET', KEYS[2])
local took_over = 0
if current and current ~= ARGV[1] then
  local others = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) then others = others - 1 end
  if others > 0 then return {'refused', current, others} end
  redis.call('DEL', KEYS[1])
  took_over = 1
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
local restored = 0
for i = 5, #ARGV, 3 do
  local id, value, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local stored = tonumber(redis.call('HGET', KEYS[1], id .. ':version'))
  if stored == nil or redis.call('HEXISTS', KEYS[1], id) == 0 or stored < version then
    redis.call('HSET', KEYS[1], id, value, id .. ':version', version)
    if version > 0 then restored = restored + 1 end
    redis.call('PUBLISH', ARGV[4], '{"control":"' .. id .. '","version":' .. version ..
      ',"process":"' .. ARGV[2] .. '","origin":"join","value":' .. value .. '}')
  end
end
return {'joined', redis.call('HGETALL', KEYS[1]), took_over, restored}
"""

# A heartbeat: still running; the number of processes that are.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""


class StoreError(BridgeError):
    """Redis is unreachable, or refused (``refused``: out of memory, a read-only replica...)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _translated(call: Callable[[], T]) -> T:
    try:
        return call()
    except ResponseError as err:
        raise StoreError(str(err), refused=True) from err
    except (RedisError, OSError) as err:
        raise StoreError(str(err) or type(err).__name__) from err


class Joined:
    """What a join found: the hash as {field: text}, and whether this process took over or restored values."""

    def __init__(self, stored: dict[str, str], took_over: bool, restored: int) -> None:
        self.stored = stored
        self.took_over = took_over
        self.restored = restored


class RedisStore:
    """One process's connection to the shared values of ``name`` at ``url``."""

    def __init__(self, url: str, name: str, process_id: str) -> None:
        self.process_id = process_id
        self.values_key = f"{name}:values"
        self.signature_key = f"{name}:signature"
        self.members_key = f"{name}:members"
        self.channel = f"{name}:changes"
        # No retries inside redis-py: the adapter's writer and listener retry, with backoff, themselves.
        self.client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=2,
            retry=Retry(NoBackoff(), 0),
        )
        self._pubsub: Any = None

    def write(self, batch: list[tuple[str, tuple[Value, str]]]) -> list[int]:
        """Run the write script for each change (value, origin kind), in one round trip; their versions."""

        def run() -> list[int]:
            pipe = self.client.pipeline(transaction=False)
            for cid, (value, kind) in batch:
                pipe.eval(_WRITE, 1, self.values_key, cid, json.dumps(value), self.process_id, kind, self.channel)
            return [int(v) for v in pipe.execute()]

        return _translated(run)

    def fire(self, cid: str, kind: str) -> None:
        """Announce a trigger's press: no version, nothing stored (a trigger is an event, not a state)."""
        text = json.dumps({"control": cid, "fire": True, "process": self.process_id, "origin": kind})
        _translated(lambda: self.client.publish(self.channel, text))

    def subscribe(self) -> None:
        """Subscribe to the channel and wait for Redis to confirm it."""

        def run() -> None:
            pubsub = self.client.pubsub()
            self._pubsub = pubsub
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while True:
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "subscribe":
                    return
                if time.monotonic() > deadline:
                    raise redis.ConnectionError("no answer to SUBSCRIBE")

        _translated(run)

    @property
    def subscribed(self) -> bool:
        return self._pubsub is not None

    def announcement(self, timeout: float) -> str | None:
        """The next announcement on the channel, or None after ``timeout`` seconds."""
        pubsub = self._pubsub
        if pubsub is None:
            raise StoreError("not subscribed")
        message = _translated(lambda: pubsub.get_message(timeout=timeout))
        if message is not None and message.get("type") == "message":
            return str(message["data"])
        return None

    def join(self, signature: str, known: list[tuple[str, str, int]]) -> Joined | tuple[str, int]:
        """Register, check the signature and merge ``known`` (id, JSON value, version).

        Returns what was found, or (their signature, processes running) when refused.
        """
        args: list[Any] = []
        for cid, text, version in known:
            args += [cid, text, version]
        reply = _translated(
            lambda: self.client.eval(
                _JOIN,
                3,
                self.values_key,
                self.signature_key,
                self.members_key,
                signature,
                self.process_id,
                MEMBER_TTL_MS,
                self.channel,
                *args,
            )
        )
        if reply[0] == "refused":
            return str(reply[1]), int(reply[2])
        flat = reply[1]
        return Joined(dict(zip(flat[::2], flat[1::2], strict=True)), bool(int(reply[2])), int(reply[3]))

    def beat(self) -> int:
        """Still running; the number of processes that are."""
        return int(_translated(lambda: self.client.eval(_BEAT, 1, self.members_key, self.process_id, MEMBER_TTL_MS)))

    def leave(self) -> None:
        """No longer a member (best effort: Redis may be gone)."""
        try:
            _translated(lambda: self.client.zrem(self.members_key, self.process_id))
        except StoreError:
            pass

    def unsubscribe(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except (RedisError, OSError):
                pass

    def close(self) -> None:
        self.unsubscribe()
        self.client.close()
