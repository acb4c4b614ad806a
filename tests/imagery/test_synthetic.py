from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import CRS, Transformer

from imagery.synthetic import Building, DemoScene, buildings_geojson, write_demo_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> DemoScene:
    # 512 px: four tiles, so the file is tiled rather than a single block.
    return write_demo_scene(out_dir=tmp_path_factory.mktemp("scene"), size_px=512, seed=3)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().astype(np.int16)


def footprint(building: Building, transform: rasterio.Affine) -> tuple[slice, slice]:
    col0, row0 = ~transform @ (building.x - building.width_m / 2, building.y + building.height_m / 2)
    col1, row1 = ~transform @ (building.x + building.width_m / 2, building.y - building.height_m / 2)
    return slice(round(row0), round(row1)), slice(round(col0), round(col1))


def test_it_writes_georeferenced_tiled_rgb_geotiffs(scene: DemoScene) -> None:
    for path in (scene.before, scene.after):
        with rasterio.open(path) as src:
            assert (src.driver, src.count, src.dtypes, src.width, src.height) == (
                "GTiff", 3, ("uint8",) * 3, 512, 512)
            assert src.crs == CRS.from_user_input(scene.crs) and CRS(scene.crs).utm_zone == "37N"
            assert (src.transform.a, src.transform.e, src.transform.b, src.transform.d) == (0.5, -0.5, 0, 0)
            assert src.profile["tiled"] and src.block_shapes == [(256, 256)] * 3
            assert src.compression == rasterio.enums.Compression.deflate
            assert src.nodata is None
            assert src.colorinterp[:3] == (rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                                          rasterio.enums.ColorInterp.blue)
    assert sorted(p.name for p in scene.before.parent.iterdir()) == ["after.tif", "before.tif"]


def test_before_and_after_share_one_grid(scene: DemoScene) -> None:
    with rasterio.open(scene.before) as before, rasterio.open(scene.after) as after:
        assert (before.crs, before.transform, before.shape) == (after.crs, after.transform, after.shape)


def test_destroyed_buildings_differ_between_dates_and_intact_ones_barely(scene: DemoScene) -> None:
    before, after = read(scene.before), read(scene.after)
    with rasterio.open(scene.before) as src:
        transform = src.transform
    change: dict[bool, list[float]] = {True: [], False: []}
    for building in scene.buildings:
        rows, cols = footprint(building, transform)
        change[building.destroyed].append(float(np.abs(after[:, rows, cols] - before[:, rows, cols]).mean()))
    assert change[True] and change[False]
    assert np.mean(change[True]) > 4 * np.mean(change[False])
    assert min(change[True]) > max(change[False])
    assert 0 < np.mean(change[False]) < 10  # two acquisitions, not one image saved twice


def test_the_destroyed_fraction_sets_how_many_buildings_are_destroyed(tmp_path: Path) -> None:
    for fraction in (0.0, 0.25, 1.0):
        scene = write_demo_scene(out_dir=tmp_path / str(fraction), size_px=256, destroyed_fraction=fraction)
        destroyed = sum(b.destroyed for b in scene.buildings)
        assert destroyed == round(fraction * len(scene.buildings))


def test_it_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = write_demo_scene(out_dir=tmp_path / "a", size_px=256, seed=11)
    second = write_demo_scene(out_dir=tmp_path / "b", size_px=256, seed=11)
    other = write_demo_scene(out_dir=tmp_path / "c", size_px=256, seed=12)
    assert first.buildings == second.buildings != other.buildings
    assert first.before.read_bytes() == second.before.read_bytes()
    assert first.after.read_bytes() == second.after.read_bytes()


def test_buildings_lie_inside_the_raster_on_whole_pixels(scene: DemoScene) -> None:
    assert len(scene.buildings) >= 3
    assert [b.id for b in scene.buildings] == list(range(1, len(scene.buildings) + 1))
    with rasterio.open(scene.before) as src:
        bounds, transform = src.bounds, src.transform
    for b in scene.buildings:
        assert bounds.left <= b.x - b.width_m / 2 < b.x + b.width_m / 2 <= bounds.right
        assert bounds.bottom <= b.y - b.height_m / 2 < b.y + b.height_m / 2 <= bounds.top
        col0, row0 = ~transform @ (b.x - b.width_m / 2, b.y + b.height_m / 2)
        assert (col0, row0) == (round(col0), round(row0))


def test_geojson_is_wgs84_lon_lat(scene: DemoScene) -> None:
    collection = buildings_geojson(scene)
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(scene.buildings)
    to_utm = Transformer.from_crs("EPSG:4326", scene.crs, always_xy=True)
    for feature, building in zip(collection["features"], scene.buildings, strict=True):
        lon, lat = feature["geometry"]["coordinates"]
        assert feature["geometry"]["type"] == "Point"
        assert 38.5 < lon < 39.5 and 35.5 < lat < 36.5  # Raqqa, not swapped
        x, y = to_utm.transform(lon, lat)
        assert abs(x - building.x) < 0.05 and abs(y - building.y) < 0.05
        assert feature["properties"] == {"id": building.id, "destroyed": building.destroyed,
                                         "width_m": building.width_m, "height_m": building.height_m}


@pytest.mark.parametrize("arguments", [{"size_px": 32}, {"pixel_size_m": 0}, {"destroyed_fraction": 1.5}])
def test_it_rejects_arguments_that_make_no_scene(tmp_path: Path, arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        write_demo_scene(out_dir=tmp_path / "scene", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "scene").exists()
