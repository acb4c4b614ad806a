"""PostgreSQL: a vote through the API is one statement (tagging.classifications.vote_in_one_statement: the tile's,
grid's and project's rows, the checks and tagging_cast_vote) when the project is open to the voter and the input is
valid, and it stores and answers exactly what the long way (access_tile_to_answer, record_classification) does.
Every other case goes the long way, which words the error or returns the stored vote, as before."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imagery.models import Tile
from tagging.assignment import next_tile_for
from tagging.classifications import MarkInput, vote_in_one_statement
from tagging.models import Classification, GoldAnswer, Mark, Membership, Project
from tests.clients import client_for
from tests.tagging.helpers import project_with_tiles

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement vote (PostgreSQL)")]


def submit(api, tile_id: int, **body: object):
    return api.post(f"/api/v1/tiles/{tile_id}/classifications/", body, format="json")


def test_a_vote_with_dated_marks_is_one_statement_and_answers_what_it_stored(volunteer) -> None:
    project = project_with_tiles(dates=("2017-06-01", "2017-10-01", "2018-02-01"))
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    marks = [{"x": 120.5, "y": 88, "date": "2017-10-01"}, {"x": 0, "y": tile.size}, {"x": 3.25, "y": 7,
                                                                                     "date": "2018-02-01"}]
    with CaptureQueriesContext(connection) as queries:
        response = submit(client_for(volunteer), tile.pk, answer="destroyed", seconds=12.5, marks=marks)
    assert response.status_code == 201, response.json()
    assert len(queries) == 1
    body = response.json()
    stored = Classification.objects.get(pk=body["id"])
    assert (stored.answer, stored.seconds, stored.too_fast, stored.is_gold) == ("destroyed", 12.5, False, False)
    rows = list(Mark.objects.filter(classification=stored).select_related("layer").order_by("pk"))
    # Exactly the stored values: the statement and the answer compute the ground coordinates alike.
    assert [(m["x"], m["y"], m["ground_x"], m["ground_y"], m["date"]) for m in body["marks"]] == [
        (r.x, r.y, r.ground_x, r.ground_y, r.layer.date.isoformat() if r.layer else None) for r in rows]
    assert body["marks"][0]["ground_x"] == pytest.approx(tile.minx + 60.25)
    assert body["marks"][1]["ground_y"] == pytest.approx(tile.miny)
    assert body["gold"] is None
    tile.refresh_from_db()
    assert tile.vote_count == 1


def test_a_gold_vote_gets_its_feedback_from_the_same_statement(volunteer) -> None:
    project = project_with_tiles(cols=1, rows=1)
    tile = Tile.objects.get()
    Tile.objects.filter(pk=tile.pk).update(status="gold")
    GoldAnswer.objects.create(tile=tile, answer="destroyed", marks=[[100, 100], [300, 300]])
    assert next_tile_for(volunteer=volunteer, project=project).is_gold
    with CaptureQueriesContext(connection) as queries:
        response = submit(client_for(volunteer), tile.pk, answer="destroyed", seconds=20,
                          marks=[{"x": 105, "y": 98}, {"x": 450, "y": 20}])
    assert len(queries) == 1
    assert response.json()["gold"] == {"correct": True, "answer": "destroyed", "found": [[100, 100]],
                                       "missed": [[300, 300]], "wrong_marks": [[450.0, 20.0]]}


@pytest.mark.parametrize("body, field", [
    ({"answer": "maybe"}, "answer"),
    ({"answer": "no_damage", "marks": [{"x": 1, "y": 1}]}, "marks"),
    ({"answer": "destroyed", "marks": [{"x": 1, "y": 9999}]}, "marks"),
    ({"answer": "destroyed", "marks": [{"x": 1, "y": 1, "date": "2016-01-01"}]}, "marks"),
    ({"answer": "destroyed", "seconds": -1}, "seconds"),
])
def test_input_the_checks_refuse_is_not_voted_on_and_is_a_400_naming_the_field(volunteer, body, field) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    marks = [MarkInput(m["x"], m["y"], m.get("date")) for m in body.get("marks", [])]
    assert vote_in_one_statement(volunteer=volunteer, tile_id=tile.pk, answer=body["answer"], marks=marks,
                                 seconds=body.get("seconds")) is None
    response = submit(client_for(volunteer), tile.pk, **body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Classification.objects.exists()


def test_private_projects_members_vote_in_one_statement_admins_the_long_way_others_not_at_all(
        volunteer, admin_user, django_user_model) -> None:
    project = project_with_tiles(is_public=False)
    Membership.objects.create(project=project, user=volunteer)
    tiles = list(Tile.objects.order_by("pk"))
    next_tile_for(volunteer=volunteer, project=project)
    with CaptureQueriesContext(connection) as queries:
        assert submit(client_for(volunteer), tiles[0].pk, answer="no_damage", seconds=5).status_code == 201
    assert len(queries) == 1
    assert vote_in_one_statement(volunteer=admin_user, tile_id=tiles[1].pk, answer="no_damage", marks=[],
                                 seconds=5) is None
    assert submit(client_for(admin_user), tiles[1].pk, answer="no_damage", seconds=5).status_code == 201
    stranger = django_user_model.objects.create_user("stranger")
    refused = submit(client_for(stranger), tiles[2].pk, answer="no_damage", seconds=5)
    assert refused.status_code == 404
    assert refused.json()["error"]["message"] == f"There is no tile {tiles[2].pk} that you can see."
    unreadable = client_for(stranger).post(f"/api/v1/tiles/{tiles[2].pk}/classifications/", "{not json",
                                           content_type="application/json")
    assert unreadable.status_code == 404  # not a 400 that would tell them the tile is there
    assert client_for(volunteer).post(f"/api/v1/tiles/{tiles[2].pk}/classifications/", "{not json",
                                      content_type="application/json").status_code == 400
    assert submit(client_for(stranger), 10**9, answer="no_damage").status_code == 404
    assert Classification.objects.filter(volunteer=stranger).count() == 0


def test_a_replay_gets_the_stored_vote_and_a_paused_project_a_worded_conflict(volunteer) -> None:
    project = project_with_tiles()
    api = client_for(volunteer)
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    first = submit(api, tile.pk, answer="destroyed", marks=[{"x": 10, "y": 10}], seconds=9)
    again = submit(api, tile.pk, answer="no_damage", seconds=9)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["answer"] == "destroyed"
    other = next_tile_for(volunteer=volunteer, project=project).tile
    Project.objects.filter(pk=project.pk).update(status=Project.Status.PAUSED)
    paused = submit(api, other.pk, answer="no_damage", seconds=9)
    assert paused.status_code == 409 and paused.json()["error"]["code"] == "project_not_open"
    assert Classification.objects.count() == 1
