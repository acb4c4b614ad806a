"""Expert review: coordinators' decisions override the crowd in every export, undo restores it, the trail keeps all."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from imagery.models import Grid
from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.models import Building, Classification, Membership, Review, TileConsensus
from tests.clients import client_for, member
from tests.consensus.crowd_db import CrowdProject, crowd_project

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=6, n_rows=6, n_volunteers=15, activity_sigma=0.8, gold_rate=0.1, destroyed_per_tile=0.8,
                 seed=11)
BASE = "/api/v1/projects/city"


@pytest.fixture
def made() -> CrowdProject:
    made = crowd_project(SPEC, slug="city")
    recompute_project(project_id=made.project.pk)
    return made


@pytest.fixture
def coordinator(django_user_model, made):
    return member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def geojson(api: APIClient, name: str, query: str = "") -> dict:
    response = api.get(f"{BASE}/consensus/{name}.geojson{query}")
    assert response.status_code == 200
    return json.loads(body(response))


def csv_rows(api: APIClient, name: str, query: str = "") -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(api.get(f"{BASE}/consensus/{name}.csv{query}")).decode())))


def review(api: APIClient, **payload) -> dict:
    response = api.post(f"{BASE}/reviews/", payload, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def other_label(made: CrowdProject, tile_id: int) -> str:
    crowd = TileConsensus.objects.get(tile_id=tile_id).label
    return next(key for key in made.project.answer_keys if key != crowd)


def sure_building(made: CrowdProject) -> Building:
    return Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("-confidence", "id").first()


def test_a_relabel_overrides_the_tile_in_geojson_and_csv_and_undo_restores_it(made, coordinator) -> None:
    api = client_for(coordinator)
    tile_id = int(made.tile_ids[3])
    crowd = TileConsensus.objects.get(tile_id=tile_id)
    label = other_label(made, tile_id)
    made_review = review(api, tile=tile_id, action="relabel", label=label, note="clearly rubble")

    feature = next(f for f in geojson(api, "tiles")["features"] if f["id"] == tile_id)
    assert feature["properties"].items() >= {"label": label, "confidence": 1.0, "reviewed": True,
                                          "review_action": "relabel", "review_id": made_review["id"],
                                          "crowd_label": crowd.label}.items()
    row = next(r for r in csv_rows(api, "tiles") if int(r["tile_id"]) == tile_id)
    assert (row["label"], float(row["confidence"]), row["reviewed"]) == (label, 1.0, "True")
    assert row["review_ids"] == str(made_review["id"])
    crowd_only = next(f for f in geojson(api, "tiles", "?reviews=0")["features"] if f["id"] == tile_id)
    assert crowd_only["properties"]["label"] == crowd.label and crowd_only["properties"]["reviewed"] is False

    assert api.post(f"/api/v1/reviews/{made_review['id']}/undo/").status_code == 200
    feature = next(f for f in geojson(api, "tiles")["features"] if f["id"] == tile_id)
    assert feature["properties"]["label"] == crowd.label and feature["properties"]["reviewed"] is False
    assert feature["properties"]["confidence"] == pytest.approx(crowd.confidence)
    assert feature["properties"]["review_ids"] == [made_review["id"]]  # the trail stays on the row


def test_tile_rows_name_their_classifications(made, coordinator) -> None:
    features = geojson(client_for(coordinator), "tiles")["features"]
    for feature in features[:5]:
        stored = sorted(Classification.objects.filter(tile_id=feature["id"]).values_list("id", flat=True))
        assert feature["properties"]["classification_ids"] == stored


def test_building_reviews_reject_move_confirm_and_add_show_in_the_exports(made, coordinator) -> None:
    api = client_for(coordinator)
    buildings = list(Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id")[:2])
    doubtful = Building.objects.filter(project=made.project, confidence__lt=0.5).first()
    rejected, moved = buildings
    grid = Grid.objects.get(project=made.project)
    review(api, building=rejected.pk, action="reject")
    review(api, building=moved.pk, action="move", ground_x=moved.ground_x + 4, ground_y=moved.ground_y - 3)
    added = review(api, action="add", ground_x=grid.origin_x + 100, ground_y=grid.origin_y - 100, note="missed")
    if doubtful is not None:
        review(api, building=doubtful.pk, action="confirm")

    features = {f["id"]: f for f in geojson(api, "buildings")["features"]}
    assert rejected.pk not in features
    assert features[moved.pk]["properties"]["ground_x"] == pytest.approx(moved.ground_x + 4)
    assert features[moved.pk]["geometry"]["coordinates"][0] != pytest.approx(moved.lon, abs=1e-9)
    assert features[moved.pk]["properties"]["confidence"] == 1.0
    new = features[f"review-{added['id']}"]
    assert new["properties"].items() >= {"source": "review", "confidence": 1.0, "votes_for": 0,
                                         "building_id": None}.items()
    lon, lat = new["geometry"]["coordinates"]
    assert 38 < lon < 40 and 35 < lat < 37
    if doubtful is not None:
        assert features[doubtful.pk]["properties"]["confidence"] == 1.0
    rows = {r["building_id"]: r for r in csv_rows(api, "buildings")}
    assert str(rejected.pk) not in rows and "" in rows and rows[""]["review_id"] == str(added["id"])

    crowd = {f["id"] for f in geojson(api, "buildings", "?reviews=0")["features"]}
    assert rejected.pk in crowd and not any(isinstance(i, str) for i in crowd)
    for r in Review.objects.filter(project=made.project):
        api.post(f"/api/v1/reviews/{r.pk}/undo/")
    restored = {f["id"]: f for f in geojson(api, "buildings")["features"]}
    assert set(restored) == crowd
    assert restored[moved.pk]["properties"]["ground_x"] == pytest.approx(moved.ground_x)


def test_the_latest_live_review_wins_and_undo_falls_back_to_the_one_before(made, coordinator) -> None:
    api = client_for(coordinator)
    tile_id = int(made.tile_ids[5])
    keys = made.project.answer_keys
    first = review(api, tile=tile_id, action="relabel", label=keys[0])
    second = review(api, tile=tile_id, action="relabel", label=keys[1])
    assert second["before"]["label"] == keys[0] and second["after"]["label"] == keys[1]
    api.post(f"/api/v1/reviews/{second['id']}/undo/")
    feature = next(f for f in geojson(api, "tiles")["features"] if f["id"] == tile_id)
    assert feature["properties"]["label"] == keys[0] and feature["properties"]["review_id"] == first["id"]


def test_the_audit_trail_keeps_before_after_reviewer_and_undo(made, coordinator) -> None:
    api = client_for(coordinator)
    building = sure_building(made)
    made_review = review(api, building=building.pk, action="move", ground_x=building.ground_x + 2,
                         ground_y=building.ground_y, note="centre of the roof")
    assert made_review["before"]["ground_x"] == pytest.approx(building.ground_x)
    assert made_review["after"]["ground_x"] == pytest.approx(building.ground_x + 2)
    assert made_review["before"]["confidence"] == pytest.approx(building.confidence)
    api.post(f"/api/v1/reviews/{made_review['id']}/undo/")
    again = api.post(f"/api/v1/reviews/{made_review['id']}/undo/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    trail = api.get(f"{BASE}/reviews/").json()
    entry = trail["results"][0]
    assert trail["count"] == 1 and entry["reviewer"] == "coord" and entry["undone"] is True
    assert entry["undone_by"] == "coord" and entry["note"] == "centre of the roof"
    assert entry["before"] == made_review["before"] and entry["after"] == made_review["after"]
    assert Review.objects.filter(project=made.project).count() == 1  # never deleted


def added_feature(api: APIClient, add_id: int) -> dict | None:
    return next((f for f in geojson(api, "buildings")["features"] if f["id"] == f"review-{add_id}"), None)


def test_a_building_a_coordinator_added_is_moved_and_rejected_later_and_undo_goes_back_step_by_step(
        made, django_user_model, coordinator) -> None:
    api = client_for(coordinator)
    other = client_for(member(django_user_model, made.project, Membership.Role.COORDINATOR, "coord2"))
    grid = Grid.objects.get(project=made.project)
    x, y = grid.origin_x + 100, grid.origin_y - 100
    add = review(api, action="add", ground_x=x, ground_y=y, note="missed by the crowd")
    move = review(other, added=add["id"], action="move", ground_x=x + 6, ground_y=y - 2, note="centre of the roof")

    moved = added_feature(api, add["id"])  # the same building (same id), at its new place
    assert moved["properties"]["ground_x"] == pytest.approx(x + 6) and moved["properties"]["confidence"] == 1.0
    assert moved["geometry"]["coordinates"] == [pytest.approx(move["lon"]), pytest.approx(move["lat"])]
    assert move["added"] == add["id"] and move["building"] is None and move["tile"] is None
    assert move["before"]["ground_x"] == pytest.approx(x) and move["after"]["ground_x"] == pytest.approx(x + 6)
    row = next(r for r in csv_rows(api, "buildings") if r["added"] == str(add["id"]))
    assert float(row["ground_x"]) == pytest.approx(x + 6)

    reject = review(api, added=add["id"], action="reject", note="a shadow after all")
    assert reject["before"]["ground_x"] == pytest.approx(x + 6) and reject["after"]["rejected"] is True
    assert added_feature(api, add["id"]) is None
    assert not any(r["added"] == str(add["id"]) for r in csv_rows(api, "buildings"))

    assert api.post(f"/api/v1/reviews/{reject['id']}/undo/").status_code == 200
    assert added_feature(api, add["id"])["properties"]["ground_x"] == pytest.approx(x + 6)  # back where moved
    assert api.post(f"/api/v1/reviews/{move['id']}/undo/").status_code == 200
    assert added_feature(api, add["id"])["properties"]["ground_x"] == pytest.approx(x)  # back where added

    trail = api.get(f"{BASE}/reviews/?added={add['id']}").json()["results"]
    assert [(r["id"], r["action"], r["undone"]) for r in trail] == [
        (reject["id"], "reject", True), (move["id"], "move", True), (add["id"], "add", False)]
    assert trail[1]["reviewer"] == "coord2" and trail[1]["note"] == "centre of the roof"
    assert Review.objects.filter(project=made.project).count() == 3  # nothing edited, nothing deleted


def test_every_export_row_of_an_added_building_names_every_review_behind_it(made, coordinator) -> None:
    """Chain of custody: the add review, the later reviews of the building, undone ones too, oldest first."""
    api = client_for(coordinator)
    grid = Grid.objects.get(project=made.project)
    x, y = grid.origin_x + 100, grid.origin_y - 100
    add = review(api, action="add", ground_x=x, ground_y=y)
    first = review(api, added=add["id"], action="move", ground_x=x + 4, ground_y=y)
    second = review(api, added=add["id"], action="move", ground_x=x + 8, ground_y=y)
    confirm = review(api, added=add["id"], action="confirm")
    assert api.post(f"/api/v1/reviews/{second['id']}/undo/").status_code == 200
    other = review(api, action="add", ground_x=x + 40, ground_y=y - 40)  # another building: not in this chain

    chain = [add["id"], first["id"], second["id"], confirm["id"]]
    feature = added_feature(api, add["id"])
    assert feature["properties"]["review_ids"] == chain
    assert feature["properties"]["added"] == add["id"]  # still its name: "review-<add id>"
    # What its live reviews decided (moved, then confirmed: "move", as for a crowd building) and the latest of them.
    assert feature["properties"]["review_action"] == "move" and feature["properties"]["review_id"] == confirm["id"]
    assert feature["properties"]["ground_x"] == pytest.approx(x + 4)  # the undone move no longer counts
    row = next(r for r in csv_rows(api, "buildings") if r["added"] == str(add["id"]))
    assert row["review_ids"] == " ".join(map(str, chain)) and float(row["ground_x"]) == pytest.approx(x + 4)
    assert added_feature(api, other["id"])["properties"]["review_ids"] == [other["id"]]
    crowd_only = {f["id"] for f in geojson(api, "buildings", "?reviews=0")["features"]}
    assert f"review-{add['id']}" not in crowd_only


def test_undoing_the_add_takes_the_building_away_whatever_came_after(made, coordinator) -> None:
    api = client_for(coordinator)
    grid = Grid.objects.get(project=made.project)
    add = review(api, action="add", ground_x=grid.origin_x + 80, ground_y=grid.origin_y - 80)
    review(api, added=add["id"], action="move", ground_x=grid.origin_x + 90, ground_y=grid.origin_y - 90)
    api.post(f"/api/v1/reviews/{add['id']}/undo/")
    assert added_feature(api, add["id"]) is None
    late = api.post(f"{BASE}/reviews/", {"added": add["id"], "action": "confirm"}, format="json")
    assert late.status_code == 409 and late.json()["error"]["fields"] == {"added": ["undone"]}


def test_the_review_tile_shows_an_added_building_where_it_was_moved(made, coordinator) -> None:
    api = client_for(coordinator)
    tile_id = int(made.tile_ids[0])
    bounds = api.get(f"{BASE}/review/tiles/{tile_id}/").json()["tile"]["bounds"]
    add = review(api, tile=tile_id, action="add", ground_x=bounds[0] + 20, ground_y=bounds[3] - 20)
    move = review(api, added=add["id"], action="move", ground_x=bounds[0] + 30, ground_y=bounds[3] - 20)
    shown = next(b for b in api.get(f"{BASE}/review/tiles/{tile_id}/").json()["buildings"]
                 if b.get("added") == add["id"])
    pixel = (bounds[2] - bounds[0]) / made.project.tile_size
    assert shown["x"] == pytest.approx(30 / pixel, abs=0.01) and shown["latest_review_id"] == move["id"]
    assert shown["rejected"] is False and shown["latest_action"] == "move"


def test_a_confirm_after_a_move_keeps_the_building_where_it_was_moved(made, coordinator) -> None:
    """Each review changes the state the ones before left: what its "after" says is what every output shows."""
    api = client_for(coordinator)
    building = sure_building(made)
    move = review(api, building=building.pk, action="move", ground_x=building.ground_x + 5,
                  ground_y=building.ground_y)
    confirm = review(api, building=building.pk, action="confirm")
    assert confirm["after"]["ground_x"] == pytest.approx(building.ground_x + 5)
    feature = next(f for f in geojson(api, "buildings")["features"] if f["id"] == building.pk)
    assert feature["properties"]["ground_x"] == pytest.approx(building.ground_x + 5)
    assert feature["properties"]["review_id"] == confirm["id"]
    assert feature["properties"]["review_ids"] == [move["id"], confirm["id"]]
    api.post(f"/api/v1/reviews/{move['id']}/undo/")  # the confirm alone: the crowd's place, vouched for
    feature = next(f for f in geojson(api, "buildings")["features"] if f["id"] == building.pk)
    assert feature["properties"]["ground_x"] == pytest.approx(building.ground_x)
    assert feature["properties"]["confidence"] == 1.0


def test_a_tile_relabelled_then_confirmed_keeps_the_coordinators_label(made, coordinator) -> None:
    api = client_for(coordinator)
    tile_id = int(made.tile_ids[4])
    label = other_label(made, tile_id)
    review(api, tile=tile_id, action="relabel", label=label)
    confirm = review(api, tile=tile_id, action="confirm")
    assert confirm["before"]["label"] == confirm["after"]["label"] == label
    feature = next(f for f in geojson(api, "tiles")["features"] if f["id"] == tile_id)
    assert feature["properties"]["label"] == label and feature["properties"]["confidence"] == 1.0


def test_a_reviewed_building_the_next_consensus_no_longer_finds_stays_in_the_trail(made, coordinator) -> None:
    api = client_for(coordinator)
    building = sure_building(made)
    rejected = review(api, building=building.pk, action="reject")
    assert rejected["before"]["building"] == building.pk
    Building.objects.filter(pk=building.pk).delete()  # what a recompute does to a building it does not find again
    stored = Review.objects.get(pk=rejected["id"])
    assert stored.building_id is None and stored.before["building"] == building.pk
    assert building.pk not in {f["id"] for f in geojson(api, "buildings")["features"]}
    assert api.get(f"{BASE}/reviews/").json()["count"] == 1


@pytest.mark.parametrize(("payload", "field"), [
    ({"action": "relabel", "label": "rubble"}, "label"),
    ({"action": "relabel"}, "label"),
    ({"action": "shrug"}, "action"),
    ({"action": "move"}, "action"),  # on a tile
    ({"action": "confirm", "tile": None}, "tile"),
    ({"action": "add"}, "location"),
    ({"action": "add", "lon": 10.0, "lat": 10.0}, "location"),
    ({"action": "add", "lon": 500.0, "lat": 10.0}, "lon"),
    ({"action": "confirm", "tile": 999999}, "tile"),
    ({"action": "reject", "building": 999999}, "building"),
    ({"action": "move", "added": 999999, "lon": 38.5, "lat": 36.0}, "added"),
])
def test_invalid_reviews_are_400_naming_the_field(made, coordinator, payload, field) -> None:
    payload = {"tile": int(made.tile_ids[0]), **payload}
    if payload["action"] in ("add",) or "building" in payload or "added" in payload:
        payload.pop("tile")
    response = client_for(coordinator).post(f"{BASE}/reviews/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"], response.json()
    assert not Review.objects.exists()


def test_a_review_of_an_added_building_names_it_alone_and_is_a_building_action(made, coordinator) -> None:
    api = client_for(coordinator)
    grid = Grid.objects.get(project=made.project)
    add = review(api, action="add", ground_x=grid.origin_x + 50, ground_y=grid.origin_y - 50)
    cases = [({"added": add["id"], "action": "relabel", "label": made.project.answer_keys[0]}, "action"),
             ({"added": add["id"], "building": sure_building(made).pk, "action": "reject"}, "added"),
             ({"added": add["id"], "tile": int(made.tile_ids[0]), "action": "confirm"}, "added"),
             ({"added": add["id"], "action": "add", "ground_x": grid.origin_x + 60, "ground_y": grid.origin_y - 60},
              "added")]
    for payload, field in cases:
        response = api.post(f"{BASE}/reviews/", payload, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], (payload, response.json())
    confirmed = review(api, added=add["id"], action="confirm")  # not an add review: there is no such building
    response = api.post(f"{BASE}/reviews/", {"added": confirmed["id"], "action": "reject"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {"added": ["not found"]}
    assert Review.objects.filter(project=made.project).count() == 2


def test_a_move_needs_a_building_inside_the_grid(made, coordinator) -> None:
    building = sure_building(made)
    response = client_for(coordinator).post(f"{BASE}/reviews/", {"building": building.pk, "action": "move",
                                                                 "ground_x": 0, "ground_y": 0}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"] == {"location": ["outside the grid"]}


@pytest.mark.parametrize(("who", "expected"), [("volunteer", 403), ("outsider", 404), ("manager", 201),
                                               ("coordinator", 201)])
def test_only_coordinators_review(made, django_user_model, outsider, who, expected) -> None:
    made.project.is_public = False
    made.project.save()
    user = outsider if who == "outsider" else member(django_user_model, made.project, who, f"u-{who}")
    api = client_for(user)
    response = api.post(f"{BASE}/reviews/", {"tile": int(made.tile_ids[0]), "action": "confirm"}, format="json")
    assert response.status_code == expected
    for url in (f"{BASE}/reviews/", f"{BASE}/review/queue/", f"{BASE}/review/tiles/{made.tile_ids[0]}/"):
        assert api.get(url).status_code == (200 if expected == 201 else expected), url
    some = Review.objects.create(project=made.project, tile_id=int(made.tile_ids[1]), action="confirm")
    assert api.post(f"/api/v1/reviews/{some.pk}/undo/").status_code == (200 if expected == 201 else expected)


def test_the_queue_puts_the_most_valuable_first_and_leaves_out_reviewed_ones(made, coordinator) -> None:
    api = client_for(coordinator)
    tiles = api.get(f"{BASE}/review/queue/?kind=tile&limit=500").json()
    scores = [item["score"] for item in tiles["results"]]
    assert tiles["count"] > 0 and scores == sorted(scores, reverse=True)
    assert all(item["kind"] == "tile" for item in tiles["results"])
    top = tiles["results"][0]
    assert top["score"] == pytest.approx((1 - top["confidence"]) * (1 + top["buildings"]), abs=1e-5)
    review(api, tile=top["id"], action="confirm")
    after = api.get(f"{BASE}/review/queue/?kind=tile&limit=500").json()
    assert after["count"] == tiles["count"] - 1 and top["id"] not in {i["id"] for i in after["results"]}

    buildings = api.get(f"{BASE}/review/queue/?kind=building&limit=2").json()
    if buildings["count"]:
        first = buildings["results"][0]
        assert first["score"] == pytest.approx((1 - 2 * abs(first["confidence"] - 0.5)) * (1 + first["n_support"]),
                                               abs=1e-5)
        assert len(buildings["results"]) <= 2 and first["tile_id"] is not None
    assert api.get(f"{BASE}/review/queue/?kind=roof").status_code == 400


def test_the_review_tile_shows_buildings_in_tile_pixels(made, coordinator) -> None:
    building = sure_building(made)
    data = None
    for tile_id in made.tile_ids.tolist():
        data = client_for(coordinator).get(f"{BASE}/review/tiles/{tile_id}/").json()
        if any(b["id"] == building.pk for b in data["buildings"]):
            break
    shown = next(b for b in data["buildings"] if b["id"] == building.pk)
    tile = data["tile"]
    assert 0 <= shown["x"] <= tile["size"] and 0 <= shown["y"] <= tile["size"]
    assert tile["bounds"][0] + shown["x"] * tile["pixel_size"] == pytest.approx(building.ground_x, abs=0.02)
    assert tile["bounds"][3] - shown["y"] * tile["pixel_size"] == pytest.approx(building.ground_y, abs=0.02)


def test_publishing_opens_the_results_to_volunteers_who_worked_on_the_project(made, django_user_model, client,
                                                                            coordinator) -> None:
    worker = made.users[int(made.crowd.vote_volunteer[0])]
    url = "/projects/city/results/"
    client.force_login(worker)
    assert client.get(url).status_code == 403  # they can see the project, not yet its results
    assert client_for(worker).post(f"{BASE}/publish/").status_code == 403
    assert client_for(coordinator).post(f"{BASE}/publish/").status_code == 403  # managers and admins publish
    manager = member(django_user_model, made.project, Membership.Role.MANAGER, "boss2")
    published = client_for(manager).post(f"{BASE}/publish/")
    assert published.status_code == 200 and published.json()["published_at"]
    made.project.refresh_from_db()
    assert made.project.published_at is not None and made.project.published_at <= timezone.now()
    page = client.get(url)
    assert page.status_code == 200
    mine = set(Classification.objects.filter(project=made.project, volunteer=worker).values_list("id", flat=True))
    confirmed = sum(1 for b in Building.objects.filter(project=made.project, confidence__gte=0.5)
                    if mine.intersection(b.classification_ids))
    assert page.context["contribution"]["tiles"] == len(mine)
    assert page.context["contribution"]["buildings_confirmed"] == confirmed
    assert page.context["contribution"]["buildings_found"] == Building.objects.filter(
        project=made.project, confidence__gte=0.5).count()
    stranger = django_user_model.objects.create_user("stranger")
    client.force_login(stranger)
    assert client.get(url).status_code == 403  # published, but not to people who did not take part
    assert client_for(manager).delete(f"{BASE}/publish/").json()["published_at"] is None
    client.force_login(worker)
    assert client.get(url).status_code == 403


def test_the_review_page_is_for_coordinators(made, client, coordinator, volunteer) -> None:
    client.force_login(coordinator)
    page = client.get("/projects/city/review/")
    assert page.status_code == 200 and b'id="review-app"' in page.content
    client.force_login(volunteer)
    assert client.get("/projects/city/review/").status_code == 403
