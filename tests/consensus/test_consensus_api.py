"""The coordinators' consensus API: exports that parse, who may see them, who said what, recompute."""

from __future__ import annotations

import csv
import io
import json

import pytest

from imagery.models import Tile
from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.models import Building, Classification, ConsensusRun, Membership, TileConsensus
from tests.clients import client_for, member
from tests.consensus.crowd_db import KEYS, CrowdProject, crowd_project

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=8, n_rows=8, n_volunteers=20, activity_sigma=0.8, gold_rate=0.1, destroyed_per_tile=0.8,
                 seed=5)


@pytest.fixture
def made() -> CrowdProject:
    made = crowd_project(SPEC, slug="city")
    recompute_project(project_id=made.project.pk)
    return made


@pytest.fixture
def coordinator(django_user_model, made):
    return member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")


def body(response) -> bytes:
    assert response.streaming, "exports stream"
    return b"".join(response.streaming_content)


def test_tiles_geojson_is_a_wgs84_feature_collection_with_the_method(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/consensus/tiles.geojson")
    assert response.status_code == 200 and response["Content-Type"] == "application/geo+json"
    collection = json.loads(body(response))
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == made.crowd.n_tiles
    run = collection["properties"]["run"]
    assert run["method"].startswith("consensus v1") and run["parameters"]["settings"]["link_radius_m"] == 6.0
    feature = collection["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 5
    assert all(38 < lon < 40 and 35 < lat < 37 for lon, lat in ring)  # UTM 37N near Raqqa, in degrees
    properties = feature["properties"]
    assert {"tile_id", "tile_col", "tile_row", "label", "confidence", "agreement", "votes_url"} <= set(properties)
    assert {f"count_{key}" for key in KEYS} <= set(properties)
    assert properties["votes_url"].endswith(f"/api/v1/tiles/{properties['tile_id']}/classifications/")


def test_tiles_csv_has_a_column_per_answer_and_a_link_to_the_votes(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/consensus/tiles.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="city-tiles.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert len(rows) == made.crowd.n_tiles
    assert list(rows[0])[:8] == ["tile_id", "tile_col", "tile_row", "label", "confidence", "agreement", "n_votes",
                                 "n_decisive"]
    assert [c for c in rows[0] if c.startswith("count_")] == [f"count_{key}" for key in KEYS]
    stored = TileConsensus.objects.get(tile_id=int(rows[0]["tile_id"]))
    assert rows[0]["label"] == stored.label and float(rows[0]["confidence"]) == pytest.approx(stored.confidence)
    assert sum(int(rows[0][f"count_{key}"]) for key in KEYS) == int(rows[0]["n_votes"])


def test_buildings_geojson_are_points_with_confidence_votes_and_the_evidence(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/consensus/buildings.geojson")
    assert response.status_code == 200
    collection = json.loads(body(response))
    expected = Building.objects.filter(project=made.project, confidence__gte=0.5).count()
    assert len(collection["features"]) == expected > 0
    assert collection["properties"]["min_confidence"] == 0.5 and collection["properties"]["grid_crs"] == "EPSG:32637"
    assert collection["properties"]["run"]["parameters"]["fitted"]["building_em_rounds"] >= 1
    for feature in collection["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert feature["geometry"]["type"] == "Point" and 38 < lon < 40 and 35 < lat < 37
        p = feature["properties"]
        assert p["confidence"] >= 0.5 and p["uncertainty_m"] >= 0 and p["votes_for"] >= 0 and p["votes_against"] >= 0
        assert set(p) >= {"last_intact", "first_destroyed", "window_confidence", "classification_ids", "votes_url"}
    everything = client_for(coordinator).get("/api/v1/projects/city/consensus/buildings.geojson?min_confidence=0")
    assert len(json.loads(body(everything))["features"]) == Building.objects.filter(project=made.project).count()


def test_buildings_csv_lists_the_supporting_classifications(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/consensus/buildings.csv")
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert rows and list(rows[0])[:9] == ["building_id", "lon", "lat", "ground_x", "ground_y", "confidence",
                                          "uncertainty_m", "votes_for", "votes_against"]
    building = Building.objects.get(pk=int(rows[0]["building_id"]))
    assert rows[0]["classification_ids"].split() == [str(i) for i in building.classification_ids]


def test_a_bad_min_confidence_is_a_400_in_the_error_shape(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/consensus/buildings.csv?min_confidence=2")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"min_confidence": ["out of range"]}


def test_the_evidence_behind_a_building_is_one_link_away(made, coordinator) -> None:
    building = Building.objects.filter(project=made.project, confidence__gte=0.5, n_support__gte=2).first()
    response = client_for(coordinator).get(f"/api/v1/buildings/{building.pk}/classifications/")
    assert response.status_code == 200
    data = response.json()
    assert data["building"]["id"] == building.pk
    assert sorted(v["id"] for v in data["supporting"]) == building.classification_ids
    assert sorted(v["id"] for v in data["opposing"]) == building.opposing_classification_ids
    assert len({v["volunteer"] for v in data["supporting"]}) == building.n_support
    for vote in data["supporting"]:
        assert vote["marks"] and all(m["id"] in building.mark_ids for m in vote["marks"])
        assert vote["volunteer"].startswith("city-v")


def test_coordinators_see_who_said_what_on_a_tile(made, coordinator) -> None:
    tile_id = int(made.tile_ids[0])
    response = client_for(coordinator).get(f"/api/v1/tiles/{tile_id}/classifications/")
    assert response.status_code == 200
    data = response.json()
    stored = Classification.objects.filter(tile_id=tile_id)
    assert {v["id"] for v in data["classifications"]} == set(stored.values_list("id", flat=True))
    assert {v["volunteer"] for v in data["classifications"]} == set(stored.values_list("volunteer__username",
                                                                                        flat=True))
    assert data["consensus"]["label"] == TileConsensus.objects.get(tile_id=tile_id).label
    assert all(v["volunteer_reliability"] is not None for v in data["classifications"])


def test_the_reliability_list_names_volunteers_by_pseudonym_with_their_gold(made, coordinator) -> None:
    response = client_for(coordinator).get("/api/v1/projects/city/volunteers/reliability/?ordering=reliability")
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == len(set(made.crowd.vote_volunteer.tolist()))
    first = data["results"][0]
    assert set(first) >= {"volunteer", "reliability", "n_gold", "n_gold_correct", "n_votes", "confusion"}
    scores = [row["reliability"] for row in data["results"]]
    assert scores == sorted(scores) and first["volunteer"].startswith("city-v")
    bad = client_for(coordinator).get("/api/v1/projects/city/volunteers/reliability/?ordering=password")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"


def test_a_coordinator_can_ask_for_a_recompute(made, coordinator, django_capture_on_commit_callbacks) -> None:
    runs = ConsensusRun.objects.filter(project=made.project).count()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(coordinator).post("/api/v1/projects/city/consensus/recompute/")
    assert response.status_code == 202 and response.json() == {"project": "city", "status": "enqueued"}
    assert ConsensusRun.objects.filter(project=made.project, status="done").count() == runs + 1


def test_the_summary_counts_tiles_labels_and_buildings(made, coordinator) -> None:
    data = client_for(coordinator).get("/api/v1/projects/city/consensus/").json()
    assert sum(data["labels"].values()) == made.crowd.n_tiles
    assert sum(data["tiles"].values()) == Tile.objects.filter(grid__project=made.project).count()
    assert data["run"]["counts"]["votes"] == len(made.crowd.vote_tile)


def endpoints(made: CrowdProject) -> list[tuple[str, str]]:
    building = Building.objects.filter(project=made.project).first()
    base = "/api/v1/projects/city"
    return [("get", f"{base}/consensus/"), ("get", f"{base}/consensus/tiles.geojson"),
            ("get", f"{base}/consensus/tiles.csv"), ("get", f"{base}/consensus/buildings.geojson"),
            ("get", f"{base}/consensus/buildings.csv"), ("post", f"{base}/consensus/recompute/"),
            ("get", f"{base}/volunteers/reliability/"), ("get", f"/api/v1/tiles/{made.tile_ids[0]}/classifications/"),
            ("get", f"/api/v1/buildings/{building.pk}/classifications/")]


@pytest.mark.parametrize(("who", "public", "expected"), [
    ("volunteer", True, 403),  # a volunteer of a public project sees the project, not the consensus
    ("member", True, 403),  # nor does a volunteer member
    ("member", False, 403),
    ("outsider", False, 404),  # a private project is not even there for outsiders
    ("anonymous", True, 403),
    ("manager", False, 200),
    ("coordinator", False, 200),
    ("admin", False, 200),
])
def test_only_coordinators_managers_and_admins_see_the_consensus(
        made, django_user_model, volunteer, outsider, platform_admin, who, public, expected) -> None:
    made.project.is_public = public
    made.project.save()
    user = {"volunteer": volunteer, "outsider": outsider, "admin": platform_admin, "anonymous": None,
            "member": lambda: member(django_user_model, made.project, Membership.Role.VOLUNTEER, "m"),
            "manager": lambda: member(django_user_model, made.project, Membership.Role.MANAGER, "boss2"),
            "coordinator": lambda: member(django_user_model, made.project, Membership.Role.COORDINATOR, "c2")}[who]
    api = client_for(user() if callable(user) else user)
    for method, url in endpoints(made):
        response = getattr(api, method)(url)
        status = 202 if method == "post" and expected == 200 else expected
        assert response.status_code == status, (url, response.status_code)
        if status >= 400:
            assert set(response.json()["error"]) == {"code", "message", "fields"}, url


def test_volunteers_still_answer_tiles_at_the_same_address(made, volunteer) -> None:
    tile = Tile.objects.filter(grid__project=made.project, status=Tile.Status.OPEN).first()
    made.project.redundancy = 50
    made.project.save()
    response = client_for(volunteer).post(f"/api/v1/tiles/{tile.pk}/classifications/",
                                          {"answer": "no_damage", "seconds": 8}, format="json")
    assert response.status_code == 201, response.json()
    assert client_for(volunteer).get(f"/api/v1/tiles/{tile.pk}/classifications/").status_code == 403
