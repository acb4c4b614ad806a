"""config.postgresql.operations and the migrations that use them: the busiest tables lose the indexes that repeat
another index's first column, and on PostgreSQL they are dropped without blocking writes."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db(transaction=True)

DROPPED = [("tagging_assignment", "tile_id"), ("tagging_assignment", "volunteer_id"),
           ("tagging_classification", "project_id"), ("tagging_classification", "volunteer_id"),
           ("imagery_tile", "grid_id")]


def own_index(table: str, column: str) -> list[str]:
    """The names of the plain indexes of the column alone."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return [name for name, c in found.items() if c["index"] and c["columns"] == [column] and not c["unique"]
            and not c["primary_key"]]


def foreign_key(table: str, column: str) -> bool:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return any(c["foreign_key"] and c["columns"] == [column] for c in found.values())


@pytest.mark.parametrize("table, column", DROPPED)
def test_a_foreign_key_that_leads_another_index_has_no_index_of_its_own(table: str, column: str) -> None:
    assert own_index(table, column) == []
    if connection.vendor == "postgresql":  # SQLite's introspection does not name its foreign keys' columns alike
        assert foreign_key(table, column)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="CONCURRENTLY and kept constraints (PostgreSQL)")
def test_on_postgresql_the_indexes_go_concurrently_and_the_constraints_stay() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([("tagging", "0013_live_lease_of_volunteer")])
    try:
        assert own_index("tagging_classification", "volunteer_id")  # back before 0014: the index again
        executor = MigrationExecutor(connection)
        with CaptureQueriesContext(connection) as ran:
            executor.migrate([("tagging", "0014_unindexed_leading_foreign_keys")])
    finally:
        MigrationExecutor(connection).migrate(latest)
    statements = [query["sql"] for query in ran.captured_queries]
    assert sum(sql.startswith("DROP INDEX CONCURRENTLY") for sql in statements) == 4, statements
    assert not any("CONSTRAINT" in sql and "ALTER TABLE" in sql for sql in statements), statements
    assert own_index("tagging_classification", "volunteer_id") == []
    assert foreign_key("tagging_classification", "volunteer_id")
