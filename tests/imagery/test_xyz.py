"""Imagery as web-mercator XYZ tiles for the coordinators' map: rendered once, then served from storage."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image
from rasterio.warp import transform_bounds

from imagery import xyz
from imagery.models import ImageryLayer, LayerFile
from imagery.tiling import compute_stretch
from tagging.models import Membership, Project
from tests.clients import client_for
from tests.imagery.helpers import make_project
from tests.rasters import UTM, scene, write_geotiff

pytestmark = pytest.mark.django_db
Z = 18  # native zoom of 0.5 m imagery at 36 degrees north


def add_layer(project: Project, files: list[Path], *, dtype: str = "uint8", display: dict | None = None,
              status: str = ImageryLayer.Status.READY, date: str = "2017-06-01") -> ImageryLayer:
    """A layer row over files already under IMAGERY_ROOT, as the tiling job leaves it (no tiles needed)."""
    boxes = []
    for path in files:
        with rasterio.open(path) as src:
            boxes.append(src.bounds)
    bounds = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    layer = ImageryLayer.objects.create(
        project=project, date=date, crs=UTM, bounds=bounds,
        bounds_wgs84=list(transform_bounds(UTM, "EPSG:4326", *bounds)), resolution=0.5, width=1, height=1,
        band_count=3, dtype=dtype, status=status,
        display=display or {"bands": [1, 2, 3], "alpha": None, "stretch": None})
    for position, path in enumerate(files):
        LayerFile.objects.create(layer=layer, position=position, path=path.name, original_name=path.name,
                                 sha256=f"{position:064d}", size_bytes=path.stat().st_size)
    return layer


def tile_at(lon: float, lat: float, z: int = Z) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def centre_tile(layer: ImageryLayer, z: int = Z) -> tuple[int, int]:
    w, s, e, n = layer.bounds_wgs84
    return tile_at((w + e) / 2, (s + n) / 2, z)


def url(layer: ImageryLayer, z: int, x: int, y: int, *, version: bool = True) -> str:
    tail = f"?v={xyz.xyz_layer(layer).version}" if version else ""
    return f"/api/v1/layers/{layer.pk}/xyz/{z}/{x}/{y}.webp{tail}"


def image(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


@pytest.fixture
def layer(admin_user) -> ImageryLayer:
    project = make_project()
    path = write_geotiff(settings.IMAGERY_ROOT / "scene.tif", width=1200, height=1000)
    return add_layer(project, [path])


def test_a_tile_is_a_webp_rendered_from_the_layer_file(layer, volunteer) -> None:
    x, y = centre_tile(layer)
    response = client_for(volunteer).get(url(layer, Z, x, y))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    picture = image(response)
    assert picture.format == "WEBP" and picture.size == (256, 256)
    pixels = np.asarray(picture.convert("RGB"), dtype=float)
    assert pixels.std() > 10, "a textured scene, not a flat fill"
    assert response["ETag"] == f'"{xyz.xyz_layer(layer).version}"'
    assert "immutable" in response["Cache-Control"] and "max-age=31536000" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_second_request_reads_the_stored_tile_and_renders_nothing(layer, volunteer, monkeypatch,
                                                                      django_assert_num_queries) -> None:
    x, y = centre_tile(layer)
    api = client_for(volunteer)
    first = api.get(url(layer, Z, x, y))
    key = xyz.xyz_layer(layer).key(Z, x, y)
    assert key == f"xyz/l{layer.pk}/{xyz.xyz_layer(layer).version}/{Z}/{x}/{y}.webp"
    assert default_storage.exists(key)

    def must_not_render(**kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(xyz, "render_tile", must_not_render)
    address = url(layer, Z, x, y)
    with django_assert_num_queries(0):  # the access decision is cached too: ~50 of these per map view
        second = api.get(address)
    assert second.status_code == 200 and second.content == first.content
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")


def test_a_tile_outside_the_layer_is_a_transparent_pixel_and_nothing_is_stored(layer, volunteer) -> None:
    x, y = centre_tile(layer)
    response = client_for(volunteer).get(url(layer, Z, x + 40, y))
    assert response.status_code == 200
    picture = image(response).convert("RGBA")
    assert picture.size == (1, 1) and picture.getpixel((0, 0))[3] == 0
    assert not default_storage.exists(xyz.xyz_layer(layer).key(Z, x + 40, y))


def test_a_tile_across_the_edge_is_transparent_where_there_is_no_data(layer, volunteer) -> None:
    w, s, e, n = layer.bounds_wgs84
    x, y = tile_at(e, (s + n) / 2)  # the tile holding the scene's eastern edge
    picture = image(client_for(volunteer).get(url(layer, Z, x, y))).convert("RGBA")
    alpha = np.asarray(picture)[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()


def test_16_bit_imagery_is_stretched_as_for_the_volunteers(admin_user, volunteer) -> None:
    project = make_project()
    eight = write_geotiff(settings.IMAGERY_ROOT / "eight.tif", scene(1200, 1000, 3, "uint8"))
    sixteen = write_geotiff(settings.IMAGERY_ROOT / "sixteen.tif", scene(1200, 1000, 3, "uint16"))
    stretch = compute_stretch([str(sixteen)], (1, 2, 3))
    plain = add_layer(project, [eight])
    deep = add_layer(project, [sixteen], dtype="uint16", date="2017-07-01",
                     display={"bands": [1, 2, 3], "alpha": None, "stretch": [list(p) for p in stretch]})
    x, y = centre_tile(plain)
    api = client_for(volunteer)
    a = np.asarray(image(api.get(url(plain, Z, x, y))).convert("RGB"), dtype=float)
    b = np.asarray(image(api.get(url(deep, Z, x, y))).convert("RGB"), dtype=float)
    # The 2-98 % stretch spreads the 16-bit values over 0-255: bright, full contrast, not near-black.
    assert b.mean() > 60 and b.std() > 30
    # ...and it is the same stretch the volunteers' tiles get: the 8-bit scene stretched alike.
    low, high = np.array([p[0] for p in stretch]) / 257, np.array([p[1] for p in stretch]) / 257
    expected = np.clip((a - low) * 255 / (high - low), 0, 255)
    assert np.abs(b - expected).mean() < 8


def test_a_mosaic_shows_the_later_file_where_files_overlap(admin_user, volunteer) -> None:
    project = make_project()
    red = np.zeros((3, 600, 900), np.uint8)
    red[0] = 220
    blue = np.zeros((3, 600, 900), np.uint8)
    blue[2] = 220
    first = write_geotiff(settings.IMAGERY_ROOT / "west.tif", red, origin=(500_000.0, 3_980_000.0))
    second = write_geotiff(settings.IMAGERY_ROOT / "east.tif", blue, origin=(500_300.0, 3_980_000.0))
    layer = add_layer(project, [first, second])
    w, s, e, n = layer.bounds_wgs84
    api = client_for(volunteer)

    def colour(lon: float) -> np.ndarray:
        x, y = tile_at(lon, (s + n) / 2, 20)
        return np.asarray(image(api.get(url(layer, 20, x, y))).convert("RGB"), dtype=float).mean(axis=(0, 1))

    west_only, overlap, east_only = colour(w + 0.0008), colour(w + 0.0040), colour(e - 0.0008)
    assert west_only[0] > 150 and west_only[2] < 60
    assert overlap[2] > 150 and overlap[0] < 60, "the later file wins"
    assert east_only[2] > 150


def test_zooms_run_from_four_below_to_two_above_the_native_zoom(layer, volunteer) -> None:
    assert xyz.native_zoom(resolution_m=0.5, latitude=36.0) == 18
    assert xyz.zoom_range(resolution_m=0.5, latitude=36.0) == (14, 20)
    assert xyz.zoom_range(resolution_m=30.0, latitude=0.0) == (9, 15)  # Landsat: native zoom 13
    api = client_for(volunteer)
    for z, expected in [(13, 404), (14, 200), (20, 200), (21, 404)]:
        x, y = centre_tile(layer, z)
        assert api.get(url(layer, z, x, y)).status_code == expected, z
    assert api.get(url(layer, Z, 2**Z, 0)).status_code == 404


def test_who_may_fetch_the_imagery(layer, volunteer, outsider, admin_user) -> None:
    Project.objects.filter(pk=layer.project_id).update(is_public=False)
    Membership.objects.create(project=layer.project, user=volunteer)
    x, y = centre_tile(layer)
    assert client_for(outsider).get(url(layer, Z, x, y)).status_code == 404
    assert client_for(None).get(url(layer, Z, x, y)).status_code in (401, 403)
    assert client_for(volunteer).get(url(layer, Z, x, y)).status_code == 200
    assert client_for(admin_user).get(url(layer, Z, x, y)).status_code == 200
    assert client_for(volunteer).get(f"/api/v1/layers/{layer.pk + 99}/xyz/{Z}/{x}/{y}.webp").status_code == 404


def test_a_layer_still_being_validated_has_no_tiles_yet(admin_user, volunteer) -> None:
    project = make_project()
    path = write_geotiff(settings.IMAGERY_ROOT / "new.tif")
    layer = add_layer(project, [path], status=ImageryLayer.Status.VALIDATING)
    x, y = centre_tile(layer)
    response = client_for(volunteer).get(url(layer, Z, x, y))
    assert response.status_code == 404 and "not ready" in response.json()["error"]["message"]


def test_a_known_etag_is_a_304_and_an_old_version_is_cached_briefly(layer, volunteer) -> None:
    x, y = centre_tile(layer)
    api = client_for(volunteer)
    etag = api.get(url(layer, Z, x, y))["ETag"]
    assert api.get(url(layer, Z, x, y), HTTP_IF_NONE_MATCH=etag).status_code == 304
    stale = api.get(url(layer, Z, x, y, version=False))
    assert stale.status_code == 200 and "immutable" not in stale["Cache-Control"]
    assert "max-age=300" in stale["Cache-Control"]


def test_the_map_page_gets_each_layers_url_and_zooms(layer) -> None:
    (entry,) = [item.to_json() for item in xyz.xyz_layers(layer.project)]
    assert entry["url"] == f"/api/v1/layers/{layer.pk}/xyz/{{z}}/{{x}}/{{y}}.webp?v={xyz.xyz_layer(layer).version}"
    assert (entry["minzoom"], entry["maxzoom"]) == (14, 20)
    assert entry["bounds"] == pytest.approx(layer.bounds_wgs84)


def test_overviews_go_beside_the_file_and_leave_it_unchanged(tmp_path) -> None:
    path = write_geotiff(tmp_path / "big.tif", width=2048, height=1500)
    before = path.read_bytes()
    assert xyz.ensure_overviews(str(path)) is True
    assert path.read_bytes() == before, "its checksum must still hold"
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4, 8]  # down to a tile: 2048 / 8 = 256 px
    assert xyz.ensure_overviews(str(path)) is False, "built once"
    small = write_geotiff(tmp_path / "small.tif", width=600, height=600)
    assert xyz.ensure_overviews(str(small)) is False and not Path(f"{small}.ovr").exists()


def test_the_tiling_job_gives_each_file_overviews(settings, tmp_path, admin_user,
                                                  django_capture_on_commit_callbacks) -> None:
    from datetime import date

    from imagery.ingest import create_layer, stage_path

    source = write_geotiff(tmp_path / "scene.tif", width=1600, height=1200)
    with django_capture_on_commit_callbacks(execute=True):
        layer = create_layer(project=make_project(), date=date(2017, 6, 1), staged=[stage_path(source)])
    layer.refresh_from_db()
    assert layer.status == ImageryLayer.Status.READY
    stored = settings.IMAGERY_ROOT / (layer.files.get().read_path or layer.files.get().path)
    with rasterio.open(stored) as src:
        assert src.overviews(1) == [2, 4]
    # A zoomed-out tile (4 zooms below native) reads the overviews and still shows the imagery.
    z = xyz.xyz_layer(layer).minzoom
    x, y = centre_tile(layer, z)
    response = client_for(admin_user).get(url(layer, z, x, y))
    assert response.status_code == 200 and response["X-Cache"] == "miss"
    assert image(response).size == (256, 256)
