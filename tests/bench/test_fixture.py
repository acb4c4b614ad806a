"""bench.volunteers' fixture leaves the planner's statistics as a live database would have them."""

import pytest
from django.db import connection

from bench.volunteers.fixture import vacuum_filled_tables


def reltuples(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="VACUUM and pg_class (PostgreSQL)")
def test_tables_with_rows_are_analyzed_and_empty_ones_left_never_analyzed() -> None:
    """An analyzed empty table is planned as empty until it is analyzed again: the benchmark's leases and votes
    were, while thousands of rows arrived (3x the database's CPU time per vote)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE fixture_filled (id integer PRIMARY KEY)")
        cursor.execute("INSERT INTO fixture_filled SELECT generate_series(1, 300)")
        cursor.execute("CREATE TABLE fixture_empty (id integer PRIMARY KEY)")
    try:
        assert (reltuples("fixture_filled"), reltuples("fixture_empty")) == (-1, -1)  # as migrate leaves them
        vacuum_filled_tables()
        assert (reltuples("fixture_filled"), reltuples("fixture_empty")) == (300, -1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE fixture_filled, fixture_empty")
