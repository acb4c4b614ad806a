"""Query counts on the two requests every volunteer makes, so that they stay cheap."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def statements(queries: CaptureQueriesContext) -> int:
    """Queries but transaction control (BEGIN, COMMIT and savepoints differ from one database to another)."""
    return sum(1 for query in queries.captured_queries
               if not query["sql"].upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")))


def test_next_tile_and_submit_take_a_fixed_small_number_of_queries(volunteer) -> None:
    project_with_tiles(cols=4, rows=4, dates=("2017-06-01", "2017-10-01"))
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")
    counts = []
    for _ in range(6):  # no more queries as the volunteer's history grows
        with CaptureQueriesContext(connection) as next_queries:
            task = api.post("/api/v1/projects/raqqa/tasks/next/").json()
        with CaptureQueriesContext(connection) as submit_queries:
            response = api.post(f"/api/v1/tiles/{task['tile']['id']}/classifications/",
                                {"answer": "destroyed", "seconds": 9, "marks": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
                                format="json")
        assert response.status_code == 201
        counts.append((statements(next_queries), statements(submit_queries)))
    # next-tile: the token, the project, the volunteer's state (held lease and votes so far), the candidate locked,
    # the lease inserted (after a recount under the lock), the tile's images; one more lock and insert when the
    # gold draw finds no gold tile and falls back to an open one.
    # submit: the token, the tile with its project, the tile locked with the voter's state, then the vote, its marks,
    # the tile's count, the lease lapsing and the tile marked for its consensus update: one statement on PostgreSQL,
    # five on SQLite.
    most = 4 if connection.vendor == "postgresql" else 8
    assert all(next_count <= 8 and submit_count <= most for next_count, submit_count in counts), counts


def test_the_api_token_authenticates_and_a_bad_or_inactive_one_is_refused(volunteer) -> None:
    project_with_tiles()
    token = Token.objects.create(user=volunteer)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").post("/api/v1/projects/raqqa/tasks/next/").json()[
        "tile"]["id"]
    bad = APIClient(HTTP_AUTHORIZATION="Token not-a-token").post("/api/v1/projects/raqqa/tasks/next/")
    # 403, not 401: session authentication comes first and sends no WWW-Authenticate challenge (DRF's rule).
    assert bad.status_code == 403 and "Invalid token" in bad.json()["error"]["message"]
    volunteer.is_active = False
    volunteer.save()
    inactive = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").post("/api/v1/projects/raqqa/tasks/next/")
    assert inactive.status_code == 403 and "inactive" in inactive.json()["error"]["message"]
