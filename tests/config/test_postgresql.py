"""config.postgresql: a quiet connection passes its health check without a round trip; a dead one is replaced."""

import time
from collections.abc import Iterator
from unittest import mock

import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql import base as django_postgresql

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend (DATABASE_URL=postgres://)"),
]


@pytest.fixture
def other() -> Iterator[BaseDatabaseWrapper]:
    """A connection of its own, outside the test's transaction, as a web process holds one between requests."""
    wrapper = connection.copy()
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


@pytest.fixture
def select_1() -> Iterator[mock.MagicMock]:
    """Django's own check (a SELECT 1 round trip), counted."""
    with mock.patch.object(django_postgresql.DatabaseWrapper, "is_usable", autospec=True,
                           side_effect=django_postgresql.DatabaseWrapper.is_usable) as spy:
        yield spy


def test_the_engine_is_ours() -> None:
    assert type(connections["default"]).__module__ == "config.postgresql.base"


def test_a_quiet_connection_passes_without_a_round_trip(other, select_1) -> None:
    assert other.is_usable()
    assert select_1.call_count == 0


def test_a_connection_the_server_ended_fails_and_is_replaced(other, select_1) -> None:
    pid = other.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone() == (True,)
    deadline = time.monotonic() + 10
    while other.is_usable() and time.monotonic() < deadline:  # the server's goodbye takes a moment to arrive
        time.sleep(0.05)
    assert not other.is_usable()
    assert select_1.call_count >= 1  # the socket spoke, so the server was asked

    other.health_check_enabled, other.health_check_done = True, False  # as at the start of a request
    other.close_if_health_check_failed()
    assert other.connection is None
    with other.cursor() as cursor:  # a new connection, so the request goes through
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_connection_inside_a_transaction_is_asked(other, select_1) -> None:
    other.connection.execute("BEGIN")
    assert other.is_usable()
    assert select_1.call_count == 1
