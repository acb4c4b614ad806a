"""config.cache: the shared Redis cache (production's) makes one Redis client per connection pool, and works
as Django's. The tests' own cache is in memory (conftest), so these build one on the run's Redis."""

import os
import threading

import pytest

from config.cache import RedisCache

pytestmark = pytest.mark.skipif(not os.environ.get("CACHE_URL", "").startswith("redis://"),
                                reason="a Redis server (CACHE_URL=redis://...)")


@pytest.fixture
def cache() -> RedisCache:
    return RedisCache(os.environ["CACHE_URL"], {"KEY_PREFIX": "config-cache-test"})


def test_one_client_serves_every_call_and_thread(cache) -> None:
    clients = [cache._cache.get_client(write=True)]
    threads = [threading.Thread(target=lambda: clients.append(cache._cache.get_client())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in clients}) == 1


def test_the_cache_still_counts_and_expires(cache) -> None:
    cache.delete("counter")
    assert cache.add("counter", 1, 30)
    assert not cache.add("counter", 1, 30)
    assert cache.incr("counter") == 2
    assert cache.get("counter") == 2
    assert cache.touch("counter", 0)  # expires at once
    assert cache.get("counter") is None
