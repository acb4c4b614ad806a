"""config.cache: the shared Redis cache (production's) makes one Redis client per connection pool, and works
as Django's. The tests' own cache is in memory (conftest), so these build one on the run's Redis."""

import os
import threading
from unittest import mock

import pytest

from config.cache import RedisCache
from tagging.tasks_api import ClassificationCreate, CountingRateThrottle

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


def test_a_window_counts_from_one_and_expires(cache) -> None:
    cache.delete("window")
    assert [cache.count_in_window("window", 30) for _ in range(3)] == [1, 2, 3]
    ttl = cache._cache.get_client(write=True).ttl(cache.make_key("window"))
    assert 0 < ttl <= 30  # the counter expires: the window ends
    assert cache.get("window") == 3  # Django reads the counter too
    cache.delete("window")
    assert cache.count_in_window("window", 30) == 1  # a new window


def test_the_submit_throttle_counts_its_window_in_one_call_on_redis(cache, rf) -> None:
    throttle = CountingRateThrottle()
    throttle.cache = cache
    view = ClassificationCreate()
    request = rf.post("/")
    request.user = type("User", (), {"is_authenticated": True, "pk": 987654})()
    cache.delete(throttle.cache_format % {"scope": "submit", "ident": 987654})
    with mock.patch.object(cache._cache, "incr", side_effect=AssertionError("Django's incr: two round trips")):
        allowed = [throttle.allow_request(request, view) for _ in range(3)]
    assert allowed == [True, True, True]
    assert cache.get(throttle.cache_format % {"scope": "submit", "ident": 987654}) == 3


def test_a_window_still_counts_after_redis_forgets_the_script(cache) -> None:
    cache.delete("window")
    assert cache.count_in_window("window", 30) == 1
    cache._cache.get_client(write=True).script_flush()  # a restarted Redis holds no scripts
    assert cache.count_in_window("window", 30) == 2
