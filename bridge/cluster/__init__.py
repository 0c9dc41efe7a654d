"""Several bridge processes through Redis: the version protocol, the Redis store and the adapter.

Only :mod:`bridge.cluster.store` and :mod:`bridge.cluster.adapter` import redis;
a bridge without ``[cluster]`` imports neither.
"""
