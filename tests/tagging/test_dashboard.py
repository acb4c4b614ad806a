"""The dashboard's figures, checked against values worked out by hand on a small project, and who may see them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imagery.models import ImageryLayer, Tile
from tagging.dashboard import project_dashboard
from tagging.models import Classification, Membership, Project, TileConsensus, VolunteerReliability
from tests.clients import client_for
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def city(django_user_model):
    """Six tiles (3 x 2), redundancy 3, two dates; the second still being cut into tiles.

    tile:     0        1     2       3       4       5
    status:   retired  gold  open    open    open    open
    votes:    3        0     2       0       1       3
    needed:   -        -     1       3       2       0      -> 6 votes still needed
    """
    project = project_with_tiles("city", cols=3, rows=2, dates=("2017-06-01", "2017-09-01"), redundancy=3,
                                 is_public=False)
    ImageryLayer.objects.filter(project=project, date="2017-09-01").update(status="tiling", tiles_done=3,
                                                                           tiles_total=12)
    tiles = list(Tile.objects.filter(grid__project=project).order_by("row", "col"))
    for tile, status, votes in zip(tiles, ["retired", "gold", "open", "open", "open", "open"], [3, 0, 2, 0, 1, 3]):
        Tile.objects.filter(pk=tile.pk).update(status=status, vote_count=votes)
    users = [django_user_model.objects.create_user(f"v{i}") for i in range(1, 4)]
    return project, tiles, users


def vote(project, tile, user, days_ago: float, **fields) -> Classification:
    vote = Classification.objects.create(project=project, tile=tile, volunteer=user, answer="destroyed", **fields)
    Classification.objects.filter(pk=vote.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return vote


@pytest.fixture
def voted(city):
    project, tiles, (v1, v2, v3) = city
    for user in (v1, v2, v3):
        vote(project, tiles[0], user, 0)            # today: 3 votes by 3 volunteers
    vote(project, tiles[2], v1, 1)                  # yesterday: 2 votes by 2 volunteers
    vote(project, tiles[2], v2, 1)
    vote(project, tiles[4], v1, 3)                  # 3 days ago: 2 votes by 1 volunteer, one on a gold tile
    vote(project, tiles[1], v1, 3, is_gold=True)
    vote(project, tiles[5], v2, 10, too_fast=True)  # 10 days ago: too fast, not counted
    vote(project, tiles[5], v3, 70)                 # before the 60 days of the series
    for tile, agreement in zip(tiles, [1.0, 0.7, 0.3, 0.35, None, 0.0]):
        TileConsensus.objects.create(tile=tile, project=project, label="destroyed", confidence=0.9,
                                     agreement=agreement, method="test")
    for user, reliability in zip((v1, v2, v3), (0.9, 0.5, -0.1)):
        VolunteerReliability.objects.create(project=project, volunteer=user, reliability=reliability, accuracy=0.8,
                                            n_votes=4)
    return city


def test_the_tile_figures_and_what_is_left(voted) -> None:
    project, _, _ = voted
    figures = project_dashboard(project=project)
    assert figures["tiles"] == {"total": 6, "open": 4, "retired": 1, "gold": 1, "votes_needed": 6}
    assert figures["left"]["votes_needed"] == 6
    # The last 7 days' counted votes on ordinary tiles: 3 today, 2 yesterday, 1 three days ago = 6 in 7 days.
    assert figures["votes"]["pace_per_day"] == round(6 / 7, 2)
    assert figures["left"]["days_left"] == 7  # 6 votes at 0.86 a day
    assert figures["left"]["finish_date"] == timezone.localdate() + timedelta(days=7)


def test_the_vote_figures(voted) -> None:
    project, _, _ = voted
    votes = project_dashboard(project=project)["votes"]
    assert votes == {"total": 9, "counted": 8, "too_fast": 1, "volunteers": 3, "pace_days": 7,
                     "pace_per_day": 0.86}


def test_votes_and_volunteers_per_day_cover_sixty_days_with_zeros(voted) -> None:
    project, _, _ = voted
    series = project_dashboard(project=project)["per_day"]
    today = timezone.localdate()
    assert len(series) == 60
    assert series[0]["date"] == today - timedelta(days=59) and series[-1]["date"] == today
    by_day = {(today - row["date"]).days: (row["votes"], row["volunteers"]) for row in series if row["votes"]}
    assert by_day == {0: (3, 3), 1: (2, 2), 3: (2, 1), 10: (1, 1)}  # the vote of 70 days ago is not in it


def test_the_agreement_histogram_has_ten_bins(voted) -> None:
    project, _, _ = voted
    histogram = project_dashboard(project=project)["agreement"]
    assert [b["tiles"] for b in histogram["bins"]] == [1, 0, 0, 2, 0, 0, 0, 1, 0, 1]  # 0.0 | 0.3 0.35 | 0.7 | 1.0
    assert (histogram["bins"][3]["low"], histogram["bins"][3]["high"]) == (0.3, 0.4)
    assert histogram["without_agreement"] == 1


def test_reliability_shows_the_top_and_the_bottom_without_repeating_anyone(voted) -> None:
    project, _, _ = voted
    reliability = project_dashboard(project=project, reliability_rows=2)["reliability"]
    assert reliability["volunteers"] == 3
    assert [r.volunteer.username for r in reliability["top"]] == ["v1", "v2"]
    assert [r.volunteer.username for r in reliability["bottom"]] == ["v3"]


def test_layers_show_tiling_progress_and_tiles_per_status(voted) -> None:
    project, _, _ = voted
    first, second = project_dashboard(project=project)["layers"]
    assert (first["status"], first["progress"]) == ("ready", 1.0)
    assert (second["status"], second["progress"], second["tiles_done"], second["tiles_total"]) == (
        "tiling", 0.25, 3, 12)
    assert first["tiles"] == {"tiles": 6, "open": 4, "retired": 1, "gold": 1}


def test_a_project_without_recent_votes_has_no_estimate_and_a_finished_one_needs_nothing(city) -> None:
    project, tiles, _ = city
    assert project_dashboard(project=project)["left"] == {"votes_needed": 6, "days_left": None, "finish_date": None}
    Tile.objects.filter(grid__project=project, status="open").update(status="retired")
    left = project_dashboard(project=project)["left"]
    assert (left["votes_needed"], left["days_left"]) == (0, 0)


def test_the_number_of_queries_does_not_grow_with_the_project(voted, django_user_model) -> None:
    """Every figure is an aggregate query: 6 tiles or 60, 9 votes or 90, the same queries."""
    project, _, _ = voted
    with CaptureQueriesContext(connection) as small:
        project_dashboard(project=project)
    big = project_with_tiles("big", cols=10, rows=6, redundancy=3)
    users = [django_user_model.objects.create_user(f"b{i}") for i in range(10)]
    for tile in Tile.objects.filter(grid__project=big):
        for user in users[:3]:
            vote(big, tile, user, tile.pk % 20)
        TileConsensus.objects.create(tile=tile, project=big, label="destroyed", confidence=0.9, agreement=0.5,
                                     method="test")
    with CaptureQueriesContext(connection) as large:
        figures = project_dashboard(project=big)
    assert figures["votes"]["total"] == 180 and figures["tiles"]["total"] == 60
    assert len(large.captured_queries) == len(small.captured_queries) <= 11


# --- The API ---------------------------------------------------------------------------------------------------

@pytest.fixture
def people(voted, django_user_model, admin_user, platform_admin, outsider):
    project, _, _ = voted
    made = {"anonymous": None, "outsider": outsider, "admin": admin_user, "platform admin": platform_admin}
    for role in ("volunteer", "coordinator", "manager"):
        made[role] = django_user_model.objects.create_user(f"the-{role}")
        Membership.objects.create(project=project, user=made[role], role=role)
    return made


@pytest.mark.parametrize(("who", "expected"), [
    ("anonymous", (401, 403)), ("outsider", (404,)), ("volunteer", (403,)), ("coordinator", (200,)),
    ("manager", (200,)), ("admin", (200,)), ("platform admin", (200,))])
def test_who_may_see_the_dashboard(people, who: str, expected: tuple[int, ...]) -> None:
    response = client_for(people[who]).get("/api/v1/projects/city/dashboard/")
    assert response.status_code in expected, response.content


def test_the_dashboard_api_answers_with_every_figure(people) -> None:
    response = client_for(people["coordinator"]).get("/api/v1/projects/city/dashboard/")
    body = response.json()
    assert body["tiles"] == {"total": 6, "open": 4, "retired": 1, "gold": 1, "votes_needed": 6}
    assert body["votes"]["total"] == 9 and len(body["per_day"]) == 60
    assert body["per_day"][-1] == {"date": str(timezone.localdate()), "votes": 3, "volunteers": 3}
    assert [b["tiles"] for b in body["agreement"]["bins"]] == [1, 0, 0, 2, 0, 0, 0, 1, 0, 1]
    assert body["reliability"]["top"][0]["volunteer"] == "v1"
    assert body["reliability"]["top"][0]["reliability"] == 0.9
    assert [layer["status"] for layer in body["layers"]] == ["ready", "tiling"]
    assert body["left"]["days_left"] == 7
    assert body["status"] == Project.Status.ACTIVE
    assert body["allowed_status"] == ["draft", "finished", "paused"]
