"""The published results for volunteers: the consensus map with their own tiles and confirmed buildings, and
only once published, only to those who took part, and never anyone else's answers."""

from __future__ import annotations

import json
import re

import pytest
from django.utils import timezone, translation

from imagery.models import Grid, Tile
from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.models import Building, Classification, Membership, TileConsensus
from tagging.review_views import destroyed_window
from tagging.reviews import create_review
from tests.clients import client_for, member
from tests.consensus.crowd_db import CrowdProject, crowd_project

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=5, n_rows=5, n_volunteers=10, activity_sigma=0.8, gold_rate=0.1, destroyed_per_tile=0.8,
                 seed=5)
BASE = "/api/v1/projects/town/results"


@pytest.fixture
def made() -> CrowdProject:
    made = crowd_project(SPEC, slug="town")
    recompute_project(project_id=made.project.pk)
    return made


@pytest.fixture
def worker(made):
    """The volunteer with the most votes."""
    counts = Classification.objects.filter(project=made.project).values_list("volunteer_id", flat=True)
    top = max(set(counts), key=list(counts).count)
    return made.project.classifications.filter(volunteer_id=top).first().volunteer


def publish(made: CrowdProject) -> None:
    made.project.published_at = timezone.now()
    made.project.save(update_fields=["published_at"])


def get(user, path: str) -> tuple[int, dict]:
    response = client_for(user).get(f"{BASE}/{path}")
    return response.status_code, json.loads(response.content)


def confirmed_marked_by(made: CrowdProject, user) -> set[int]:
    mine = set(Classification.objects.filter(project=made.project, volunteer=user).values_list("id", flat=True))
    return {b.pk for b in Building.objects.filter(project=made.project, confidence__gte=0.5)
            if mine.intersection(b.classification_ids)}


def test_a_volunteer_sees_the_consensus_with_their_own_tiles_and_buildings_after_publication(made, worker) -> None:
    publish(made)
    status, tiles = get(worker, "tiles.geojson")
    assert status == 200
    my_tiles = set(Classification.objects.filter(project=made.project, volunteer=worker).values_list("tile_id",
                                                                                                     flat=True))
    assert {f["id"] for f in tiles["features"] if f["properties"]["mine"]} == my_tiles
    assert len(tiles["features"]) == TileConsensus.objects.filter(project=made.project).count()
    labels = dict(TileConsensus.objects.filter(project=made.project).values_list("tile_id", "label"))
    assert all(f["properties"]["label"] == labels[f["id"]] for f in tiles["features"])

    status, buildings = get(worker, "buildings.geojson")
    assert status == 200
    expected_mine = confirmed_marked_by(made, worker)
    assert expected_mine, "the crowd should give this volunteer some confirmed buildings"
    assert {f["id"] for f in buildings["features"] if f["properties"]["mine"]} == expected_mine
    assert {f["id"] for f in buildings["features"]} == set(
        Building.objects.filter(project=made.project, confidence__gte=0.5).values_list("id", flat=True))
    assert buildings["properties"] == {"kind": "buildings", "count": len(buildings["features"]),
                                       "mine": len(expected_mine), "truncated": False}

    status, summary = get(worker, "")
    assert status == 200 and summary["tiles"] == len(my_tiles)
    assert summary["buildings_confirmed"] == len(expected_mine)
    assert summary["buildings_found"] == len(buildings["features"])


def test_the_results_never_show_anyone_elses_answers_or_marks(made, worker) -> None:
    publish(made)
    _, tiles = get(worker, "tiles.geojson")
    _, buildings = get(worker, "buildings.geojson")
    assert {key for f in tiles["features"] for key in f["properties"]} == {"label", "confidence", "reviewed", "mine"}
    assert {key for f in buildings["features"] for key in f["properties"]} == {
        "confidence", "reviewed", "mine", "first_destroyed", "last_intact"}


def test_the_results_show_the_latest_reviews(made, worker, django_user_model) -> None:
    publish(made)
    coordinator = member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")
    project = made.project
    marked = sorted(confirmed_marked_by(made, worker))
    rejected = Building.objects.get(pk=marked[0])
    create_review(project=project, reviewer=coordinator, action="reject", building=rejected)
    grid = Grid.objects.get(project=project)
    add = create_review(project=project, reviewer=coordinator, action="add", ground_x=grid.origin_x + 40,
                        ground_y=grid.origin_y - 40)
    move = create_review(project=project, reviewer=coordinator, action="move", added=add,
                         ground_x=grid.origin_x + 50, ground_y=grid.origin_y - 40)
    tile = TileConsensus.objects.filter(project=project).first()
    label = next(k for k in project.answer_keys if k != tile.label)
    create_review(project=project, reviewer=coordinator, action="relabel", tile=Tile.objects.get(pk=tile.tile_id),
                  label=label)

    _, buildings = get(worker, "buildings.geojson")
    features = {f["id"]: f for f in buildings["features"]}
    assert rejected.pk not in features
    assert features[f"review-{add.pk}"]["geometry"]["coordinates"] == [pytest.approx(move.lon),
                                                                         pytest.approx(move.lat)]
    assert features[f"review-{add.pk}"]["properties"]["mine"] is False
    _, tiles = get(worker, "tiles.geojson")
    relabelled = next(f for f in tiles["features"] if f["id"] == tile.tile_id)
    assert relabelled["properties"] == {**relabelled["properties"], "label": label, "confidence": 1.0,
                                        "reviewed": True}
    _, summary = get(worker, "")
    assert summary["buildings_confirmed"] == len(marked) - 1


def test_the_bbox_limits_what_comes_back(made, worker) -> None:
    publish(made)
    building = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id").first()
    box = f"{building.lon - 1e-5},{building.lat - 1e-5},{building.lon + 1e-5},{building.lat + 1e-5}"
    _, buildings = get(worker, f"buildings.geojson?bbox={box}")
    assert building.pk in {f["id"] for f in buildings["features"]}
    assert len(buildings["features"]) < Building.objects.filter(project=made.project, confidence__gte=0.5).count()
    _, tiles = get(worker, f"tiles.geojson?bbox={box}")
    assert 1 <= len(tiles["features"]) <= 4  # the tiles over that point (overlaps)
    for bad in ("1,2,3", "a,b,c,d", "5,0,1,1"):
        status, body = get(worker, f"tiles.geojson?bbox={bad}")
        assert status == 400 and body["error"]["fields"] == {"bbox": ["invalid"]}


@pytest.mark.parametrize("path", ["", "tiles.geojson", "buildings.geojson"])
def test_who_may_see_the_results(made, worker, django_user_model, outsider, path) -> None:
    coordinator = member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")
    idle = member(django_user_model, made.project, Membership.Role.VOLUNTEER, "idle")
    made.project.is_public = False
    made.project.save(update_fields=["is_public"])
    Membership.objects.get_or_create(project=made.project, user=worker)
    before = {who: get(user, path)[0] for who, user in
              [("worker", worker), ("idle", idle), ("coordinator", coordinator), ("outsider", outsider)]}
    assert before == {"worker": 403, "idle": 403, "coordinator": 200, "outsider": 404}
    assert get(worker, path)[1]["error"]["message"] == "The results of this project are not published yet."
    publish(made)
    after = {who: get(user, path)[0] for who, user in
             [("worker", worker), ("idle", idle), ("coordinator", coordinator), ("outsider", outsider)]}
    assert after == {"worker": 200, "idle": 403, "coordinator": 200, "outsider": 404}
    assert client_for(None).get(f"{BASE}/{path}").status_code in (401, 403)


def test_the_results_page_is_a_map_with_the_contribution(made, worker, client) -> None:
    publish(made)
    client.force_login(worker)
    page = client.get("/projects/town/results/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="results-map"' in html and "js/results.js" in html and "leaflet.js" in html
    config = page.context["config"]
    assert config["tiles_url"] == f"{BASE}/tiles.geojson" and config["buildings_url"] == f"{BASE}/buildings.geojson"
    assert len(config["extent"]) == 4
    assert page.context["contribution"]["buildings_confirmed"] == len(confirmed_marked_by(made, worker))
    assert {round(b["lon"], 5) for b in page.context["mine"]} == {
        round(b.lon, 5) for b in Building.objects.filter(pk__in=confirmed_marked_by(made, worker))}
    assert '<a href="/projects/town/results/" aria-current="page">' in html  # the navigation names the page


def test_the_tagging_progress_and_project_list_pages_link_to_the_results_once_published(
        made, worker, django_user_model, client) -> None:
    coordinator = member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")
    idle = member(django_user_model, made.project, Membership.Role.VOLUNTEER, "idle")
    pages = ["/", "/projects/town/tag/", "/projects/town/me/"]

    def links(user) -> dict[str, bool]:
        client.force_login(user)
        return {path: 'href="/projects/town/results/"' in client.get(path).content.decode() for path in pages}

    assert links(worker) == dict.fromkeys(pages, False)  # not published yet
    assert links(coordinator) == dict.fromkeys(pages, True)  # coordinators preview the results
    publish(made)
    assert links(worker) == dict.fromkeys(pages, True)
    assert client.get("/projects/town/results/").status_code == 200  # the link leads somewhere they may go
    assert links(idle) == dict.fromkeys(pages, False)  # published, but to those who tagged tiles of it
    client.force_login(worker)
    page = client.get("/projects/town/me/", HTTP_ACCEPT_LANGUAGE="ar").content.decode()
    assert ">اطّلع على النتائج</a>" in page


def test_the_list_of_buildings_keeps_coordinates_and_dates_readable_in_arabic(made, worker, client) -> None:
    """Coordinates with decimal points (a decimal comma makes "lat, lon" ambiguous and breaks the map link);
    each date isolated, so that its digits and hyphens are not reordered right-to-left."""
    publish(made)
    client.force_login(worker)
    html = client.get("/projects/town/results/", HTTP_ACCEPT_LANGUAGE="ar").content.decode()
    assert re.search(r"mlat=\d+\.\d{6}&amp;mlon=\d+\.\d{6}", html)
    assert re.search(r">\d+\.\d{5}, \d+\.\d{5}</a>", html)
    with translation.override("ar"):
        assert destroyed_window("2017-06-01", "2017-09-01") == (
            'بين <bdi class="date">2017-06-01</bdi> و<bdi class="date">2017-09-01</bdi>')
        assert destroyed_window(None, "2017-09-01") == 'بحلول <bdi class="date">2017-09-01</bdi>'
    assert destroyed_window("<b>", None) == "–"
