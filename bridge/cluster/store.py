"""The cluster's Redis I/O: the scripts, the channel and the members. Nothing else.

Keys, under the ``[cluster] name`` prefix:

``<name>:values``
    one hash: ``<id>`` holds the JSON value, ``<id>:version`` its version.
``<name>:signature``
    the controls' signature (ids, types, ranges) the values were written under.
``<name>:signatures``
    a hash: each process running and the signature of the controls it runs
    now (a config reload changes it).
``<name>:members``
    a sorted set of the processes alive, each scored with the Redis time at
    which it counts as gone unless it beats again.
``<name>:changes``
    the channel: one JSON announcement per accepted change.
``<name>:targets``
    a hash: each process running and the OSC targets it mirrors to (a JSON
    list), so that two processes sending the same desk every change are told.

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
#: The field of the scenes hash that says a process filled it: no scene has an empty name.
FILLED = ""
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

# The signatures of the other processes running, once those of processes gone
# are dropped: how many there are, and how many differ from ARGV[1].
# (KEYS[1] signatures, KEYS[2] members, KEYS[3] the values' signature, ARGV[2] this process.)
_OTHERS = """
local function others(sigs, members, fallback, mine, me)
  local flat = redis.call('HGETALL', sigs)
  for i = 1, #flat, 2 do
    if not redis.call('ZSCORE', members, flat[i]) then redis.call('HDEL', sigs, flat[i]) end
  end
  local ids = redis.call('ZRANGE', members, 0, -1)
  local count, differ, theirs = 0, 0, false
  for _, id in ipairs(ids) do
    if id ~= me then
      count = count + 1
      local sig = redis.call('HGET', sigs, id) or redis.call('GET', fallback)
      if sig ~= mine then
        differ = differ + 1
        theirs = sig
      end
    end
  end
  return count, differ, theirs
end
"""

# Joining: check the controls' signature against the processes running: at
# least one must run the same controls (after a reload made everywhere, they
# all do); with none running, a different signature means a different show,
# whose values are dropped. Then register as a member, fill in controls Redis
# does not have or holds at an older version than this process knows, and
# return the whole hash.
_JOIN = (
    _OTHERS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local count, differ, theirs = others(KEYS[4], KEYS[3], KEYS[2], ARGV[1], ARGV[2])
local took_over = 0
if count > 0 and differ == count then return {'refused', theirs, count} end
if count == 0 then
  local current = redis.call('GET', KEYS[2])
  if current and current ~= ARGV[1] then
    redis.call('DEL', KEYS[1])
    took_over = 1
  end
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[1])
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
return {'joined', redis.call('HGETALL', KEYS[1]), took_over, restored, differ}
"""
)

# A reload: this process runs other controls now. Returns how many of the
# others run different ones.
_RESHAPE = (
    _OTHERS
    + """
local count, differ, theirs = others(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return differ
"""
)

# A heartbeat: still running; the number of processes that are, and of those whose controls differ.
_BEAT = (
    _OTHERS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local count, differ = others(KEYS[2], KEYS[1], KEYS[3], ARGV[3], ARGV[1])
return {redis.call('ZCARD', KEYS[1]), differ}
"""
)


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
    """What a join found: the hash as {field: text}, whether this process took over or restored values,
    and how many of the processes running have other controls (a reload not made by all yet)."""

    def __init__(self, stored: dict[str, str], took_over: bool, restored: int, differ: int = 0) -> None:
        self.stored = stored
        self.took_over = took_over
        self.restored = restored
        self.differ = differ


class RedisStore:
    """One process's connection to the shared values of ``name`` at ``url``."""

    def __init__(self, url: str, name: str, process_id: str) -> None:
        self.process_id = process_id
        self.values_key = f"{name}:values"
        self.signature_key = f"{name}:signature"
        self.signatures_key = f"{name}:signatures"
        self.members_key = f"{name}:members"
        self.targets_key = f"{name}:targets"
        self.scenes_key = f"{name}:scenes"
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

    def scenes(self) -> tuple[bool, dict[str, str]]:
        """Whether any process filled Redis with its scenes yet, and the scenes it holds as JSON texts."""
        every = _translated(lambda: self.client.hgetall(self.scenes_key))
        found = {str(name): str(text) for name, text in every.items()}
        return found.pop(FILLED, None) is not None, found

    def put_scenes(self, scenes: dict[str, str | None]) -> None:
        """Store each scene (a JSON text) or delete it (None) and announce them, texts and all, in one step: every
        process takes the scenes announced in Redis's order, so two saving at once end on the same one."""
        message = json.dumps({"scenes": scenes, "process": self.process_id})

        def run() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self.scenes_key, FILLED, "1")  # (all deleted is not "never filled")
            for name, text in scenes.items():
                if text is None:
                    pipe.hdel(self.scenes_key, name)
                else:
                    pipe.hset(self.scenes_key, name, text)
            pipe.publish(self.channel, message)
            pipe.execute()

        _translated(run)

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
                4,
                self.values_key,
                self.signature_key,
                self.members_key,
                self.signatures_key,
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
        return Joined(dict(zip(flat[::2], flat[1::2], strict=True)), bool(int(reply[2])), int(reply[3]), int(reply[4]))

    def reshape(self, signature: str) -> int:
        """This process runs other controls now (a reload); how many of the others run different ones."""
        keys = (self.signatures_key, self.members_key, self.signature_key)
        return int(_translated(lambda: self.client.eval(_RESHAPE, 3, *keys, signature, self.process_id)))

    def read(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        """The JSON value and version Redis holds for each of ``ids`` it has."""
        fields = [f for cid in ids for f in (cid, f"{cid}:version")]
        reply = _translated(lambda: self.client.hmget(self.values_key, fields)) if fields else []
        found: dict[str, tuple[str, int]] = {}
        for at, cid in enumerate(ids):
            text, version = reply[2 * at], reply[2 * at + 1]
            if text is not None:
                found[cid] = (str(text), int(version or 0))
        return found

    def beat(self, signature: str) -> tuple[int, int]:
        """Still running; the number of processes that are, and of those that run other controls."""
        keys = (self.members_key, self.signatures_key, self.signature_key)
        reply = _translated(lambda: self.client.eval(_BEAT, 3, *keys, self.process_id, MEMBER_TTL_MS, signature))
        return int(reply[0]), int(reply[1])

    def targets(self, mine: list[str]) -> dict[str, list[str]]:
        """Say this process's OSC targets; the other running processes' own, by process."""

        def run() -> tuple[list[str], dict[str, str]]:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.targets_key, self.process_id, json.dumps(mine))
            pipe.zrange(self.members_key, 0, -1)
            pipe.hgetall(self.targets_key)
            _, members, found = pipe.execute()
            return list(members), dict(found)

        members, found = _translated(run)
        gone = [process for process in found if process not in members and process != self.process_id]
        if gone:  # a process that ended without leaving (killed): its line goes
            _translated(lambda: self.client.hdel(self.targets_key, *gone))
        others: dict[str, list[str]] = {}
        for process, text in found.items():
            if process == self.process_id or process in gone:
                continue
            try:
                listed = json.loads(text)
            except ValueError:
                continue
            if isinstance(listed, list):
                others[process] = [str(t) for t in listed]
        return others

    def leave(self) -> None:
        """No longer a member (best effort: Redis may be gone)."""

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.members_key, self.process_id)
            pipe.hdel(self.signatures_key, self.process_id)
            pipe.hdel(self.targets_key, self.process_id)
            pipe.execute()

        try:
            _translated(run)
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
