"""The real imagery in ../shared/data: every file ingests, and Joplin's two dates line up."""

import io
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.core.files.storage import default_storage
from PIL import Image
from pyproj import Transformer

from imagery.ingest import create_layer, stage_path
from imagery.models import ImageryLayer, Tile, TileImage
from tests.imagery.helpers import make_project

pytestmark = [pytest.mark.django_db, pytest.mark.real_data]


def ingest(project, paths: list[Path], when: date, capture) -> ImageryLayer:
    with capture(execute=True):
        layer = create_layer(project=project, date=when, staged=[stage_path(p) for p in paths])
    layer.refresh_from_db()
    return layer


def rgb(tile: Tile, layer: ImageryLayer) -> np.ndarray:
    key = TileImage.objects.get(tile=tile, layer=layer).key
    with default_storage.open(key, "rb") as handle:
        return np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"), dtype=np.float64)


def source_values_at(paths: list[Path], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """RGB of the geographic source mosaic at each (lon, lat), from whichever file holds it."""
    values = np.full((len(lon), 3), np.nan)
    for path in paths:
        with rasterio.open(path) as src:
            rows, cols = rasterio.transform.rowcol(src.transform, lon, lat)
            inside = (np.array(rows) >= 0) & (np.array(rows) < src.height) & (np.array(cols) >= 0) & (
                np.array(cols) < src.width)
            data = src.read()
            for i in np.flatnonzero(inside):
                values[i] = data[:, rows[i], cols[i]]
    return values


def test_joplin_before_and_after_mosaics_line_up_on_one_grid(shared_data, django_capture_on_commit_callbacks) -> None:
    project = make_project("joplin")
    pre = ingest(project, sorted((shared_data / "joplin-2011" / "pre").glob("*.tif")), date(2011, 5, 20),
                 django_capture_on_commit_callbacks)
    post = ingest(project, sorted((shared_data / "joplin-2011" / "post").glob("*.tif")), date(2011, 5, 24),
                  django_capture_on_commit_callbacks)
    assert (pre.status, post.status) == ("ready", "ready"), (pre.error, post.error)
    grid = project.grid
    # The grid is the UTM "before" mosaic's own: 2048 x 2048 pixels of 0.6 m from (366642.6, 4104511.2).
    assert "26915" in grid.crs
    assert (grid.width, grid.height) == (2048, 2048) and grid.pixel_size == pytest.approx(0.6)
    assert (grid.origin_x, grid.origin_y) == pytest.approx((366642.6, 4104511.2))
    assert pre.tile_count == 25 and post.tile_count > 0
    shared = Tile.objects.filter(images__layer=pre).filter(images__layer=post).distinct()
    assert shared.count() == post.tile_count
    # Every grid pixel of the "after" tiles shows the ground the geographic source has there:
    # sample points on the grid, find them in the source by their coordinates, compare colours.
    rng = np.random.default_rng(3)
    to_wgs84 = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    post_paths = sorted((shared_data / "joplin-2011" / "post").glob("*.tif"))
    errors, misplaced = [], []
    for tile in shared.order_by("row", "col")[:8]:
        pixels = rgb(tile, post)
        px, py = rng.integers(20, 490, 40), rng.integers(20, 490, 40)
        x = tile.minx + (px + 0.5) * grid.pixel_size
        y = tile.maxy - (py + 0.5) * grid.pixel_size
        lon, lat = to_wgs84.transform(x, y)
        expected = source_values_at(post_paths, np.asarray(lon), np.asarray(lat))
        ok = ~np.isnan(expected).any(axis=1) & (pixels[py, px].sum(axis=1) > 0)
        errors.append(np.abs(pixels[py, px] - expected)[ok])
        misplaced.append(np.abs(pixels[py + 15, px + 15] - expected)[ok])
    error, control = np.concatenate(errors).mean(), np.concatenate(misplaced).mean()
    # WebP and bilinear resampling cost a few levels; 9 m off costs many more.
    print(f"colour error {error:.1f}, 15 px off {control:.1f}")
    assert error < 15 and control > 2 * error, (error, control)


@pytest.mark.parametrize("relative", ["hro-colorado/201404_13SED190110_201404_0x1500m_CL_1.tif",
                                      "landsat-rgb/RGB.byte.tif"])
def test_other_real_rasters_ingest(shared_data, relative: str, django_capture_on_commit_callbacks) -> None:
    layer = ingest(make_project(), [shared_data / relative], date(2014, 4, 1), django_capture_on_commit_callbacks)
    assert layer.status == "ready", layer.error
    assert layer.tile_count >= 1
    assert layer.tile_count <= layer.tiles_total
    if relative.startswith("landsat"):
        # 791 x 718 px with nodata 0 around the scene; all four cells hold some of it.
        assert (layer.tiles_total, layer.tile_count) == (4, 4)
