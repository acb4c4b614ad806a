"""Query counts on the two requests every volunteer makes, so that they stay cheap."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def test_next_tile_and_submit_take_a_fixed_small_number_of_queries(volunteer) -> None:
    project_with_tiles(cols=4, rows=4, dates=("2017-06-01", "2017-10-01"))
    api = APIClient()
    api.force_authenticate(volunteer)
    counts = []
    for _ in range(6):  # no more queries as the volunteer's history grows
        with CaptureQueriesContext(connection) as next_queries:
            task = api.post("/api/v1/projects/raqqa/tasks/next/").json()
        with CaptureQueriesContext(connection) as submit_queries:
            response = api.post(f"/api/v1/tiles/{task['tile']['id']}/classifications/",
                                {"answer": "destroyed", "seconds": 9, "marks": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
                                format="json")
        assert response.status_code == 201
        counts.append((len(next_queries), len(submit_queries)))
    # next-tile: 10 (with the recount of live leases once the tile is locked, see assignment._has_room),
    # or 11 when the gold draw finds no gold tile and falls back to an open one.
    assert all(next_count <= 11 and submit_count <= 11 for next_count, submit_count in counts), counts
