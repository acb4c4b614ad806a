"""tagging_next_tile, the claim as one PL/pgSQL function (migrations 0009, 0012): its candidate window."""

import threading

import pytest
from django.db import connection, connections, transaction

from imagery.models import Tile
from tagging.assignment import CANDIDATE_WINDOW, next_tile_for
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
