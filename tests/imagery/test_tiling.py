"""Tiling on the project grid: georeferencing, content, dates, shapes of imagery, re-runs and failures."""

import io
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image
from pyproj import Transformer
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from imagery import jobs
from imagery.ingest import create_layer, stage_path
from imagery.models import ImageryLayer, Tile, TileImage, TilingChunk
from tests.imagery.helpers import make_project
from tests.rasters import UTM, scene, write_geotiff

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest(django_capture_on_commit_callbacks) -> Callable[..., ImageryLayer]:
    def run(project, paths: list[Path], when: str = "2017-06-01", run_tasks: bool = True) -> ImageryLayer:
        with django_capture_on_commit_callbacks(execute=run_tasks):
            layer = create_layer(project=project, date=date.fromisoformat(when),
                                 staged=[stage_path(p) for p in paths])
        layer.refresh_from_db()
        return layer

    return run


def tile_pixels(tile: Tile, layer: ImageryLayer) -> np.ndarray:
    image = TileImage.objects.get(tile=tile, layer=layer)
    with default_storage.open(image.key, "rb") as handle:
        return np.asarray(Image.open(io.BytesIO(handle.read())))


def test_tile_bounds_and_pixels_match_rasterio_windows(settings, tmp_path, ingest) -> None:
    settings.TILE_FORMAT = "png"  # lossless, so pixels compare exactly
    source = write_geotiff(tmp_path / "s.tif", width=1100, height=900, tiled=True, blockxsize=256, blockysize=256)
    layer = ingest(make_project(), [source])
    assert layer.status == "ready" and layer.tile_count == 6
    to_wgs84 = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    with rasterio.open(source) as src:
        for tile in Tile.objects.all():
            window = Window(tile.x_off, tile.y_off, tile.size, tile.size)
            assert (tile.minx, tile.miny, tile.maxx, tile.maxy) == pytest.approx(window_bounds(window, src.transform))
            lon, lat = to_wgs84.transform([tile.minx, tile.maxx], [tile.miny, tile.maxy])
            assert tile.west <= min(lon) + 1e-9 and tile.east >= max(lon) - 1e-9
            assert tile.south <= min(lat) + 1e-9 and tile.north >= max(lat) - 1e-9
            assert tile.east - tile.west < 0.01  # a 256 m tile is a few thousandths of a degree
            expected = src.read(window=window, boundless=True, fill_value=0).transpose(1, 2, 0)
            assert np.array_equal(tile_pixels(tile, layer), expected), (tile.col, tile.row)


def test_a_later_date_in_another_crs_is_warped_onto_the_same_grid(settings, tmp_path, ingest) -> None:
    settings.TILE_FORMAT = "png"
    before = write_geotiff(tmp_path / "before.tif", width=1024, height=1024)
    # The same ground delivered in geographic coordinates, as the Joplin "after" imagery is.
    after = tmp_path / "after.tif"
    with rasterio.open(before) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds)
        data = np.zeros((3, height, width), dtype=np.uint8)
        reproject(src.read(), data, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear)
    write_geotiff(after, data=data, crs="EPSG:4326", transform=transform, nodata=0)
    project = make_project()
    first = ingest(project, [before])
    second = ingest(project, [after], when="2017-09-01")
    assert second.status == "ready"
    assert set(second.tile_images.values_list("tile_id", flat=True)) <= set(
        first.tile_images.values_list("tile_id", flat=True))
    centre = Tile.objects.get(col=1, row=1)
    a = tile_pixels(centre, first).astype(float)
    b = tile_pixels(centre, second).astype(float)
    valid = b.sum(axis=2) > 0
    assert valid.mean() > 0.9
    # Pixel for pixel the same ground: twice resampled, the images differ only by interpolation.
    assert np.abs(a - b)[valid].mean() < 12
    shifted = np.abs(a[:, 3:] - b[:, :-3])[valid[:, :-3]].mean()
    assert shifted > 2 * np.abs(a - b)[valid].mean()


def test_cells_with_no_data_in_any_date_are_not_tiles(settings, tmp_path, ingest) -> None:
    data = scene(1400, 500)
    data[:, :, 500:] = 0  # the right part of the scene is nodata
    source = write_geotiff(tmp_path / "s.tif", data=data, nodata=0)
    layer = ingest(make_project(), [source])
    # Columns 0 and 1 touch data (cell 1 starts at 448 px); columns 2 (896) is empty.
    assert layer.tiles_total == 3 and layer.tile_count == 2
    assert sorted(Tile.objects.values_list("col", flat=True)) == [0, 1]


@pytest.mark.parametrize("shape", ["uint16 4 bands", "single band", "alpha band", "jpeg compressed",
                                   "lzw striped", "float32"])
def test_common_shapes_of_imagery_ingest(settings, tmp_path, ingest, shape: str) -> None:
    settings.TILE_FORMAT = "png"
    options: dict = {}
    if shape == "uint16 4 bands":
        options = {"data": scene(600, 500, count=4, dtype="uint16")}
    elif shape == "single band":
        options = {"data": scene(600, 500, count=1)}
    elif shape == "alpha band":
        data = np.concatenate([scene(600, 500), np.full((1, 500, 600), 255, np.uint8)])
        data[3, :, 300:] = 0
        options = {"data": data, "photometric": "RGB", "alpha": "YES"}
    elif shape == "jpeg compressed":
        options = {"compress": "jpeg", "tiled": True, "blockxsize": 256, "blockysize": 256, "photometric": "YCBCR"}
    elif shape == "lzw striped":
        options = {"compress": "lzw"}
    elif shape == "float32":
        options = {"data": scene(600, 500, count=3, dtype="float32") / 255.0}
    source = write_geotiff(tmp_path / "s.tif", **options)
    layer = ingest(make_project(), [source])
    assert layer.status == "ready", layer.error
    # Transparent from x=300 on, so the second cell (from x=448) has nothing to show.
    assert layer.tile_count == (1 if shape == "alpha band" else 2)
    pixels = tile_pixels(Tile.objects.get(col=0, row=0), layer)
    if shape == "single band":
        assert pixels.ndim == 2
    else:
        assert pixels.shape == (512, 512, 3)
    if shape in {"uint16 4 bands", "float32"}:
        # Stretched 2-98%: the full 8-bit range is used, not a dark or washed-out image.
        assert pixels.min() == 0 and pixels.max() == 255
        assert layer.display["stretch"] is not None and len(layer.display["stretch"]) == 3
    if shape == "alpha band":
        assert layer.display["alpha"] == 4
        assert pixels[:, 310:500].max() == 0 and pixels[:, :290].max() > 0


def test_a_wide_striped_file_is_copied_to_a_tiled_one_for_fast_reads(settings, tmp_path, ingest) -> None:
    settings.TILE_FORMAT = "png"
    settings.TILING_CHUNK_CELLS = 4  # chunks 1856 px wide: a 2600 px striped scene is wider than one
    source = write_geotiff(tmp_path / "striped.tif", width=2600, height=300, compress="deflate")
    layer = ingest(make_project(), [source])
    layer_file = layer.files.get()
    assert layer_file.read_path.endswith(".tiled.tif")
    with rasterio.open(settings.IMAGERY_ROOT / layer_file.read_path) as tiled:
        assert tiled.block_shapes[0] == (512, 512)
    with rasterio.open(source) as src:
        tile = Tile.objects.get(col=3, row=0)
        expected = src.read(window=Window(tile.x_off, 0, 512, 300)).transpose(1, 2, 0)
    assert np.array_equal(tile_pixels(tile, layer)[:300], expected)


def _tile_state() -> tuple[list, list]:
    tiles = sorted(Tile.objects.values_list("col", "row", "minx", "maxy"))
    images = sorted(TileImage.objects.values_list("tile__col", "tile__row", "layer_id", "key", "etag"))
    return tiles, images


def test_running_the_job_again_gives_exactly_the_same_tiles(tmp_path, ingest) -> None:
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif", width=1400, height=1000)])
    first = _tile_state()
    stored = sorted(p.relative_to(default_storage.location) for p in Path(default_storage.location).rglob("*.*"))
    # Everything again, as after a crash that lost the record of having finished.
    TilingChunk.objects.filter(layer=layer).update(state="pending")
    ImageryLayer.objects.filter(pk=layer.pk).update(status="tiling")
    for chunk in TilingChunk.objects.filter(layer=layer):
        jobs.run_chunk(chunk_id=chunk.pk)
    assert _tile_state() == first
    assert sorted(p.relative_to(default_storage.location)
                  for p in Path(default_storage.location).rglob("*.*")) == stored
    layer.refresh_from_db()
    assert (layer.status, layer.tile_count, layer.tiles_done) == ("ready", 9, 9)  # 3 x 3 cells


def test_a_chunk_left_running_by_a_dead_worker_is_swept_up_and_finished(
        tmp_path, ingest, django_capture_on_commit_callbacks, settings) -> None:
    settings.TILING_CHUNK_CELLS = 4  # 5 x 5 cells in 4 chunks
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif", width=2000, height=1900)],
                   run_tasks=False)
    assert layer.status == "uploaded"
    with django_capture_on_commit_callbacks(execute=False):  # the chunk messages are "lost"
        jobs.prepare_layer(layer_id=layer.pk)
    chunks = list(TilingChunk.objects.filter(layer=layer))
    assert len(chunks) == 4
    jobs.run_chunk(chunk_id=chunks[0].pk)
    # A worker claimed chunk 1 and died; chunks 2 and 3 were never delivered.
    assert jobs.claim_chunk(chunks[1].pk)
    layer.refresh_from_db()
    assert layer.status == "tiling" and 0 < layer.tiles_done < layer.tiles_total
    assert jobs.sweep_imagery_jobs() == 0  # nothing is stale yet
    TilingChunk.objects.filter(layer=layer).exclude(state="done").update(
        updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep_imagery_jobs() == 3
    layer.refresh_from_db()
    assert (layer.status, layer.tiles_done, layer.tiles_total) == ("ready", 25, 25)  # 5 x 5 cells
    assert TileImage.objects.filter(layer=layer).count() == layer.tile_count == 25
    assert Tile.objects.count() == 25


def test_an_upload_whose_preparation_was_lost_is_swept_up(tmp_path, ingest, django_capture_on_commit_callbacks) -> None:
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif")], run_tasks=False)
    ImageryLayer.objects.filter(pk=layer.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep_imagery_jobs() == 1
    layer.refresh_from_db()
    assert layer.status == "ready" and layer.tile_count == 2


def test_a_failing_chunk_is_retried_then_fails_the_layer_with_its_reason(tmp_path, ingest, monkeypatch) -> None:
    calls = []

    def broken(**kwargs):
        calls.append(kwargs["chunk"].index)
        raise OSError("disk on fire")

    monkeypatch.setattr(jobs, "cut_chunk", broken)
    monkeypatch.setattr("workers.imagery.cut_chunk_task.retry",
                        lambda **kw: pytest.fail("retry must not be called for a finished chunk"), raising=False)
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif")], run_tasks=False)
    jobs.prepare_layer(layer_id=layer.pk)
    chunk = TilingChunk.objects.get(layer=layer)
    for attempt in (1, 2):
        with pytest.raises(OSError):
            jobs.run_chunk(chunk_id=chunk.pk)
        assert jobs.record_chunk_failure(chunk_id=chunk.pk, error="OSError: disk on fire") is True
        chunk.refresh_from_db()
        assert (chunk.state, chunk.attempts) == ("pending", attempt)
    with pytest.raises(OSError):
        jobs.run_chunk(chunk_id=chunk.pk)
    assert jobs.record_chunk_failure(chunk_id=chunk.pk, error="OSError: disk on fire") is False
    layer.refresh_from_db()
    assert layer.status == "failed"
    assert "failed 3 times: OSError: disk on fire" in layer.error
    assert calls == [0, 0, 0]


def test_the_task_retries_a_failing_chunk_and_then_marks_the_layer_failed(tmp_path, ingest, monkeypatch) -> None:
    attempts = []

    def flaky(**kwargs):
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("network drive hiccup")
        return original(**kwargs)

    original = jobs.cut_chunk
    monkeypatch.setattr(jobs, "cut_chunk", flaky)
    monkeypatch.setattr("workers.imagery.cut_chunk_task.retry",
                        lambda self=None, **kw: (_ for _ in ()).throw(kw["exc"]), raising=False)
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif")], run_tasks=False)
    jobs.prepare_layer(layer_id=layer.pk)
    from workers.imagery import cut_chunk_task

    chunk = TilingChunk.objects.get(layer=layer)
    for _ in range(2):
        with pytest.raises(OSError):
            cut_chunk_task.run(chunk.pk)
    assert cut_chunk_task.run(chunk.pk) == 2
    layer.refresh_from_db()
    assert layer.status == "ready" and len(attempts) == 3


def test_retrying_a_failed_layer_finishes_it(tmp_path, ingest, monkeypatch, django_capture_on_commit_callbacks) -> None:
    layer = ingest(make_project(), [write_geotiff(tmp_path / "s.tif")], run_tasks=False)
    jobs.prepare_layer(layer_id=layer.pk)
    chunk = TilingChunk.objects.get(layer=layer)
    TilingChunk.objects.filter(pk=chunk.pk).update(state="failed", attempts=3)
    jobs.fail_layer(layer.pk, "it broke")
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.retry_layer(layer_id=layer.pk) == 1
    layer.refresh_from_db()
    assert (layer.status, layer.error, layer.tile_count) == ("ready", "", 2)


def test_a_striped_file_no_wider_than_a_chunk_is_read_as_it_is(settings, tmp_path, ingest) -> None:
    settings.TILING_CHUNK_CELLS = 8  # chunks 3648 px wide
    layer = ingest(make_project(), [write_geotiff(tmp_path / "striped.tif", width=2600, height=300)])
    assert layer.status == "ready" and layer.files.get().read_path == ""
