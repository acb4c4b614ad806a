"""The shared cache on Redis: Django's backend, with one Redis client per connection pool.

Django's RedisCacheClient builds a new redis.Redis for every call. Building one fills its table
of some 200 response callbacks, which took about as much of the process's time as the command
itself in a profile of a vote (about 5% of its Python time); the submit throttle
(tagging.tasks_api) makes one call on every vote. A redis.Redis is safe to share between threads
(its pool hands each command a connection of its own) and across a fork (the pool notices the new
process and reconnects).
"""

import threading
from typing import Any

from django.core.cache.backends import redis


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            with self._lock:
                if index not in self._clients:
                    self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
                client = self._clients[index]
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._count_script: Any = None  # redis.commands.core.Script, made with the first client

    def count_in_window(self, key: str, seconds: int) -> int:
        """Add one to the key's counter and return it; a counter that does not exist starts at 1 and expires
        `seconds` later. One command, atomic (a script: SET NX EX, INCR): Django's add, incr and touch take
        two to four round trips, and a counter that expires between them is made anew without an expiry.
        A script is one EVALSHA; a MULTI pipeline of the same two commands cost the process about 1.5 times
        as much Python (0.9 against 0.58 ms per call under cProfile, in a profile of votes)."""
        key = self.make_and_validate_key(key)
        client = self._cache.get_client(key, write=True)
        if self._count_script is None:
            self._count_script = client.register_script(COUNT_IN_WINDOW)
        return int(self._count_script(keys=[key], args=[seconds], client=client))


COUNT_IN_WINDOW = """redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])"""
