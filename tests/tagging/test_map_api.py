"""The coordinators' map overlays: what is in view, filtered, grouped into cells when too many, for whom."""

from __future__ import annotations

import gzip
import json
from datetime import date
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pyproj import Transformer

from imagery.models import Grid, Tile
from tagging import map_api, map_layers, map_state
from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.models import Building, Classification, Membership, Project, Review, TileConsensus
from tagging.reviews import create_review
from tests.clients import client_for, member
from tests.consensus.crowd_db import CRS, CrowdProject, crowd_project
from workers import maps

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=8, n_rows=8, n_volunteers=20, activity_sigma=0.8, gold_rate=0.1, destroyed_per_tile=1.5,
                 seed=5)
TILES = "/api/v1/projects/city/map/tiles.geojson"
BUILDINGS = "/api/v1/projects/city/map/buildings.geojson"


@pytest.fixture
def made() -> CrowdProject:
    made = crowd_project(SPEC, slug="city")
    recompute_project(project_id=made.project.pk)
    return made


@pytest.fixture
def coordinator(django_user_model, made):
    return member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")


def get(user, path: str, **params) -> dict:
    response = client_for(user).get(path, params)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/geo+json"
    return json.loads(response.content)


def around(tile: Tile, metres: float = 5.0) -> str:
    """A bbox of a few metres around the middle of the part of the tile no other tile covers."""
    x, y = tile.minx + 112.0, tile.maxy - 112.0
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    west, south = to_wgs84.transform(x - metres, y - metres)
    east, north = to_wgs84.transform(x + metres, y + metres)
    return f"{west},{south},{east},{north}"


def test_coordinators_get_every_tile_with_its_consensus(made, coordinator) -> None:
    body = get(coordinator, TILES)
    assert body["type"] == "FeatureCollection"
    assert body["properties"]["aggregated"] is False and body["properties"]["redundancy"] == SPEC.redundancy
    assert len(body["features"]) == body["properties"]["count"] == made.crowd.n_tiles
    stored = {c.tile_id: c for c in TileConsensus.objects.filter(project=made.project)}
    for feature in body["features"]:
        props = feature["properties"]
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon" and len(ring) == 5 and ring[0] == ring[-1]
        consensus = stored.get(props["id"])
        assert props["label"] == (consensus.label if consensus else None)
        if consensus:
            assert props["confidence"] == pytest.approx(consensus.confidence, abs=1e-3)
            assert props["counts"] == consensus.counts
        assert props["value"] == props["label"]  # color=answer by default
    assert body["properties"]["votes_url"] == "/api/v1/tiles/{id}/classifications/"  # who said what, per tile


def test_tile_polygons_meet_edge_to_edge_without_the_overlaps(made, coordinator) -> None:
    rings = {(f["properties"]["col"], f["properties"]["row"]): f["geometry"]["coordinates"][0]
             for f in get(coordinator, TILES)["features"]}
    # Corners run south-west, south-east, north-east, north-west: a tile's east edge is its neighbour's west edge.
    assert rings[(3, 4)][1] == rings[(4, 4)][0] and rings[(3, 4)][2] == rings[(4, 4)][3]
    assert rings[(3, 4)][3] == rings[(3, 3)][0]  # its north-west corner is the south-west corner of the row above


def test_only_the_tiles_in_the_bbox_come_back(made, coordinator) -> None:
    tile = Tile.objects.get(grid__project=made.project, col=3, row=4)
    body = get(coordinator, TILES, bbox=around(tile), zoom=18)
    assert [(f["properties"]["col"], f["properties"]["row"]) for f in body["features"]] == [(3, 4)]
    assert get(coordinator, TILES, bbox="10,10,11,11")["features"] == []
    assert len(get(coordinator, TILES, bbox="-180,-90,180,90")["features"]) == made.crowd.n_tiles


def test_filters_keep_the_tiles_that_match(made, coordinator) -> None:
    labels = TileConsensus.objects.filter(project=made.project)
    destroyed = get(coordinator, TILES, answer="destroyed")["features"]
    assert {f["properties"]["label"] for f in destroyed} == {"destroyed"}
    assert len(destroyed) == labels.filter(label="destroyed").count()
    two = get(coordinator, TILES, answer="destroyed,no_damage")["features"]
    assert len(two) == labels.filter(label__in=["destroyed", "no_damage"]).count()
    sure = get(coordinator, TILES, min_confidence=0.9)["features"]
    assert sure and all(f["properties"]["confidence"] >= 0.9 for f in sure)
    assert len(sure) == labels.filter(confidence__gte=0.9).count()
    unsure = get(coordinator, TILES, max_confidence=0.8)["features"]
    assert len(unsure) == labels.filter(confidence__lte=0.8).count()
    contested = get(coordinator, TILES, contested=1)["features"]
    assert contested and all(f["properties"]["contested"] for f in contested)
    assert len(contested) == labels.filter(map_layers.contested_q()).count()


@pytest.mark.parametrize("color", ["confidence", "agreement", "progress"])
def test_each_feature_carries_the_value_it_is_coloured_by(made, coordinator, color) -> None:
    for feature in get(coordinator, TILES, color=color)["features"]:
        assert feature["properties"]["value"] == feature["properties"][color]


def test_many_tiles_in_view_are_grouped_into_cells(made, coordinator, monkeypatch) -> None:
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    body = get(coordinator, TILES)
    props = body["properties"]
    assert props["aggregated"] is True and props["cell_tiles"] == 2
    assert props["count"] == len(body["features"]) == 16  # 8 x 8 tiles in 2 x 2 cells
    assert props["tiles"] == sum(f["properties"]["tiles"] for f in body["features"]) == made.crowd.n_tiles
    judged = TileConsensus.objects.filter(project=made.project)
    assert sum(f["properties"]["judged"] for f in body["features"]) == judged.count()
    destroyed = sum(f["properties"]["labels"].get("destroyed", 0) for f in body["features"])
    assert destroyed == judged.filter(label="destroyed").count()
    # Filters apply before grouping.
    grouped = get(coordinator, TILES, answer="destroyed")
    assert grouped["properties"]["tiles"] == judged.filter(label="destroyed").count()


def test_each_grouped_cell_sums_the_tiles_it_covers(made, coordinator, monkeypatch) -> None:
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 4)  # 4 x 4 tiles a cell
    body = get(coordinator, TILES, color="confidence")
    k = body["properties"]["cell_tiles"]
    assert k == 4 and len(body["features"]) == 4
    consensus = {c.tile_id: c for c in TileConsensus.objects.filter(project=made.project)}
    for feature in body["features"]:
        props = feature["properties"]
        gc, gr = props["cell"]
        tiles = list(Tile.objects.filter(grid__project=made.project, col__gte=gc * k, col__lt=(gc + 1) * k,
                                         row__gte=gr * k, row__lt=(gr + 1) * k))
        judged = [consensus[t.pk] for t in tiles if t.pk in consensus]
        assert props["tiles"] == len(tiles) and props["judged"] == len(judged)
        assert props["votes"] == sum(t.vote_count for t in tiles)
        assert props["confidence"] == pytest.approx(sum(c.confidence for c in judged) / len(judged), abs=1e-3)
        assert props["value"] == props["confidence"]
        assert props["contested"] == sum(map_layers.is_contested(c.confidence, c.agreement) for c in judged)
        labels = {c.label for c in judged}
        assert props["labels"] == {label: sum(c.label == label for c in judged) for label in labels}


def test_a_zoomed_out_map_groups_tiles_smaller_than_a_few_pixels(made, coordinator) -> None:
    body = get(coordinator, TILES, zoom=10)  # a 224 m tile is under 2 px wide at zoom 10
    assert body["properties"]["aggregated"] is True and body["properties"]["cell_tiles"] >= 4


def test_grouped_cells_come_from_the_map_state_without_reading_the_tiles(made, coordinator, monkeypatch) -> None:
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    first = get(coordinator, TILES)  # the consensus run published the state: nothing to build
    with CaptureQueriesContext(connection) as queries:
        second = get(coordinator, TILES)
        zoomed = get(coordinator, TILES, zoom=10)  # another cell size: another level of the same state
    assert not [q for q in queries.captured_queries if "imagery_tile" in q["sql"]]
    assert second["features"] == first["features"]
    assert zoomed["properties"]["cell_tiles"] >= 4 and zoomed["properties"]["tiles"] == made.crowd.n_tiles


def test_a_finished_consensus_run_shows_in_the_grouped_cells_at_once(made, coordinator, monkeypatch) -> None:
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    before = get(coordinator, TILES, answer="destroyed")["properties"]["tiles"]
    # Between runs the live per-tile updates change rows under the state; the next run publishes them.
    TileConsensus.objects.filter(project=made.project).exclude(label="destroyed").update(label="destroyed")
    assert get(coordinator, TILES, answer="destroyed")["properties"]["tiles"] == before, "the state is kept"
    map_state.ensure_map_state_after_run(project=made.project)
    after = get(coordinator, TILES, answer="destroyed")["properties"]
    assert after["tiles"] == TileConsensus.objects.filter(project=made.project).count() > before


def test_the_tile_overlay_runs_a_fixed_number_of_queries(made, coordinator, django_assert_max_num_queries) -> None:
    # The access check (project, the admin permission (two), membership) and the grid, then the tiles joined to
    # their consensus (one query).
    # Then the project's reviews (one query; the reviewers' names are one more once there are reviews).
    with django_assert_max_num_queries(8):
        get(coordinator, TILES)
    with django_assert_max_num_queries(3):  # the access check and the grid are remembered for the next moves
        get(coordinator, TILES)


def test_who_may_see_the_overlays(made, django_user_model, outsider, admin_user) -> None:
    volunteer = member(django_user_model, made.project, Membership.Role.VOLUNTEER, "helper")
    manager = member(django_user_model, made.project, Membership.Role.MANAGER, "boss")
    for path in (TILES, BUILDINGS):
        assert client_for(volunteer).get(path).status_code == 403
        assert client_for(None).get(path).status_code in (401, 403)
        assert client_for(manager).get(path).status_code == 200
        assert client_for(admin_user).get(path).status_code == 200
    Project.objects.filter(pk=made.project.pk).update(is_public=False)
    assert client_for(outsider).get(TILES).status_code == 404
    assert client_for(outsider).get(BUILDINGS).status_code == 404


@pytest.mark.parametrize("params, field", [
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "5,0,1,1"}, "bbox"), ({"min_confidence": "2"}, "min_confidence"),
    ({"max_confidence": "x"}, "max_confidence"), ({"answer": "ruined"}, "answer"), ({"color": "red"}, "color"),
    ({"zoom": "far"}, "zoom"),
])
def test_bad_parameters_are_a_400_naming_them(made, coordinator, params, field) -> None:
    response = client_for(coordinator).get(TILES, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_buildings_in_view_come_as_points_with_their_evidence(made, coordinator) -> None:
    stored = Building.objects.filter(project=made.project, confidence__gte=0.5)
    assert stored.count() > 5
    body = get(coordinator, BUILDINGS)
    assert body["properties"]["aggregated"] is False
    assert {f["properties"]["id"] for f in body["features"]} == set(stored.values_list("pk", flat=True))
    one = stored.first()
    (feature,) = [f for f in body["features"] if f["id"] == one.pk]
    assert feature["geometry"] == {"type": "Point", "coordinates": [round(one.lon, 6), round(one.lat, 6)]}
    assert feature["properties"]["support"] == one.n_support and feature["properties"]["oppose"] == one.n_oppose
    assert body["properties"]["votes_url"].format(id=one.pk) == f"/api/v1/buildings/{one.pk}/classifications/"
    confidences = [f["properties"]["confidence"] for f in body["features"]]
    assert confidences == sorted(confidences), "the surest are drawn last, on top"


def test_buildings_are_filtered_by_bbox_confidence_and_date_window(made, coordinator) -> None:
    everything = Building.objects.filter(project=made.project)
    one = everything.filter(confidence__gte=0.5).first()
    box = f"{one.lon - 1e-5},{one.lat - 1e-5},{one.lon + 1e-5},{one.lat + 1e-5}"
    assert [f["id"] for f in get(coordinator, BUILDINGS, bbox=box)["features"]] == [one.pk]
    low = get(coordinator, BUILDINGS, min_confidence=0)["features"]
    assert len(low) == everything.count()
    Building.objects.filter(pk=one.pk).update(last_intact=date(2017, 5, 1), first_destroyed=date(2017, 10, 20))
    assert [f["id"] for f in get(coordinator, BUILDINGS, date_from="2017-10-20")["features"]] == [one.pk]
    assert get(coordinator, BUILDINGS, date_from="2017-10-21")["features"] == []
    assert get(coordinator, BUILDINGS, date_to="2017-05-01")["features"] == []  # still intact on that date
    assert [f["id"] for f in get(coordinator, BUILDINGS, date_to="2017-06-01")["features"]] == [one.pk]
    response = client_for(coordinator).get(BUILDINGS, {"date_from": "2017-10-20", "date_to": "2017-01-01"})
    assert response.status_code == 400


def test_many_buildings_in_view_are_clustered(made, coordinator, monkeypatch) -> None:
    total = Building.objects.filter(project=made.project, confidence__gte=0.5).count()
    monkeypatch.setattr(map_layers, "MAX_BUILDINGS", 3)
    monkeypatch.setattr(map_layers, "MAX_BUILDING_CELLS", 4)
    body = get(coordinator, BUILDINGS)
    props = body["properties"]
    assert props["aggregated"] is True and props["buildings"] == total
    assert props["count"] == len(body["features"]) < total
    assert sum(f["properties"]["buildings"] for f in body["features"]) == total
    assert all(f["geometry"]["type"] == "Point" for f in body["features"])


@pytest.mark.parametrize("params", [{"min_confidence": "0"}, {"min_confidence": "0.8"}, {"max_confidence": "0.9"},
                                    {"date_from": "2017-06-01"}, {"date_to": "2017-06-01"}])
def test_clusters_count_the_buildings_the_filters_keep(made, coordinator, monkeypatch, params) -> None:
    buildings = Building.objects.filter(project=made.project)
    dated = list(buildings.values_list("pk", flat=True)[:6])
    buildings.filter(pk__in=dated[:3]).update(last_intact=date(2017, 5, 1), first_destroyed=date(2017, 10, 20))
    buildings.filter(pk__in=dated[3:]).update(last_intact=None, first_destroyed=date(2017, 5, 1))
    map_state.ensure_map_state_after_run(project=made.project)  # buildings change in consensus runs only
    monkeypatch.setattr(map_layers, "MAX_BUILDINGS", 0)
    monkeypatch.setattr(map_layers, "MAX_BUILDING_CELLS", 4)
    body = get(coordinator, BUILDINGS, **params)
    filt = map_api.building_filter(params)  # the clusters sum numpy arrays; this asks each building in Python
    expected = sum(filt.keeps(b.confidence, b.last_intact, b.first_destroyed) for b in buildings)
    assert body["properties"]["aggregated"] is True
    assert sum(f["properties"]["buildings"] for f in body["features"]) == body["properties"]["buildings"] == expected


def test_a_project_without_imagery_has_empty_overlays(django_user_model) -> None:
    from tagging.projects import create_project

    project = create_project(slug="empty", name="Empty")
    boss = member(django_user_model, project, Membership.Role.COORDINATOR, "c2")
    assert get(boss, "/api/v1/projects/empty/map/tiles.geojson")["features"] == []
    assert get(boss, "/api/v1/projects/empty/map/buildings.geojson")["features"] == []


def test_big_answers_are_gzipped_for_clients_that_accept_it(made, coordinator) -> None:
    plain = client_for(coordinator).get(TILES)
    packed = client_for(coordinator).get(TILES, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert "Content-Encoding" not in plain and packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) * 4 < len(plain.content)


def test_an_unchecked_state_is_served_at_once_and_rebuilt_by_the_worker_only_after_a_vote(
        made, coordinator, monkeypatch) -> None:
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    monkeypatch.setattr(map_state, "STATE_SECONDS", -1.0)  # every state is due for a check at once
    task = maps.rebuild_map_state_task
    queued: list[int] = []
    monkeypatch.setattr(maps, "rebuild_map_state_task", SimpleNamespace(delay=queued.append))  # the broker
    first = get(coordinator, TILES)
    assert queued == [made.project.pk]
    Tile.objects.filter(grid__project=made.project).update(vote_count=99)  # rows change, no new vote
    with CaptureQueriesContext(connection) as queries:
        second = get(coordinator, TILES)
    assert second["features"] == first["features"], "the published state answers"
    assert not [q for q in queries.captured_queries if "imagery_tile" in q["sql"]]
    assert len(queued) == 1, "one check at a time (the lock): the first request took it"
    with CaptureQueriesContext(connection) as queries:
        assert task(queued[0]) == 0  # the worker's check: the watermark has not moved, so nothing is read again
    assert not [q for q in queries.captured_queries if '"imagery_tile"."vote_count"' in q["sql"]]
    assert get(coordinator, TILES)["features"] == first["features"]
    assert len(queued) == 2, "the lock is free again"
    vote = Classification.objects.filter(project=made.project).order_by("-id").first()
    vote.delete()
    vote.pk = None
    vote.save()  # a new vote: the watermark moves
    assert task(queued[1]) == 1
    third = get(coordinator, TILES)
    assert all(f["properties"]["votes"] == 99 * f["properties"]["tiles"] for f in third["features"])


@pytest.mark.parametrize("cells, zoom, expected", [(9, None, 1), (3000, None, 2), (200_000, None, 16), (9, 18, 1),
                                                   (9, 12, 4), (9, 10, 16)])  # 7 and 2 px tiles: 16 px cells
def test_the_cell_size_is_a_power_of_two_of_at_least_one_tile(cells, zoom, expected) -> None:
    from imagery.grid import GridSpec

    spec = GridSpec(CRS, 500_000.0, 3_980_000.0, 0.5, 100_000, 100_000)  # 224 m a tile
    side = range(int(cells ** 0.5))
    k = map_layers.cell_size(spec, side, range(cells // len(side)), zoom, (39.0, 35.9, 39.1, 36.0),
                          most=map_layers.MAX_CELLS, threshold=map_layers.MAX_TILES)
    assert k == expected


# --- Reviews override the crowd ---------------------------------------------------------------------------------

def other_label(made: CrowdProject, tile_id: int) -> str:
    crowd = TileConsensus.objects.get(tile_id=tile_id).label
    return next(key for key in made.project.answer_keys if key != crowd)


def test_a_relabelled_tile_shows_the_reviewed_label_and_who_decided(made, coordinator) -> None:
    tile = Tile.objects.get(pk=int(TileConsensus.objects.filter(project=made.project).first().tile_id))
    crowd = TileConsensus.objects.get(tile=tile).label
    label = other_label(made, tile.pk)
    create_review(project=made.project, reviewer=coordinator, action="relabel", tile=tile, label=label,
                  note="roof gone")
    body = get(coordinator, TILES)
    features = {f["id"]: f["properties"] for f in body["features"]}
    props = features[tile.pk]
    assert props["label"] == label and props["confidence"] == 1.0 and props["reviewed"] is True
    assert props["review"].items() >= {"action": "relabel", "label": label, "reviewer": "coord", "note": "roof gone",
                                       "crowd_label": crowd}.items()
    assert body["properties"]["review_url"].format(id=tile.pk) == f"/projects/city/review/?tile={tile.pk}"
    assert not any(p["reviewed"] for pk, p in features.items() if pk != tile.pk)
    assert [f["id"] for f in get(coordinator, TILES, answer=label)["features"]].count(tile.pk) == 1
    assert tile.pk not in [f["id"] for f in get(coordinator, TILES, answer=crowd)["features"]]


def test_a_rejected_tile_has_no_label(made, coordinator) -> None:
    tile = Tile.objects.get(pk=TileConsensus.objects.filter(project=made.project).first().tile_id)
    create_review(project=made.project, reviewer=coordinator, action="reject", tile=tile)
    props = {f["id"]: f["properties"] for f in get(coordinator, TILES)["features"]}[tile.pk]
    assert props["label"] is None and props["reviewed"] is True and props["review"]["action"] == "reject"


def test_the_reviewed_filter_keeps_exactly_the_reviewed_tiles(made, coordinator) -> None:
    judged = list(TileConsensus.objects.filter(project=made.project).order_by("tile_id")[:3])
    for consensus in judged:
        create_review(project=made.project, reviewer=coordinator, action="confirm", tile=consensus.tile)
    reviewed = {c.tile_id for c in judged}
    assert {f["id"] for f in get(coordinator, TILES, reviewed="yes")["features"]} == reviewed
    rest = {f["id"] for f in get(coordinator, TILES, reviewed="no")["features"]}
    assert not rest & reviewed and len(rest) == made.crowd.n_tiles - len(reviewed)
    assert len(get(coordinator, TILES, reviewed="any")["features"]) == made.crowd.n_tiles
    assert client_for(coordinator).get(TILES, {"reviewed": "maybe"}).status_code == 400


def test_building_reviews_show_on_the_map_as_in_the_exports(made, coordinator) -> None:
    rejected, moved, kept = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id")[:3]
    grid = Grid.objects.get(project=made.project)
    create_review(project=made.project, reviewer=coordinator, action="reject", building=rejected)
    create_review(project=made.project, reviewer=coordinator, action="move", building=moved,
                  ground_x=moved.ground_x + 40, ground_y=moved.ground_y - 30, note="here")
    added = create_review(project=made.project, reviewer=coordinator, action="add", ground_x=grid.origin_x + 100,
                          ground_y=grid.origin_y - 100, note="missed")
    gone = create_review(project=made.project, reviewer=coordinator, action="add", ground_x=grid.origin_x + 200,
                         ground_y=grid.origin_y - 200)
    create_review(project=made.project, reviewer=coordinator, action="reject", added=gone)

    body = get(coordinator, BUILDINGS)
    features = {f["id"]: f for f in body["features"]}
    assert rejected.pk not in features and f"review-{gone.pk}" not in features
    new_place = Review.objects.filter(building=moved).get()
    assert features[moved.pk]["geometry"]["coordinates"] == [round(new_place.lon, 6), round(new_place.lat, 6)]
    assert features[moved.pk]["properties"]["reviewed"] is True
    assert features[moved.pk]["properties"]["review"].items() >= {"action": "move", "note": "here"}.items()
    new = features[f"review-{added.pk}"]
    assert new["geometry"]["coordinates"] == [round(added.lon, 6), round(added.lat, 6)]
    assert new["properties"].items() >= {"confidence": 1.0, "support": 0, "reviewed": True}.items()
    assert new["properties"]["review"]["action"] == "add" and new["properties"]["tile"] is not None
    assert features[kept.pk]["properties"]["reviewed"] is False and features[kept.pk]["properties"]["review"] is None
    assert body["properties"]["review_url"] == "/projects/city/review/?tile={id}"

    only = {f["id"] for f in get(coordinator, BUILDINGS, reviewed="yes")["features"]}
    assert only == {moved.pk, f"review-{added.pk}"}
    rest = {f["id"] for f in get(coordinator, BUILDINGS, reviewed="no")["features"]}
    assert rest == set(features) - only
    box = f"{moved.lon - 1e-5},{moved.lat - 1e-5},{moved.lon + 1e-5},{moved.lat + 1e-5}"
    assert moved.pk not in [f["id"] for f in get(coordinator, BUILDINGS, bbox=box)["features"]], "it moved away"


def test_a_new_review_shows_on_the_next_request(made, coordinator) -> None:
    tile = Tile.objects.get(pk=TileConsensus.objects.filter(project=made.project).first().tile_id)
    assert {f["id"]: f for f in get(coordinator, TILES)["features"]}[tile.pk]["properties"]["reviewed"] is False
    review = create_review(project=made.project, reviewer=coordinator, action="relabel", tile=tile,
                           label=other_label(made, tile.pk))
    assert {f["id"]: f for f in get(coordinator, TILES)["features"]}[tile.pk]["properties"]["reviewed"] is True
    Review.objects.filter(pk=review.pk).update(undone_at=review.created_at)
    props = {f["id"]: f for f in get(coordinator, TILES)["features"]}[tile.pk]["properties"]
    assert props["reviewed"] is False and props["label"] == TileConsensus.objects.get(tile=tile).label
