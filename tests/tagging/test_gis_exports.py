"""GeoPackage and KML exports: they open (pyogrio, xml.etree), carry their provenance, and apply the reviews."""

from __future__ import annotations

import csv
import io
import json
import struct
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pyogrio
import pyogrio.raw
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tagging.consensus.simulate import CrowdSpec
from tagging.consensus_store import recompute_project
from tagging.evidence import write_evidence_file
from tagging.models import Building, Membership, TileConsensus
from tests.consensus.crowd_db import CrowdProject, crowd_project

pytestmark = pytest.mark.django_db

SPEC = CrowdSpec(n_cols=5, n_rows=5, n_volunteers=12, activity_sigma=0.8, gold_rate=0.1, destroyed_per_tile=0.8,
                 seed=21)
BASE = "/api/v1/projects/gis"
KML = "{http://www.opengis.net/kml/2.2}"


@pytest.fixture
def made() -> CrowdProject:
    made = crowd_project(SPEC, slug="gis")
    recompute_project(project_id=made.project.pk)
    return made


@pytest.fixture
def api(django_user_model, made) -> APIClient:
    user = django_user_model.objects.create_user("gis-coord")
    Membership.objects.create(project=made.project, user=user, role=Membership.Role.COORDINATOR)
    client = APIClient()
    client.force_authenticate(user)
    return client


def download(api: APIClient, url: str, tmp_path: Path) -> Path:
    response = api.get(url)
    assert response.status_code == 200, url
    name, _, query = url.rsplit("/", 1)[1].partition("?")
    path = tmp_path / f"{query.replace('=', '')}-{name}"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def read_gpkg(path: Path) -> tuple[dict, dict[str, list]]:
    meta, _, geometry, values = pyogrio.raw.read(str(path))
    return meta, {name: list(column) for name, column in zip(meta["fields"], values)} | {"geometry": list(geometry)}


def kml_placemarks(text: bytes) -> tuple[ET.Element, list[dict[str, str | None]]]:
    root = ET.fromstring(text)
    document = root.find(f"{KML}Document")
    rows = []
    for placemark in document.iter(f"{KML}Placemark"):
        rows.append({d.get("name"): d.findtext(f"{KML}value") for d in placemark.iter(f"{KML}Data")}
                    | {"coordinates": placemark.findtext(f".//{KML}coordinates")})
    return document, rows


def test_the_buildings_geopackage_opens_with_points_fields_and_provenance(made, api, tmp_path) -> None:
    path = download(api, f"{BASE}/consensus/buildings.gpkg", tmp_path)
    meta, columns = read_gpkg(path)
    expected = Building.objects.filter(project=made.project, confidence__gte=0.5).count()
    assert meta["geometry_type"] == "Point" and meta["crs"] == "EPSG:4326"
    assert len(columns["building_id"]) == expected > 0
    assert {"confidence", "votes_for", "votes_against", "first_destroyed", "reviewed", "classification_ids"} <= set(
        columns)
    info = pyogrio.read_info(str(path))
    provenance = json.loads(info["layer_metadata"]["provenance"])
    assert provenance["project"] == "gis" and provenance["reviews"]["applied"] is True
    assert provenance["run"]["method"].startswith("consensus v1") and "layers" in provenance
    assert "reviews applied" in info["layer_metadata"]["DESCRIPTION"]


def test_the_tiles_geopackage_and_kml_carry_every_tile(made, api, tmp_path) -> None:
    meta, columns = read_gpkg(download(api, f"{BASE}/consensus/tiles.gpkg", tmp_path))
    assert meta["geometry_type"] == "Polygon" and len(columns["tile_id"]) == made.crowd.n_tiles
    response = api.get(f"{BASE}/consensus/tiles.kml")
    assert response["Content-Type"] == "application/vnd.google-earth.kml+xml"
    document, rows = kml_placemarks(b"".join(response.streaming_content))
    assert len(rows) == made.crowd.n_tiles
    assert {d.get("name") for d in document.find(f"{KML}ExtendedData")} >= {"project", "run", "layers", "reviews",
                                                                             "generated_at"}
    assert "gis" in document.findtext(f"{KML}description")
    ring = rows[0]["coordinates"].split()
    assert len(ring) == 5 and ring[0] == ring[-1]


def test_reviews_show_in_geopackage_and_kml_and_reviews_0_is_the_crowd(made, api, tmp_path) -> None:
    tile_id = int(made.tile_ids[2])
    crowd_label = TileConsensus.objects.get(tile_id=tile_id).label
    label = next(k for k in made.project.answer_keys if k != crowd_label)
    rejected = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id").first()
    assert api.post(f"{BASE}/reviews/", {"tile": tile_id, "action": "relabel", "label": label},
                    format="json").status_code == 201
    assert api.post(f"{BASE}/reviews/", {"building": rejected.pk, "action": "reject"}, format="json").status_code == 201

    _, tiles = read_gpkg(download(api, f"{BASE}/consensus/tiles.gpkg", tmp_path))
    row = tiles["tile_id"].index(tile_id)
    assert tiles["label"][row] == label and tiles["confidence"][row] == 1.0 and tiles["reviewed"][row]
    assert tiles["crowd_label"][row] == crowd_label
    _, buildings = read_gpkg(download(api, f"{BASE}/consensus/buildings.gpkg", tmp_path))
    assert rejected.pk not in buildings["building_id"]
    _, crowd = read_gpkg(download(api, f"{BASE}/consensus/buildings.gpkg?reviews=0", tmp_path))
    assert rejected.pk in crowd["building_id"]

    _, kml_tiles = kml_placemarks(b"".join(api.get(f"{BASE}/consensus/tiles.kml").streaming_content))
    mine = next(r for r in kml_tiles if r["tile_id"] == str(tile_id))
    assert mine["label"] == label and mine["reviewed"] == "True"
    _, kml_buildings = kml_placemarks(b"".join(api.get(f"{BASE}/consensus/buildings.kml").streaming_content))
    assert str(rejected.pk) not in {r["building_id"] for r in kml_buildings}
    _, kml_crowd = kml_placemarks(b"".join(api.get(f"{BASE}/consensus/buildings.kml?reviews=0").streaming_content))
    assert str(rejected.pk) in {r["building_id"] for r in kml_crowd}
    assert api.get(f"{BASE}/consensus/tiles.kml?reviews=maybe").status_code == 400


def test_an_added_building_shows_its_latest_place_and_every_review_in_geopackage_and_kml(made, api,
                                                                                         tmp_path) -> None:
    grid = made.project.grid
    x, y = grid.origin_x + 120, grid.origin_y - 120

    def post(**payload) -> dict:
        response = api.post(f"{BASE}/reviews/", payload, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    add = post(action="add", ground_x=x, ground_y=y)
    move = post(added=add["id"], action="move", ground_x=x + 7, ground_y=y - 3)
    again = post(added=add["id"], action="move", ground_x=x + 30, ground_y=y)
    assert api.post(f"/api/v1/reviews/{again['id']}/undo/").status_code == 200
    chain = f"{add['id']} {move['id']} {again['id']}"

    _, gpkg = read_gpkg(download(api, f"{BASE}/consensus/buildings.gpkg", tmp_path))
    row = gpkg["added"].index(add["id"])
    assert gpkg["ground_x"][row] == pytest.approx(x + 7) and gpkg["ground_y"][row] == pytest.approx(y - 3)
    assert gpkg["review_ids"][row] == chain and gpkg["source"][row] == "review" and gpkg["confidence"][row] == 1.0
    assert gpkg["geometry"][row] == pyogrio_point(move["lon"], move["lat"])
    _, kml = kml_placemarks(b"".join(api.get(f"{BASE}/consensus/buildings.kml").streaming_content))
    placemark = next(r for r in kml if r["added"] == str(add["id"]))
    assert placemark["review_ids"] == chain and float(placemark["ground_x"]) == pytest.approx(x + 7)
    lon, lat = map(float, placemark["coordinates"].split(","))
    assert (lon, lat) == (pytest.approx(move["lon"]), pytest.approx(move["lat"]))
    _, crowd = read_gpkg(download(api, f"{BASE}/consensus/buildings.gpkg?reviews=0", tmp_path))
    assert add["id"] not in crowd["added"]


REVIEW_FIELDS = ("source", "added", "review_action", "review_id", "review_ids")


def review_fields(name: str, data: bytes, tmp_path: Path) -> dict[str, tuple[str, ...]]:
    """Per building (its feature id), its REVIEW_FIELDS as text, read back from the export file `name`."""
    def text(value) -> str:
        if isinstance(value, float):  # a GeoPackage's integer column with empty values reads back as floats
            return "" if value != value else str(int(value))
        if value is None:
            return ""
        return " ".join(map(str, value)) if isinstance(value, list) else str(value)

    if name.endswith(".geojson"):
        rows = [f["properties"] for f in json.loads(data)["features"]]
    elif name.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(data.decode())))
    elif name.endswith(".kml"):
        rows = kml_placemarks(data)[1]
    else:
        path = tmp_path / f"read-{name}"
        path.write_bytes(data)
        _, columns = read_gpkg(path)
        rows = [{field: columns[field][i] for field in REVIEW_FIELDS + ("building_id",)}
                for i in range(len(columns["source"]))]
    by_id = {}
    for row in rows:
        name_of = text(row["building_id"]) if row["source"] == "crowd" else f"review-{text(row['added'])}"
        by_id[name_of] = tuple(text(row[field]) for field in REVIEW_FIELDS)
    return by_id


def test_every_export_says_an_added_building_moved_later_was_moved_and_keeps_its_origin(made, api,
                                                                                        tmp_path) -> None:
    """The review columns come from one place: GeoJSON, CSV, GeoPackage, KML and the evidence bundle agree, and
    an added building moved later reads like a moved crowd building, with its origin (source, added) kept."""
    grid = made.project.grid
    x, y = grid.origin_x + 120, grid.origin_y - 120

    def post(**payload) -> dict:
        response = api.post(f"{BASE}/reviews/", payload, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    crowd = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id").first()
    crowd_move = post(building=crowd.pk, action="move", ground_x=crowd.ground_x + 3, ground_y=crowd.ground_y)
    add = post(action="add", ground_x=x, ground_y=y)
    move = post(added=add["id"], action="move", ground_x=x + 7, ground_y=y - 3)
    still = post(action="add", ground_x=x + 60, ground_y=y - 60)
    expected = {
        str(crowd.pk): ("crowd", "", "move", str(crowd_move["id"]), str(crowd_move["id"])),
        f"review-{add['id']}": ("review", str(add["id"]), "move", str(move["id"]), f"{add['id']} {move['id']}"),
        f"review-{still['id']}": ("review", str(still["id"]), "add", str(still["id"]), str(still["id"])),
    }

    files = {name: b"".join(api.get(f"{BASE}/consensus/{name}").streaming_content)
             for name in ("buildings.geojson", "buildings.csv", "buildings.gpkg", "buildings.kml")}
    write_evidence_file(project=made.project, path=tmp_path / "evidence.zip")
    with zipfile.ZipFile(tmp_path / "evidence.zip") as bundle:
        files |= {f"evidence-{name}": bundle.read(f"consensus/reviewed/{name}") for name in list(files)}
    for name, data in files.items():
        found = review_fields(name, data, tmp_path)
        assert {key: found.get(key) for key in expected} == expected, name


def pyogrio_point(lon: float, lat: float) -> bytes:
    """A WKB point as pyogrio reads it back from a GeoPackage."""
    return struct.pack("<BIdd", 1, 1, lon, lat)


def test_csv_provenance_is_a_separate_json_linked_from_the_csv(made, api) -> None:
    response = api.get(f"{BASE}/consensus/buildings.csv?reviews=0")
    assert b"".join(response.streaming_content).startswith(b"building_id,")  # rows only: no comment lines
    assert 'filename="gis-buildings-crowd.csv"' in response["Content-Disposition"]
    link = response["Link"].split(";")[0].strip("<>")
    provenance = api.get(link).json()
    assert provenance["reviews"]["applied"] is False and provenance["run"]["parameters"]


@pytest.mark.parametrize("who", ["volunteer", "outsider"])
def test_gis_exports_are_for_coordinators(made, django_user_model, who) -> None:
    made.project.is_public = False
    made.project.save()
    user = django_user_model.objects.create_user(f"gis-{who}")
    if who == "volunteer":
        Membership.objects.create(project=made.project, user=user)
    client = APIClient()
    client.force_authenticate(user)
    for name in ("tiles.gpkg", "buildings.gpkg", "tiles.kml", "buildings.kml", "provenance.json"):
        assert client.get(f"{BASE}/consensus/{name}").status_code == (403 if who == "volunteer" else 404)


def test_export_consensus_writes_every_format_asked_for(made, tmp_path) -> None:
    out = tmp_path / "export"
    call_command("export_consensus", "gis", "--out", str(out), "--format", "geojson,csv,gpkg,kml",
                 stdout=open(tmp_path / "log", "w"))
    names = {p.name for p in out.iterdir()}
    assert names == {"tiles.geojson", "tiles.csv", "buildings.geojson", "buildings.csv", "tiles.gpkg",
                     "buildings.gpkg", "tiles.kml", "buildings.kml", "provenance.json"}
    ET.parse(out / "buildings.kml")
    assert pyogrio.read_info(str(out / "tiles.gpkg"))["features"] == made.crowd.n_tiles
    with pytest.raises(Exception, match="--format"):
        call_command("export_consensus", "gis", "--out", str(out), "--format", "shp")
