"""bench.volunteers' stand-in for PostgreSQL's autovacuum: the same triggers, and it vacuums what is due."""

import psycopg
import pytest
from django.db import connection

from bench.volunteers.services import AutovacuumStandIn, _seconds, autovacuum_pace, autovacuum_settings, due

DEFAULTS = {"autovacuum_vacuum_threshold": 50.0, "autovacuum_vacuum_scale_factor": 0.2,
            "autovacuum_vacuum_insert_threshold": 1000.0, "autovacuum_vacuum_insert_scale_factor": 0.2,
            "autovacuum_analyze_threshold": 50.0, "autovacuum_analyze_scale_factor": 0.1}  # PostgreSQL 15's


def test_dead_rows_over_the_threshold_plus_a_fifth_of_the_table_are_due() -> None:
    # 20,000 tiles: autovacuum vacuums them once more than 50 + 4,000 rows are dead.
    assert due(("imagery_tile", 4050, 0, 0, 20_000.0), DEFAULTS) == (False, False)
    assert due(("imagery_tile", 4051, 0, 0, 20_000.0), DEFAULTS) == (True, False)


def test_inserts_alone_make_a_vacuum_due_and_changes_an_analyze() -> None:
    assert due(("tagging_classification", 0, 1001, 0, 0.0), DEFAULTS) == (True, False)
    assert due(("tagging_classification", 0, 0, 51, 0.0), DEFAULTS) == (False, True)
    assert due(("tagging_classification", 0, 1000, 50, 0.0), DEFAULTS) == (False, False)


def test_it_goes_at_autovacuums_pace_which_falls_back_to_vacuums_own_settings() -> None:
    server = {"vacuum_cost_delay": "0", "vacuum_cost_limit": "200"}
    assert autovacuum_pace({**server, "autovacuum_vacuum_cost_delay": "2ms", "autovacuum_vacuum_cost_limit": "-1"}
                           ) == {"vacuum_cost_delay": "2ms", "vacuum_cost_limit": "200"}
    assert autovacuum_pace({**server, "autovacuum_vacuum_cost_delay": "-1", "autovacuum_vacuum_cost_limit": "400"}
                           ) == {"vacuum_cost_delay": "0", "vacuum_cost_limit": "400"}


def test_durations_as_postgresql_shows_them() -> None:
    assert [_seconds(text) for text in ("1min", "30s", "500ms", "2h", "15")] == [60, 30, 0.5, 7200, 15]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="VACUUM and pg_stat_user_tables (PostgreSQL)")
def test_a_sweep_vacuums_a_table_full_of_dead_rows_and_leaves_a_quiet_one() -> None:
    server = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(host=server["HOST"], port=server["PORT"] or None,
                                              user=server["USER"], dbname=server["NAME"])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table, rows in (("stand_in_churned", 5000), ("stand_in_quiet", 10)):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, n integer)")
            conn.execute(f"INSERT INTO {table} SELECT i, 0 FROM generate_series(1, {rows}) i")
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("UPDATE stand_in_churned SET n = n + 1")  # 5,000 dead rows: over 50 + 1,000
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")  # the statistics are flushed at the end of the previous transaction
        try:
            stand_in = AutovacuumStandIn(conninfo, autovacuum_settings(conninfo))
            done = [run for run in stand_in.sweep() if " stand_in_" in run]
            assert done == ["VACUUM ANALYZE stand_in_churned"]
            conn.execute("SELECT pg_stat_clear_snapshot()")
            dead, vacuums = conn.execute("SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables "
                                         "WHERE relname = 'stand_in_churned'").fetchone()
            assert (dead, vacuums) == (0, 2)  # ours, and the sweep's
        finally:
            conn.execute("DROP TABLE stand_in_churned, stand_in_quiet")
