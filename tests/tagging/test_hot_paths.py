"""Query counts on the two requests every volunteer makes, so that they stay cheap."""

from types import SimpleNamespace

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
    # The token is read on the first request only, then remembered (tagging.tokens); the counts allow for it.
    # next-tile: the token, the project, then on PostgreSQL one statement (tagging_next_tile); on SQLite the
    # volunteer's state (held lease and votes so far), the candidate locked, the lease inserted (after a recount
    # under the lock), the tile's images, and one more lock and insert when the gold draw finds no gold tile and
    # falls back to an open one.
    # submit: the token, the tile with its project, then on PostgreSQL one statement (tagging_cast_vote); on SQLite
    # the tile locked with the voter's state, then the vote, its marks, the tile's count, the lease lapsing and the
    # tile marked for its consensus update.
    most_next, most_submit = (3, 3) if connection.vendor == "postgresql" else (8, 8)
    assert all(next_count <= most_next and submit_count <= most_submit for next_count, submit_count in counts), counts


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



@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The local cache's clock (Django's LocMemCache reads time.time()), moved by hand."""
    from django.core.cache.backends import base, locmem

    now = [1_000_000.0]
    fake = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(base, "time", fake)
    monkeypatch.setattr(locmem, "time", fake)
    return now


def test_a_token_is_read_once_then_remembered_for_a_while(volunteer, settings, clock) -> None:
    project_with_tiles()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")

    def token_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/v1/projects/raqqa/me/").status_code == 200
        return sum(1 for query in queries.captured_queries if "authtoken_token" in query["sql"])

    assert token_queries() == 1
    clock[0] += settings.TOKEN_CACHE_SECONDS - 1
    assert token_queries() == 0
    clock[0] += 1
    assert token_queries() == 1  # it had aged out
    settings.TOKEN_CACHE_SECONDS = 0
    assert token_queries() == 1 and token_queries() == 1


def test_a_remembered_token_of_a_deleted_account_is_refused_at_once(volunteer) -> None:
    from tagging.accounts import delete_account

    project_with_tiles()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")
    assert api.get("/api/v1/projects/raqqa/me/").status_code == 200
    delete_account(user=volunteer)
    refused = api.get("/api/v1/projects/raqqa/me/")
    assert refused.status_code == 403 and "Invalid token" in refused.json()["error"]["message"]


def test_a_change_made_elsewhere_reaches_a_remembered_token_within_its_time(volunteer, settings, clock) -> None:
    from django.contrib.auth import get_user_model

    project_with_tiles()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")
    assert api.get("/api/v1/projects/raqqa/me/").status_code == 200
    get_user_model().objects.filter(pk=volunteer.pk).update(is_active=False)  # no signal: as another process
    assert api.get("/api/v1/projects/raqqa/me/").status_code == 200  # still remembered
    clock[0] += settings.TOKEN_CACHE_SECONDS
    inactive = api.get("/api/v1/projects/raqqa/me/")
    assert inactive.status_code == 403 and "inactive" in inactive.json()["error"]["message"]


def test_next_tile_and_submit_answer_json_whatever_the_client_accepts(volunteer) -> None:
    project_with_tiles()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}", HTTP_ACCEPT="text/html")
    task = api.post("/api/v1/projects/raqqa/tasks/next/")
    assert task.status_code == 200 and task["Content-Type"] == "application/json"
    vote = api.post(f"/api/v1/tiles/{task.json()['tile']['id']}/classifications/", {"answer": "destroyed"},
                    format="json")
    assert vote.status_code == 201 and vote.json()["answer"] == "destroyed"


def test_the_hot_requests_read_json_bodies_and_leave_the_rest_to_drf(volunteer) -> None:
    """next-tile and submit read a JSON body themselves (tasks_api.json_body); what json.loads refuses (broken
    JSON, NaN) and what is not JSON (a form) still get DRF's parsers and its 400 for a parse error."""
    project_with_tiles()
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")
    first = api.post("/api/v1/projects/raqqa/tasks/next/", data=b"", content_type="application/json")
    assert first.status_code == 200
    tile = first.json()["tile"]["id"]
    # A JSON body is read: the excluded tile (the one on screen) is not handed back, another one is.
    second = api.post("/api/v1/projects/raqqa/tasks/next/", data=f'{{"exclude": [{tile}]}}',
                      content_type="application/json")
    assert second.status_code == 200 and second.json()["tile"]["id"] != tile
    broken = api.post(f"/api/v1/tiles/{tile}/classifications/", data=b'{"answer": "destroyed"',
                      content_type="application/json")
    assert broken.status_code == 400 and "JSON parse error" in broken.json()["error"]["message"]
    not_a_number = api.post(f"/api/v1/tiles/{tile}/classifications/",
                            data=b'{"answer": "destroyed", "marks": [{"x": NaN, "y": 3}]}',
                            content_type="application/json")
    assert not_a_number.status_code == 400 and "JSON parse error" in not_a_number.json()["error"]["message"]
    assert not volunteer.classifications.exists()
    form = api.post(f"/api/v1/tiles/{tile}/classifications/", {"answer": "destroyed"})  # multipart, DRF's parser
    assert form.status_code == 201 and form["Content-Type"] == "application/json"
    assert form.content.startswith(b'{"id":')  # DRF's compact rendering, as before


def test_nothing_left_is_a_204_without_a_body_or_a_type(volunteer) -> None:
    project_with_tiles(cols=1, rows=1)
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=volunteer).key}")
    tile = api.post("/api/v1/projects/raqqa/tasks/next/").json()["tile"]["id"]
    assert api.post(f"/api/v1/tiles/{tile}/classifications/", {"answer": "destroyed"}, format="json").status_code == 201
    done = api.post("/api/v1/projects/raqqa/tasks/next/")
    assert done.status_code == 204 and done.content == b"" and "Content-Type" not in done
    assert "every tile" in done["X-Message"]
