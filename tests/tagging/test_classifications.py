"""Answering a tile: validation, ground coordinates, exactly once, too-fast answers, gold feedback."""

import pytest
from rest_framework.test import APIClient

from imagery.models import Tile
from tagging.assignment import next_tile_for
from tagging.models import Classification, GoldAnswer, Mark
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(volunteer) -> APIClient:
    client = APIClient()
    client.force_authenticate(volunteer)
    return client


def submit(api: APIClient, tile: Tile, **body: object):
    return api.post(f"/api/v1/tiles/{tile.pk}/classifications/", body, format="json")


def test_marks_are_stored_with_their_ground_coordinates(api, volunteer, django_capture_on_commit_callbacks) -> None:
    project = project_with_tiles(dates=("2017-06-01", "2017-10-01"))
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = submit(api, tile, answer="destroyed", seconds=12.5,
                          marks=[{"x": 120.5, "y": 88, "date": "2017-10-01"}, {"x": 0, "y": 512}])
    assert response.status_code == 201, response.json()
    assert len(callbacks) == 1  # the tile's update is enqueued after commit
    body = response.json()
    # Tile pixel (x, y) from the tile's top-left corner, 0.5 m pixels, y growing south.
    assert body["marks"][0]["ground_x"] == pytest.approx(tile.minx + 60.25)
    assert body["marks"][0]["ground_y"] == pytest.approx(tile.maxy - 44.0)
    assert body["marks"][0]["date"] == "2017-10-01" and body["marks"][1]["date"] is None
    assert body["marks"][1]["ground_y"] == pytest.approx(tile.miny)
    tile.refresh_from_db()
    assert tile.vote_count == 1
    mark = Mark.objects.get(x=120.5)
    assert (mark.layer.date.isoformat(), mark.classification.answer) == ("2017-10-01", "destroyed")


def test_a_replayed_submit_returns_the_stored_vote_and_counts_once(api, volunteer) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    first = submit(api, tile, answer="destroyed", marks=[{"x": 10, "y": 10}], seconds=9)
    again = submit(api, tile, answer="no_damage", seconds=9)  # a retry with a changed body changes nothing
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["answer"] == "destroyed"
    tile.refresh_from_db()
    assert tile.vote_count == 1
    assert Classification.objects.count() == 1 and Mark.objects.count() == 1


def test_a_replay_whose_input_no_longer_passes_still_gets_the_stored_vote(api, volunteer) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    first = submit(api, tile, answer="destroyed", seconds=9)
    again = submit(api, tile, answer="flattened", seconds=9)  # not an answer of the project (any more)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and Classification.objects.count() == 1


BAD = [
    ({"answer": "flattened"}, "answer", "not an answer of this project"),
    ({"answer": "no_damage", "marks": [{"x": 5, "y": 5}]}, "marks", "Marks go with an answer that says"),
    ({"answer": "destroyed", "marks": [{"x": 600, "y": 5}]}, "marks", "outside the tile"),
    ({"answer": "destroyed", "marks": [{"x": -1, "y": 5}]}, "marks", "outside the tile"),
    ({"answer": "destroyed", "marks": [{"x": 5, "y": 5, "date": "2001-01-01"}]}, "marks", "not one of this project"),
    ({"answer": "destroyed", "marks": [{"x": "left", "y": 5}]}, "marks", "marks"),
    ({"answer": "destroyed", "marks": [{"x": 1, "y": 1}] * 201}, "marks", "At most 200 marks"),
    ({"answer": "destroyed", "seconds": -4}, "seconds", "seconds must be"),
    ({}, "answer", "answer"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD)
def test_bad_classifications_are_a_400_naming_the_field(api, volunteer, body: dict, field: str, message: str) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    response = submit(api, tile, **body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert field in error["fields"] and message in error["message"]
    assert not Classification.objects.exists()
    tile.refresh_from_db()
    assert tile.vote_count == 0


def test_implausibly_fast_answers_are_kept_but_not_counted(api, volunteer) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    response = submit(api, tile, answer="no_damage", seconds=0.3)
    assert response.status_code == 201 and response.json()["too_fast"] is True
    tile.refresh_from_db()
    assert tile.vote_count == 0 and Classification.objects.get().too_fast


def test_a_full_tile_not_leased_to_the_volunteer_is_refused(api, django_user_model) -> None:
    project_with_tiles(cols=1, rows=1, redundancy=1)
    tile = Tile.objects.get()
    other = django_user_model.objects.create_user("other")
    submit_other = APIClient()
    submit_other.force_authenticate(other)
    assert submit(submit_other, tile, answer="no_damage", seconds=5).status_code == 201
    response = submit(api, tile, answer="no_damage", seconds=5)
    assert response.status_code == 409 and "not given to you" in response.json()["error"]["message"]


def test_outsiders_cannot_answer_tiles_of_private_projects(outsider) -> None:
    project = project_with_tiles(is_public=False)
    api = APIClient()
    api.force_authenticate(outsider)
    assert submit(api, Tile.objects.filter(grid__project=project).first(), answer="no_damage").status_code == 404


def test_a_gold_tile_answers_with_feedback(api, volunteer) -> None:
    project = project_with_tiles(cols=1, rows=1)
    tile = Tile.objects.get()
    Tile.objects.filter(pk=tile.pk).update(status="gold")
    GoldAnswer.objects.create(tile=tile, answer="destroyed", marks=[[100, 100], [300, 300]])
    assert next_tile_for(volunteer=volunteer, project=project).is_gold
    response = submit(api, tile, answer="destroyed", seconds=20, marks=[{"x": 105, "y": 98}, {"x": 450, "y": 20}])
    gold = response.json()["gold"]
    assert gold == {"correct": True, "answer": "destroyed", "found": [[100, 100]], "missed": [[300, 300]],
                    "wrong_marks": [[450.0, 20.0]]}
    tile.refresh_from_db()
    assert tile.status == "gold"  # gold tiles never retire


def test_the_refresh_task_recomputes_the_vote_count_from_the_votes(volunteer) -> None:
    from tagging.classifications import record_classification, refresh_tile

    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    record_classification(volunteer=volunteer, tile=tile, answer="no_damage", marks=[], seconds=5)
    Tile.objects.filter(pk=tile.pk).update(vote_count=7)  # drift, however it came about
    assert refresh_tile(tile_id=tile.pk) == 1
    tile.refresh_from_db()
    assert tile.vote_count == 1
    assert refresh_tile(tile_id=999_999) == 0
