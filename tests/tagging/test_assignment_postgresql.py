"""tagging_next_tile, the claim as one PL/pgSQL function (migrations 0009, 0012): its candidate window; its commit,
which does not wait for the log when the claim is its own transaction (tagging.assignment.CLAIM_SQL); the index that
finds a volunteer's live lease (migration 0013); and both vote functions' generic plans and row estimate (0015)."""

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from imagery.models import Tile
from tagging import assignment, rows
from tagging.assignment import CANDIDATE_WINDOW, CLAIM_BY_ID, next_tile_for
from tagging.models import Assignment
from tests.tagging.helpers import project_with_tiles

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="the PL/pgSQL claim (PostgreSQL)")]


def test_the_functions_window_is_the_one_the_sqlite_claim_uses() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('tagging_next_tile'::regproc)")
        source = cursor.fetchone()[0]
    assert f"LIMIT {CANDIDATE_WINDOW})" in source


def test_when_others_hold_the_whole_window_locked_the_claim_looks_past_it(volunteer) -> None:
    project = project_with_tiles(cols=6, rows=6)  # 36 tiles: a window of 32 and 4 beyond it
    order = list(Tile.objects.filter(grid__project=project).order_by("-priority", "id").values_list("id", flat=True))
    window = order[:CANDIDATE_WINDOW]
    locked, release = threading.Event(), threading.Event()

    def hold_the_window() -> None:  # another volunteer's transaction, holding every tile of the window
        try:
            with transaction.atomic():
                list(Tile.objects.select_for_update().filter(id__in=window))
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_window)
    holder.start()
    try:
        assert locked.wait(30)
        lease = next_tile_for(volunteer=volunteer, project=project)
    finally:
        release.set()
        holder.join()
    assert lease is not None and lease.tile_id in order[CANDIDATE_WINDOW:]


def _claim_params(project, volunteer, *, lazy_commit: bool) -> dict:
    return {"project": project.pk, "volunteer": volunteer.pk, "now": timezone.now(),
            "expires": timezone.now() + timedelta(minutes=10), "salt": 7, "gold_draw": 0.99, "exclude": [],
            "newcomer": 0.0, "decay": 1.0, "cap": 10, "attempts": assignment.CLAIM_ATTEMPTS, "lazy_commit": lazy_commit}


def test_a_lazy_claim_turns_off_the_wait_for_the_log_of_its_own_transaction_only(volunteer) -> None:
    project = project_with_tiles()
    for lazy, within in ((True, "off"), (False, "on")):
        with transaction.atomic():
            mode, lease = rows.fetch_one(f"SELECT current_setting('synchronous_commit'), claimed.out_lease "
                                         f"FROM ({CLAIM_BY_ID}) claimed", _claim_params(project, volunteer,
                                                                                        lazy_commit=lazy))
            assert (mode, lease is not None) == (within, True)
        assert rows.fetch_one("SHOW synchronous_commit", [])[0] == "on"  # the session's setting is untouched


def test_the_claim_commits_lazily_when_it_is_its_own_transaction_and_never_a_callers(volunteer, monkeypatch) -> None:
    project = project_with_tiles()
    asked = []
    fetch_one = rows.fetch_one

    def spy(sql, params, **kwargs):
        if isinstance(params, dict) and "lazy_commit" in params:
            asked.append(params["lazy_commit"])
        return fetch_one(sql, params, **kwargs)

    monkeypatch.setattr(assignment.rows, "fetch_one", spy)
    first = next_tile_for(volunteer=volunteer, project=project)
    with transaction.atomic():  # a caller's transaction, which may write more than the lease: its commit waits
        second = next_tile_for(volunteer=volunteer, project=project, exclude=[first.tile_id])
        assert rows.fetch_one("SHOW synchronous_commit", [])[0] == "on"
    assert asked == [True, False]
    assert Assignment.objects.filter(pk__in=[first.pk, second.pk], volunteer=volunteer).count() == 2


def test_the_live_lease_is_found_by_an_index_with_the_expiry_built_without_blocking_writes() -> None:
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "tagging_assignment")
    assert indexes["live_lease_of_volunteer"]["columns"] == ["volunteer_id", "project_id", "expires_at"]
    assert "lease_of_volunteer_project" not in indexes
    sql = io.StringIO()
    call_command("sqlmigrate", "tagging", "0013", stdout=sql)
    assert 'CREATE INDEX CONCURRENTLY "live_lease_of_volunteer"' in sql.getvalue()
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "lease_of_volunteer_project"' in sql.getvalue()


def test_both_vote_functions_keep_one_generic_plan_per_statement_and_say_they_return_one_row() -> None:
    # Migration 0015: without it PL/pgSQL planned the claim's statements anew on every call, and the claim's
    # statement, expecting 1,000 leases, hashed the whole tile table to find the lease's tile. A migration that
    # redefines either function (CREATE OR REPLACE resets both) must set them again.
    with connection.cursor() as cursor:
        cursor.execute("""SELECT proname, proconfig, prorows FROM pg_proc
                          WHERE proname IN ('tagging_next_tile', 'tagging_cast_vote') ORDER BY proname""")
        settings = cursor.fetchall()
    assert settings == [("tagging_cast_vote", ["plan_cache_mode=force_generic_plan"], 1),
                        ("tagging_next_tile", ["plan_cache_mode=force_generic_plan"], 1)]


def test_the_claim_probes_whether_a_candidate_was_given_to_the_volunteer() -> None:
    # Migration 0016: as NOT EXISTS the generic plan compared every gold candidate with every lease the volunteer
    # ever had (24.7 ms for one with 1,534 leases); as a scalar subquery it is one index probe per candidate.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef('tagging_next_tile'::regproc)")
        source = cursor.fetchone()[0]
    assert "NOT EXISTS (SELECT 1 FROM tagging_assignment s" not in source
    assert source.count("WHERE s.tile_id = c.id AND s.volunteer_id = p_volunteer LIMIT 1) IS NULL") == 6
