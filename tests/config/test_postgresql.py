"""config.postgresql: a quiet connection passes its health check without a round trip; a dead one is replaced;
the volunteers' statements are prepared (tagging.rows.cursor(prepare=True)), others are not."""

import time
from collections.abc import Iterator
from unittest import mock

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql import base as django_postgresql
from django.test.utils import CaptureQueriesContext

from tagging import rows

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


def prepared(wrapper: BaseDatabaseWrapper) -> list[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_run_a_few_times_with_prepare_is_prepared_and_others_are_not(other) -> None:
    threshold = other.connection.prepare_threshold
    assert threshold is not None  # settings: DB_PREPARE_THRESHOLD, 5 unless set
    with mock.patch.object(rows, "connection", other):  # the module's connection, as a web process uses it
        for n in range(threshold + 1):
            assert rows.fetch_one("SELECT %s::int + 1 AS prepared_one", [n], prepare=True) == (n + 1,)
            assert rows.fetch_one("SELECT %s::int + 2 AS client_side", [n]) == (n + 2,)
    statements = prepared(other)
    assert any("prepared_one" in sql and "$1" in sql for sql in statements), statements
    assert not any("client_side" in sql for sql in statements)


def test_prepared_statements_are_in_the_query_log_with_their_values() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert rows.fetch_one("SELECT %s::int * 3 AS tripled", [14], prepare=True) == (42,)
    assert "SELECT 14::int * 3 AS tripled" in queries.captured_queries[-1]["sql"]


def test_prepare_errors_are_djangos() -> None:
    """A constraint broken through a prepared cursor raises Django's IntegrityError (votes rely on it)."""
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.fetch_one("INSERT INTO auth_group (name) VALUES (%s), (%s) RETURNING id", ["twice", "twice"],
                       prepare=True)


def test_prepared_statements_keep_their_generic_plan() -> None:
    # settings.py: otherwise PostgreSQL re-planned the one-statement next tile and vote on every call.
    assert rows.fetch_one("SHOW plan_cache_mode", [])[0] == "force_generic_plan"
    assert rows.fetch_one("SHOW random_page_cost", [])[0] == "1.1"  # the connection's other option stands
