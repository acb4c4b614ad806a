"""Uploading imagery through the API: what is accepted, and every kind of bad input."""

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from imagery.models import Grid, ImageryLayer, LayerFile, Tile
from tests.imagery.helpers import files_under, make_project, upload
from tests.rasters import UTM, scene, write_geotiff

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(admin_user) -> APIClient:
    api = APIClient()
    api.force_authenticate(admin_user)
    return api


def tif_bytes(tmp_path: Path, name: str = "scene.tif", **options: object) -> bytes:
    return write_geotiff(tmp_path / name, **options).read_bytes()  # type: ignore[arg-type]


def test_an_upload_answers_202_at_once_and_the_worker_makes_tiles(
        client, tmp_path, django_capture_on_commit_callbacks) -> None:
    make_project()
    content = tif_bytes(tmp_path, width=1000, height=700, tiled=True, blockxsize=256, blockysize=256,
                        compress="deflate")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "raqqa", [("raqqa-2017.tif", content)], source="WorldView-3")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "uploaded"
    assert body["files"][0]["original_name"] == "raqqa-2017.tif"
    layer = ImageryLayer.objects.get(pk=body["id"])
    assert layer.status == "ready"
    assert layer.files.get().sha256 == __import__("hashlib").sha256(content).hexdigest()
    # 1000 x 700 px with 512 px tiles every 448 px: 3 columns, 2 rows.
    assert layer.tiles_total == 6 and layer.tile_count == 6 and layer.tiles_done == 6
    assert Tile.objects.filter(grid__project__slug="raqqa").count() == 6
    status = client.get(f"/api/v1/layers/{layer.pk}/").json()
    assert (status["status"], status["progress"], status["tile_count"]) == ("ready", 1.0, 6)


def _not_georeferenced(tmp_path: Path) -> bytes:
    return write_geotiff(tmp_path / "plain.tif", crs=None).read_bytes()


def _truncated(tmp_path: Path) -> bytes:
    data = tif_bytes(tmp_path, width=1024, height=1024, tiled=True, blockxsize=256, blockysize=256,
                     compress="deflate")
    return data[: len(data) // 2]


def _corrupt(tmp_path: Path) -> bytes:
    data = bytearray(tif_bytes(tmp_path, width=1024, height=1024, tiled=True, blockxsize=256, blockysize=256,
                               compress="deflate"))
    data[len(data) // 2: len(data) // 2 + 20000] = b"\xff" * 20000
    return bytes(data)


def _bomb(tmp_path: Path) -> bytes:
    # A sparse file: tiny on disk, but it declares 100,000 x 100,000 RGB pixels (30 GB).
    path = tmp_path / "bomb.tif"
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=3, dtype="uint8",
                       crs=UTM, transform=from_origin(500_000, 4_000_000, 0.5, 0.5), tiled=True,
                       compress="deflate", sparse_ok=True):
        pass
    return path.read_bytes()


def _too_many_bands(tmp_path: Path) -> bytes:
    return write_geotiff(tmp_path / "bands.tif", data=scene(64, 64, count=40)).read_bytes()


def _complex(tmp_path: Path) -> bytes:
    return write_geotiff(tmp_path / "c.tif", data=np.ones((1, 64, 64), dtype="complex64")).read_bytes()


def _png(tmp_path: Path) -> bytes:
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return path.read_bytes()


BAD_FILES = [
    ("not a TIFF", "photo.tif", _png, "PNG file; upload GeoTIFF"),
    ("not an image at all", "notes.tif", lambda _: b"hello, this is text" * 50, "not a readable GeoTIFF"),
    ("empty file", "empty.tif", lambda _: b"", "the file is empty"),
    ("no georeferencing", "plain.tif", _not_georeferenced, "no georeferencing"),
    ("truncated", "cut.tif", _truncated, "truncated or corrupt"),
    ("corrupt", "bad.tif", _corrupt, "truncated or corrupt"),
    ("decompression bomb", "bomb.tif", _bomb, "decompression bomb"),
    ("too many bands", "bands.tif", _too_many_bands, "40 bands is more than the 32"),
    ("unsupported data type", "c.tif", _complex, "pixel type complex64 is not supported"),
]


@pytest.mark.parametrize(("case", "name", "make", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_get_a_clear_400_and_leave_nothing_behind(client, tmp_path, case, name, make, message) -> None:
    make_project()
    source = tmp_path / "sources"
    source.mkdir()
    response = upload(client, "raqqa", [(name, make(source))])
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert message in error["message"]
    assert "staging-" not in error["message"] and str(settings.DATA_DIR) not in error["message"]
    assert error["code"] == "invalid_imagery"
    assert not ImageryLayer.objects.exists() and not LayerFile.objects.exists()
    assert files_under(settings.IMAGERY_ROOT) == []
    assert files_under(Path(settings.FILE_UPLOAD_TEMP_DIR)) == []


def test_a_path_traversal_file_name_cannot_write_outside_the_imagery_folder(client, tmp_path) -> None:
    make_project()
    response = upload(client, "raqqa", [("../../../etc/evil.tif", tif_bytes(tmp_path))])
    # Django strips the directories; what is stored is a plain name under IMAGERY_ROOT.
    assert response.status_code == 202
    stored = files_under(settings.IMAGERY_ROOT)
    assert [p.name for p in stored] == ["000-evil.tif"]
    assert all(settings.IMAGERY_ROOT in p.parents for p in stored)
    assert not (tmp_path.parent / "etc").exists()


@pytest.mark.parametrize("name", ["..", ".hidden.tif", "a/b.tif", "a\\b.tif", "x\x00.tif", "x..tif"])
def test_file_names_that_could_escape_or_hide_are_refused(name: str) -> None:
    from imagery.errors import ImageryError
    from imagery.ingest import check_file_name

    with pytest.raises(ImageryError, match="not an acceptable file name"):
        check_file_name(name)


def test_mosaic_files_with_different_bands_are_refused(client, tmp_path) -> None:
    make_project()
    rgb = tif_bytes(tmp_path, "a.tif")
    grey = write_geotiff(tmp_path / "b.tif", count=1, origin=(500_300.0, 3_980_000.0)).read_bytes()
    response = upload(client, "raqqa", [("a.tif", rgb), ("b.tif", grey)])
    assert response.status_code == 400
    assert "b.tif has 1 bands but a.tif has 3" in response.json()["error"]["message"]
    assert not ImageryLayer.objects.exists() and files_under(settings.IMAGERY_ROOT) == []


def test_mosaic_files_with_different_resolutions_are_refused(client, tmp_path) -> None:
    make_project()
    fine = tif_bytes(tmp_path, "a.tif", pixel_size=0.5)
    coarse = write_geotiff(tmp_path / "b.tif", pixel_size=2.0).read_bytes()
    response = upload(client, "raqqa", [("a.tif", fine), ("b.tif", coarse)])
    assert response.status_code == 400
    assert "same resolution" in response.json()["error"]["message"]


def test_a_layer_that_does_not_overlap_the_grid_is_refused(
        client, tmp_path, django_capture_on_commit_callbacks) -> None:
    make_project()
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(client, "raqqa", [("a.tif", tif_bytes(tmp_path, "a.tif"))]).status_code == 202
    far = write_geotiff(tmp_path / "far.tif", origin=(600_000.0, 3_900_000.0)).read_bytes()
    response = upload(client, "raqqa", [("far.tif", far)], date="2017-07-01")
    assert response.status_code == 400
    assert "does not overlap" in response.json()["error"]["message"]
    assert ImageryLayer.objects.count() == 1
    assert len(files_under(settings.IMAGERY_ROOT)) == 1


def test_a_volunteer_may_not_upload_to_a_project(volunteer, tmp_path) -> None:
    make_project()
    api = APIClient()
    api.force_authenticate(volunteer)
    response = upload(api, "raqqa", [("a.tif", tif_bytes(tmp_path))])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not ImageryLayer.objects.exists() and files_under(settings.IMAGERY_ROOT) == []
    assert files_under(Path(settings.FILE_UPLOAD_TEMP_DIR)) == []


def test_anonymous_uploads_are_refused(tmp_path) -> None:
    make_project()
    response = upload(APIClient(), "raqqa", [("a.tif", tif_bytes(tmp_path))])
    assert response.status_code in (401, 403)
    assert not ImageryLayer.objects.exists()


def test_a_project_manager_may_upload_and_the_grid_comes_from_the_first_layer(volunteer, tmp_path) -> None:
    from tagging.models import Membership

    project = make_project(tile_size=256, overlap=32)
    Membership.objects.create(project=project, user=volunteer, role=Membership.Role.MANAGER)
    api = APIClient()
    api.force_authenticate(volunteer)
    assert upload(api, "raqqa", [("a.tif", tif_bytes(tmp_path))]).status_code == 202
    grid = Grid.objects.get(project=project)
    assert (grid.origin_x, grid.origin_y, grid.pixel_size, grid.width, grid.height) == (
        500_000.0, 3_980_000.0, 0.5, 600, 500)
    assert (grid.tile_size, grid.overlap, grid.crs) == (256, 32, UTM)


def test_missing_date_and_files_are_named_in_the_error(client) -> None:
    make_project()
    response = client.post("/api/v1/projects/raqqa/layers/", {"source": "x"}, format="multipart")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "date" in fields and "files" in fields


def test_uploading_to_an_unknown_project_is_404(client, tmp_path) -> None:
    response = upload(client, "nowhere", [("a.tif", tif_bytes(tmp_path))])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_large_upload_streams_to_disk_and_is_linked_not_copied(client, tmp_path, settings) -> None:
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from imagery.ingest import stage_upload

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # anything bigger goes to a temporary file
    make_project()
    content = tif_bytes(tmp_path, width=400, height=400)
    upload_file = TemporaryUploadedFile("big.tif", "image/tiff", len(content), None)
    upload_file.write(content)
    upload_file.flush()
    staged = stage_upload(upload_file)
    assert staged.path.stat().st_ino == Path(upload_file.temporary_file_path()).stat().st_ino
    assert staged.sha256 == __import__("hashlib").sha256(content).hexdigest()
    upload_file.close()
    assert staged.path.read_bytes() == content  # Django removing its name leaves ours intact
    response = upload(client, "raqqa", [("big.tif", content)])
    assert response.status_code == 202
    assert response.json()["files"][0]["size_bytes"] == len(content)


def test_when_one_file_of_a_mosaic_cannot_be_staged_the_others_are_removed(tmp_path, settings) -> None:
    from imagery.errors import ImageryError
    from imagery.ingest import stage_all

    good = write_geotiff(tmp_path / "good.tif")
    with pytest.raises(ImageryError, match="no such file"):
        stage_all([good, tmp_path / "missing.tif"])
    assert files_under(Path(settings.FILE_UPLOAD_TEMP_DIR)) == []
