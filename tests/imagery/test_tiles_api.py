"""Listing tiles and serving their images: who may, with which caching headers."""

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from imagery.models import Tile, TileImage
from tagging.models import Membership
from tests.clients import client_for
from tests.imagery.helpers import make_project, upload
from tests.rasters import write_geotiff

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_with_tiles(admin_user, tmp_path, django_capture_on_commit_callbacks):
    project = make_project()
    api = APIClient()
    api.force_authenticate(admin_user)
    source = write_geotiff(tmp_path / "s.tif", width=1400, height=1000)
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, "raqqa", [("s.tif", source.read_bytes())]).status_code == 202
    return project


def test_tiles_are_listed_with_bounds_and_image_urls(project_with_tiles, volunteer) -> None:
    body = client_for(volunteer).get("/api/v1/projects/raqqa/tiles/").json()
    assert body["count"] == 9
    first = body["results"][0]
    assert (first["col"], first["row"], first["size"]) == (0, 0, 512)
    assert first["bounds"] == [500_000.0, 3_980_000.0 - 256.0, 500_256.0, 3_980_000.0]
    west, south, east, north = first["bounds_wgs84"]
    assert 38.9 < west < east < 39.1 and 35.9 < south < north < 36.0
    assert first["images"][0]["url"] == f"/api/v1/tiles/{first['id']}/images/{first['images'][0]['layer']}/"


def test_tiles_are_filtered_by_bounding_box(project_with_tiles, volunteer) -> None:
    corner = Tile.objects.get(col=2, row=2)
    # A box a few metres wide around the bottom-right corner of the scene: only the last cell.
    box = f"{corner.east - 0.0005},{corner.south},{corner.east},{corner.south + 0.0005}"
    found = client_for(volunteer).get("/api/v1/projects/raqqa/tiles/", {"bbox": box}).json()["results"]
    assert [(t["col"], t["row"]) for t in found] == [(2, 2)]
    everything = client_for(volunteer).get("/api/v1/projects/raqqa/tiles/", {"bbox": "-180,-90,180,90"}).json()
    assert everything["count"] == 9


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "10,10,5,20", "0,-100,1,1"])
def test_a_bad_bounding_box_is_a_400_naming_bbox(project_with_tiles, volunteer, bbox: str) -> None:
    response = client_for(volunteer).get("/api/v1/projects/raqqa/tiles/", {"bbox": bbox})
    assert response.status_code == 400
    assert "bbox" in response.json()["error"]["fields"]


def test_a_tile_image_is_served_with_an_etag_and_a_long_private_cache(project_with_tiles, volunteer) -> None:
    image = TileImage.objects.select_related("tile").first()
    api = client_for(volunteer)
    url = f"/api/v1/tiles/{image.tile_id}/images/{image.layer_id}/"
    response = api.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    body = b"".join(response.streaming_content)
    with default_storage.open(image.key, "rb") as handle:
        assert body == handle.read()
    assert response["ETag"] == f'"{image.etag}"'
    assert "max-age=31536000" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    again = api.get(url, HTTP_IF_NONE_MATCH=f'"{image.etag}"')
    assert again.status_code == 304


def test_private_projects_hide_their_tiles_from_outsiders(project_with_tiles, volunteer, outsider) -> None:
    project_with_tiles.is_public = False
    project_with_tiles.save()
    Membership.objects.create(project=project_with_tiles, user=volunteer)
    image = TileImage.objects.first()
    url = f"/api/v1/tiles/{image.tile_id}/images/{image.layer_id}/"
    assert client_for(volunteer).get(url).status_code == 200
    assert client_for(outsider).get(url).status_code == 404
    assert client_for(outsider).get("/api/v1/projects/raqqa/tiles/").status_code == 404
    assert client_for(outsider).get(f"/api/v1/tiles/{image.tile_id}/").status_code == 404
    assert client_for(outsider).get(f"/api/v1/layers/{image.layer_id}/").status_code == 404
    assert APIClient().get(url).status_code in (401, 403)


def test_volunteers_see_layer_progress_but_not_source_files(project_with_tiles, volunteer, admin_user) -> None:
    layer_id = TileImage.objects.first().layer_id
    seen = client_for(volunteer).get(f"/api/v1/layers/{layer_id}/").json()
    assert seen["status"] == "ready" and "files" not in seen
    assert client_for(admin_user).get(f"/api/v1/layers/{layer_id}/").json()["files"][0]["sha256"]


def test_a_missing_image_is_a_json_404(project_with_tiles, volunteer) -> None:
    tile = Tile.objects.first()
    response = client_for(volunteer).get(f"/api/v1/tiles/{tile.pk}/images/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_retrying_a_layer_that_did_not_fail_is_refused(project_with_tiles, admin_user, volunteer) -> None:
    layer_id = TileImage.objects.first().layer_id
    assert client_for(volunteer).post(f"/api/v1/layers/{layer_id}/retry/").status_code == 403
    response = client_for(admin_user).post(f"/api/v1/layers/{layer_id}/retry/")
    assert response.status_code == 400
    assert "not failed" in response.json()["error"]["message"]
