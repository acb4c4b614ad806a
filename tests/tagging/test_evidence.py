"""The evidence bundle: every file in its manifest, a chain of custody from a building to its votes, checksums."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from imagery.models import ImageryLayer, LayerFile
from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.evidence import MANIFEST
from tagging.models import Building, Classification, Membership, Review
from tagging.reviews import create_review, undo_review
from tests.consensus.crowd_db import CrowdProject, crowd_project

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=5, n_rows=5, n_volunteers=12, activity_sigma=0.8, gold_rate=0.15, destroyed_per_tile=0.8,
                 seed=31)


@pytest.fixture
def made(django_user_model) -> CrowdProject:
    made = crowd_project(SPEC, slug="proof", dates=("2017-06-01", "2017-09-01"))
    recompute_project(project_id=made.project.pk)
    for n, layer in enumerate(ImageryLayer.objects.filter(project=made.project)):
        LayerFile.objects.create(layer=layer, position=0, path=f"p/{n}.tif", original_name=f"scene-{n}.tif",
                                 sha256=hashlib.sha256(f"scene {n}".encode()).hexdigest(), size_bytes=1000 + n)
    coordinator = django_user_model.objects.create_user("proof-coord")
    Membership.objects.create(project=made.project, user=coordinator, role=Membership.Role.COORDINATOR)
    building = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id").first()
    Review.objects.create(project=made.project, building=building, action="confirm", reviewer=coordinator,
                          before={"confidence": building.confidence}, after={"confidence": 1.0}, note="seen on site")
    return made


@pytest.fixture
def bundle(made, tmp_path) -> zipfile.ZipFile:
    out = tmp_path / "proof.zip"
    call_command("export_evidence", "proof", "--out", str(out), stdout=io.StringIO())
    return zipfile.ZipFile(out)


def rows(bundle: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.TextIOWrapper(bundle.open(name), encoding="utf-8")))


def test_the_manifest_lists_every_file_with_its_sha256(bundle, tmp_path) -> None:
    manifest = bundle.read(MANIFEST).decode().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in manifest}
    assert set(listed) == set(bundle.namelist()) - {MANIFEST}
    for name, digest in listed.items():
        assert hashlib.sha256(bundle.read(name)).hexdigest() == digest, name
    assert {"consensus/reviewed/buildings.geojson", "consensus/crowd/buildings.csv", "consensus/reviewed/tiles.gpkg",
            "consensus/reviewed/buildings.kml", "classifications.csv", "marks.csv", "gold/gold_tiles.csv",
            "gold/gold_results.csv", "volunteers/reliability.csv", "reviews.json", "imagery.json", "grid.json",
            "method.json", "METHODOLOGY.md"} <= set(listed)
    folder = tmp_path / "unzipped"
    bundle.extractall(folder)
    check = subprocess.run(["sha256sum", "-c", "--quiet", MANIFEST], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_building_row_leads_to_its_classifications_and_reviews(made, bundle) -> None:
    classifications = {row["classification_id"]: row for row in rows(bundle, "classifications.csv")}
    assert len(classifications) == Classification.objects.filter(project=made.project).count()
    marks = rows(bundle, "marks.csv")
    reviews = {r["id"]: r for r in json.loads(bundle.read("reviews.json"))}
    buildings = json.loads(bundle.read("consensus/reviewed/buildings.geojson"))["features"]
    reviewed = [b for b in buildings if b["properties"]["reviewed"]]
    assert len(reviewed) == 1 and reviewed[0]["properties"]["confidence"] == 1.0
    review = reviews[reviewed[0]["properties"]["review_id"]]
    assert review["action"] == "confirm" and review["before"]["confidence"] < 1 and review["note"] == "seen on site"
    assert review["reviewer"].startswith("c-") and "proof-coord" not in bundle.read("reviews.json").decode()
    for feature in buildings:
        ids = feature["properties"]["classification_ids"]
        assert all(str(i) in classifications for i in ids)
    some = next(f for f in buildings if f["properties"]["classification_ids"])
    behind = classifications[str(some["properties"]["classification_ids"][0])]
    assert behind["volunteer"].startswith("v-") and behind["answer"] and behind["created_at"]
    on_it = [m for m in marks if m["classification_id"] == behind["classification_id"]]
    assert on_it and all(m["x_px"] and m["ground_x"] and m["lon"] and m["date"] for m in on_it)
    with io.TextIOWrapper(bundle.open("consensus/reviewed/buildings.csv"), encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    assert all(i in classifications for i in first["classification_ids"].split())
    tiles = json.loads(bundle.read("consensus/crowd/tiles.geojson"))["features"]
    assert all(str(i) in classifications for t in tiles for i in t["properties"]["classification_ids"])


def replay_added(reviews: list[dict]) -> dict[str, tuple[float, float] | None]:
    """An outsider's replay of the added buildings from reviews.json, by METHODOLOGY.md: target -> (lon, lat),
    None when rejected; an undone add review leaves no building."""
    state: dict[str, dict] = {}
    for r in reviews:  # already in the order they count
        target = r["target"] or ""
        if r["undone_at"] is not None or not target.startswith("review-"):
            continue
        if r["action"] == "add":
            state[target] = {"place": (r["lon"], r["lat"]), "rejected": False}
        elif target in state:
            if r["action"] == "move":
                state[target]["place"] = (r["lon"], r["lat"])
            state[target]["rejected"] = r["action"] == "reject"
    return {target: None if s["rejected"] else s["place"] for target, s in state.items()}


def test_a_third_party_replays_the_reviews_of_an_added_building_from_the_bundle(made, tmp_path) -> None:
    coordinator = Membership.objects.get(project=made.project, role="coordinator").user
    grid = made.project.grid
    x, y = grid.origin_x + 100, grid.origin_y - 100

    def act(**kwargs) -> Review:
        return create_review(project=made.project, reviewer=coordinator, **kwargs)

    kept = act(action="add", ground_x=x, ground_y=y, note="missed")
    move = act(added=kept, action="move", ground_x=x + 6, ground_y=y - 2)
    undo_review(review=act(added=kept, action="move", ground_x=x + 40, ground_y=y), user=coordinator)
    act(added=kept, action="confirm")
    dropped = act(action="add", ground_x=x + 60, ground_y=y - 60)
    act(added=dropped, action="reject", note="a shadow")
    gone = act(action="add", ground_x=x + 90, ground_y=y - 90)
    undo_review(review=gone, user=coordinator)
    out = tmp_path / "replay.zip"
    call_command("export_evidence", "proof", "--out", str(out), stdout=io.StringIO())
    bundle = zipfile.ZipFile(out)

    reviews = json.loads(bundle.read("reviews.json"))
    assert [r["id"] for r in reviews] == sorted(r["id"] for r in reviews)  # the order they count
    by_id = {r["id"]: r for r in reviews}
    assert by_id[move.pk]["added"] == kept.pk and by_id[move.pk]["target"] == f"review-{kept.pk}"
    assert by_id[kept.pk]["added"] is None and by_id[kept.pk]["target"] == f"review-{kept.pk}"
    confirm = next(r for r in reviews if r["building_id"] is not None)  # the fixture's review of a crowd building
    assert confirm["target"] == f"building-{confirm['building_id']}" and confirm["added"] is None
    replayed = replay_added(reviews)
    assert replayed == {f"review-{kept.pk}": (move.lon, move.lat), f"review-{dropped.pk}": None}

    features = json.loads(bundle.read("consensus/reviewed/buildings.geojson"))["features"]
    exported = {f["id"]: tuple(f["geometry"]["coordinates"]) for f in features if f["properties"]["source"] == "review"}
    assert exported == {target: place for target, place in replayed.items() if place is not None}
    chain = next(f for f in features if f["id"] == f"review-{kept.pk}")["properties"]["review_ids"]
    assert chain == [r["id"] for r in reviews if r["target"] == f"review-{kept.pk}"]  # undone ones too

    rows = {int(r["id"]): r for r in csv.DictReader(io.TextIOWrapper(bundle.open("reviews.csv"), encoding="utf-8"))}
    assert set(rows) == set(by_id)
    assert rows[move.pk]["added"] == str(kept.pk) and rows[move.pk]["target"] == f"review-{kept.pk}"
    assert json.loads(rows[move.pk]["after"]) == by_id[move.pk]["after"] and rows[kept.pk]["added"] == ""
    assert "## Replaying the reviews" in bundle.read("METHODOLOGY.md").decode()


def test_pseudonyms_are_stable_and_are_not_usernames(made, bundle, tmp_path) -> None:
    text = bundle.read("classifications.csv").decode()
    assert "proof-v0" not in text  # the usernames of the simulated crowd
    again = tmp_path / "again.zip"
    call_command("export_evidence", "proof", "--out", str(again), stdout=io.StringIO())
    first = [(r["classification_id"], r["volunteer"]) for r in rows(bundle, "classifications.csv")]
    assert first == [(r["classification_id"], r["volunteer"]) for r in rows(zipfile.ZipFile(again),
                                                                            "classifications.csv")]
    reliability = {r["volunteer"] for r in rows(bundle, "volunteers/reliability.csv")}
    assert reliability and reliability <= {v for _, v in first}
    gold = rows(bundle, "gold/gold_results.csv")
    assert gold and all(r["correct"] in ("True", "False") for r in gold)


def test_the_layers_checksums_match_the_stored_files(made, bundle) -> None:
    imagery = json.loads(bundle.read("imagery.json"))
    stored = {f.original_name: f.sha256 for f in LayerFile.objects.filter(layer__project=made.project)}
    listed = {f["name"]: f["sha256"] for layer in imagery for f in layer["files"]}
    assert listed == stored and len(imagery) == 2
    assert [layer["date"] for layer in imagery] == ["2017-06-01", "2017-09-01"]
    grid = json.loads(bundle.read("grid.json"))
    assert grid["crs"] == "EPSG:32637" and grid["tile_size"] == 512
    method = json.loads(bundle.read("method.json"))
    assert method["run"]["parameters"] and method["code_version"] and method["project"]["redundancy"]
    note = bundle.read("METHODOLOGY.md").decode()
    assert "# Methodology: Proof" in note and "sha256sum -c" in note and "2017-09-01" in note


@pytest.mark.parametrize(("role", "expected"), [("volunteer", 403), (None, 404), ("coordinator", 200)])
def test_the_api_streams_the_bundle_to_coordinators_only(made, django_user_model, role, expected) -> None:
    made.project.is_public = False
    made.project.save()
    user = django_user_model.objects.create_user(f"who-{role}")
    if role:
        Membership.objects.create(project=made.project, user=user, role=role)
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/v1/projects/proof/evidence.zip")
    assert response.status_code == expected
    if expected == 200:
        assert response["Content-Type"] == "application/zip" and "proof-evidence-" in response["Content-Disposition"]
        archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
        assert MANIFEST in archive.namelist() and archive.testzip() is None
        assert api.get("/api/v1/projects/proof/evidence.zip").status_code == 200


def test_a_failed_bundle_leaves_no_file(made, tmp_path, monkeypatch) -> None:
    import tagging.evidence

    def broken(project):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(tagging.evidence, "reviews_json", broken)
    with pytest.raises(RuntimeError):
        call_command("export_evidence", "proof", "--out", str(tmp_path / "x.zip"), stdout=io.StringIO())
    assert not list(Path(tmp_path).glob("*x.zip*"))
