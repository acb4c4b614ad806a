"""Who gets which tile next."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.errors import Conflict
from imagery.models import Tile
from tagging.assignment import gold_probability, next_tile_for
from tagging.classifications import record_classification
from tagging.models import Assignment
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def vote(user, tile, answer: str = "no_damage") -> None:
    record_classification(volunteer=user, tile=tile, answer=answer, marks=[], seconds=10)


def test_the_next_task_names_the_tile_its_dated_images_the_question_and_the_lease(volunteer) -> None:
    project_with_tiles(dates=("2017-06-01", "2017-10-01"))
    api = APIClient()
    api.force_authenticate(volunteer)
    response = api.post("/api/v1/projects/raqqa/tasks/next/")
    assert response.status_code == 200
    body = response.json()
    assert [i["date"] for i in body["tile"]["images"]] == ["2017-06-01", "2017-10-01"]
    assert body["tile"]["size"] == 512
    assert 590 <= body["lease"]["seconds_left"] <= 600
    assert [a["key"] for a in body["answers"]] == ["destroyed", "damaged", "no_damage", "cant_tell"]
    assert "is_gold" not in str(body) and "gold" not in body


def test_a_reload_gets_the_same_lease_back_renewed(volunteer) -> None:
    project = project_with_tiles()
    first = next_tile_for(volunteer=volunteer, project=project)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    again = next_tile_for(volunteer=volunteer, project=project)
    assert again.pk == first.pk and (again.expires_at - timezone.now()).total_seconds() > 500


def test_a_volunteer_never_gets_the_same_tile_twice(volunteer) -> None:
    project = project_with_tiles(cols=3, rows=2)
    seen = []
    while (lease := next_tile_for(volunteer=volunteer, project=project)) is not None:
        seen.append(lease.tile_id)
        vote(volunteer, lease.tile)
    assert len(seen) == len(set(seen)) == 6


def test_a_skipped_tile_does_not_come_back(volunteer) -> None:
    project = project_with_tiles(cols=2, rows=1)
    first = next_tile_for(volunteer=volunteer, project=project)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = next_tile_for(volunteer=volunteer, project=project)
    assert second.tile_id != first.tile_id
    Assignment.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert next_tile_for(volunteer=volunteer, project=project) is None


def test_live_leases_count_towards_redundancy_and_expired_ones_free_the_tile(django_user_model) -> None:
    project = project_with_tiles(cols=1, rows=1, redundancy=2)
    users = [django_user_model.objects.create_user(f"v{i}") for i in range(3)]
    assert next_tile_for(volunteer=users[0], project=project) is not None
    assert next_tile_for(volunteer=users[1], project=project) is not None
    assert next_tile_for(volunteer=users[2], project=project) is None  # 0 votes + 2 live leases
    Assignment.objects.filter(volunteer=users[0]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert next_tile_for(volunteer=users[2], project=project) is not None


def test_a_tile_is_not_handed_out_once_it_has_its_votes(django_user_model) -> None:
    project = project_with_tiles(cols=1, rows=1, redundancy=2)
    tile = Tile.objects.get()
    for i in range(2):
        user = django_user_model.objects.create_user(f"v{i}")
        assert next_tile_for(volunteer=user, project=project).tile_id == tile.pk
        vote(user, tile)
    tile.refresh_from_db()
    assert (tile.vote_count, tile.status) == (2, "retired")
    assert next_tile_for(volunteer=django_user_model.objects.create_user("late"), project=project) is None


@pytest.mark.parametrize(("scheduling", "expected"), [("breadth_first", "fresh"), ("depth_first", "started")])
def test_scheduling_breadth_first_or_depth_first(django_user_model, scheduling: str, expected: str) -> None:
    project = project_with_tiles(cols=2, rows=1, redundancy=3, scheduling=scheduling)
    started, fresh = Tile.objects.order_by("col")
    vote(django_user_model.objects.create_user("early"), started)
    lease = next_tile_for(volunteer=django_user_model.objects.create_user("next"), project=project)
    assert lease.tile_id == {"fresh": fresh.pk, "started": started.pk}[expected]


def test_gold_tiles_are_mixed_in_more_often_for_newcomers(volunteer) -> None:
    assert gold_probability(project_rate=0.1, tiles_done=0) == pytest.approx(0.4)
    assert 0.1 < gold_probability(project_rate=0.1, tiles_done=20) < 0.25
    assert gold_probability(project_rate=0.1, tiles_done=500) == pytest.approx(0.1, abs=1e-6)
    project = project_with_tiles(cols=10, rows=10)
    Tile.objects.filter(pk__in=Tile.objects.order_by("pk").values("pk")[:50]).update(status="gold")
    rng = random.Random(1)
    kinds = []
    for _ in range(30):
        lease = next_tile_for(volunteer=volunteer, project=project, rng=rng)
        kinds.append(lease.is_gold)
        vote(volunteer, lease.tile)
    assert 0.15 < sum(kinds[:10]) / 10 <= 0.7  # a newcomer: about 40%
    assert not all(kinds)


def test_a_paused_project_hands_out_nothing(volunteer) -> None:
    project = project_with_tiles()
    project.status = "paused"
    project.save()
    with pytest.raises(Conflict, match="paused"):
        next_tile_for(volunteer=volunteer, project=project)
    api = APIClient()
    api.force_authenticate(volunteer)
    refused = api.post("/api/v1/projects/raqqa/tasks/next/")
    # The tagging page stops offering tiles on this code, and only on it.
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "project_not_open"


def test_a_vote_on_a_paused_project_is_refused_with_the_code_the_page_stops_on(volunteer, django_user_model) -> None:
    project = project_with_tiles(cols=2, rows=1, redundancy=1)
    api = APIClient()
    api.force_authenticate(volunteer)
    first = next_tile_for(volunteer=volunteer, project=project).tile
    assert api.post(f"/api/v1/tiles/{first.pk}/classifications/", {"answer": "destroyed"},
                    format="json").status_code == 201
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("other"))
    not_given = other.post(f"/api/v1/tiles/{first.pk}/classifications/", {"answer": "destroyed"}, format="json")
    assert not_given.status_code == 409 and not_given.json()["error"]["code"] == "conflict"
    second = next_tile_for(volunteer=volunteer, project=project).tile
    project.status = "paused"
    project.save()
    vote = api.post(f"/api/v1/tiles/{second.pk}/classifications/", {"answer": "destroyed"}, format="json")
    assert vote.status_code == 409 and vote.json()["error"]["code"] == "project_not_open"


def test_the_api_says_why_in_the_volunteers_language(volunteer) -> None:
    project = project_with_tiles()
    tile = next_tile_for(volunteer=volunteer, project=project).tile
    project.status = "paused"
    project.save()
    token = f"Token {Token.objects.create(user=volunteer).key}"
    api = APIClient(HTTP_AUTHORIZATION=token, HTTP_ACCEPT_LANGUAGE="ar")
    refused = api.post("/api/v1/projects/raqqa/tasks/next/")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == "المشروع «Raqqa» متوقّف مؤقّتًا، وليس مفتوحًا للوسم."
    vote = api.post(f"/api/v1/tiles/{tile.pk}/classifications/", {"answer": "destroyed"}, format="json")
    assert vote.status_code == 409 and "متوقّف مؤقّتًا" in vote.json()["error"]["message"]
    english = APIClient(HTTP_AUTHORIZATION=token)
    assert english.post("/api/v1/projects/raqqa/tasks/next/").json()["error"]["message"] == (
        "The project 'Raqqa' is paused, not open for tagging.")


def test_when_everything_is_seen_the_api_answers_204_with_a_message(volunteer) -> None:
    project_with_tiles(cols=1, rows=1)
    api = APIClient()
    api.force_authenticate(volunteer)
    task = api.post("/api/v1/projects/raqqa/tasks/next/").json()
    assert api.post(f"/api/v1/tiles/{task['tile']['id']}/classifications/",
                    {"answer": "no_damage", "seconds": 8}, format="json").status_code == 201
    done = api.post("/api/v1/projects/raqqa/tasks/next/")
    assert done.status_code == 204 and "every tile" in done["X-Message"]


def test_a_lease_is_renewed_while_the_volunteer_works(volunteer, outsider) -> None:
    project = project_with_tiles()
    lease = next_tile_for(volunteer=volunteer, project=project)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() + timedelta(seconds=30))
    api = APIClient()
    api.force_authenticate(volunteer)
    assert api.post(f"/api/v1/leases/{lease.pk}/renew/").json()["seconds_left"] >= 590
    other = APIClient()
    other.force_authenticate(outsider)
    assert other.post(f"/api/v1/leases/{lease.pk}/renew/").status_code == 404
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.post(f"/api/v1/leases/{lease.pk}/renew/").status_code == 409


def test_volunteers_arriving_together_spread_over_the_tiles_of_the_best_rank_only(django_user_model) -> None:
    """Breadth-first hands out a tile with the fewest votes; among equals each request takes its own pick, so that
    concurrent volunteers do not all queue for the same first rows (their locks, their recount)."""
    project = project_with_tiles(cols=4, rows=4, redundancy=20, gold_rate=0.0)
    voted = list(Tile.objects.order_by("pk")[:8])  # the first tiles in id order have a vote: a worse rank
    for tile in voted:
        vote(django_user_model.objects.create_user(f"early{tile.pk}"), tile)
    handed = [next_tile_for(volunteer=django_user_model.objects.create_user(f"v{i}"), project=project,
                            rng=random.Random(i)).tile_id for i in range(16)]
    assert not set(handed) & {tile.pk for tile in voted}
    assert len(set(handed)) >= 4, handed  # one tile for all of them without the per-request order
