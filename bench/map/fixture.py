"""The benchmark's data: a 200,000-tile project with consensus rows and buildings, a small real imagery layer.

Imported only after Django is set up against the run's private database (__main__ does that). Rows go in
with PostgreSQL's COPY (200,000 tiles and their consensus in seconds, not minutes); the imagery is the
generated demo scene (imagery/synthetic.py), two dates, written under IMAGERY_ROOT and registered as
ready layers the way the tiling job leaves them.
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import rasterio
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection
from pyproj import Transformer
from rasterio.warp import transform_bounds
from rest_framework.authtoken.models import Token

from imagery.grid import GridSpec
from imagery.models import Grid, ImageryLayer, LayerFile, Tile
from imagery.synthetic import write_demo_scene
from imagery.xyz import ensure_overviews, xyz_layer
from tagging.models import Building, Membership, Project, TileConsensus
from tagging.projects import create_project

SLUG = "bench-map"
CRS = "EPSG:32637"
DATES = (date(2017, 5, 1), date(2017, 10, 20))
ORIGIN = (488_400.0, 3_987_000.0)  # the demo scene (imagery/synthetic.py) lies inside, 12 km east, 8 km south
PIXEL, TILE, OVERLAP = 0.3, 256, 32  # 0.3 m imagery, 256 px tiles: a tile owns 67.2 m x 67.2 m
REDUNDANCY = 5


@dataclass(frozen=True)
class Fixture:
    project_id: int
    extent: tuple[float, float, float, float]  # the grid, WGS84
    tiles: int
    judged: int
    buildings: int
    layers: list[dict]  # the imagery layers as the map page gets them (url, bounds, zooms)
    tokens: list[str]  # one per coordinator
    timings: dict[str, float]


def build(*, cols: int, rows: int, buildings: int, coordinators: int, raster_px: int, seed: int,
          overviews: bool = True) -> Fixture:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    timings["migrate"] = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    project = create_project(slug=SLUG, name="Map benchmark", status=Project.Status.ACTIVE, redundancy=REDUNDANCY,
                             tile_size=TILE, overlap=OVERLAP)
    spec = GridSpec(CRS, ORIGIN[0], ORIGIN[1], PIXEL, (cols - 1) * (TILE - OVERLAP) + TILE,
                    (rows - 1) * (TILE - OVERLAP) + TILE, TILE, OVERLAP)
    grid = Grid.objects.create(project=project, crs=CRS, origin_x=spec.origin_x, origin_y=spec.origin_y,
                               pixel_size=PIXEL, width=spec.width, height=spec.height, tile_size=TILE, overlap=OVERLAP)
    mark = time.perf_counter()
    hotspots = _hotspots(spec, rng)
    judged = _tiles(project, grid, spec, hotspots, rng)
    timings["tiles"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _buildings(project, spec, hotspots, buildings, rng)
    timings["buildings"] = time.perf_counter() - mark
    mark = time.perf_counter()
    layers = _imagery(project, raster_px, overviews)
    timings["imagery"] = time.perf_counter() - mark
    tokens = _coordinators(project, coordinators)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics as a live database has them
    from tagging.map_layers import grid_extent

    return Fixture(project.pk, grid_extent(spec), cols * rows, judged, buildings, layers, tokens, timings)


def _hotspots(spec: GridSpec, rng: np.random.Generator) -> np.ndarray:
    """Damage comes in districts: (x, y, sigma metres, weight) of a few Gaussian hot spots."""
    width, height = spec.width * spec.pixel_size, spec.height * spec.pixel_size
    n = 12
    return np.stack([spec.origin_x + rng.uniform(0.1, 0.9, n) * width,
                     spec.origin_y - rng.uniform(0.1, 0.9, n) * height,
                     rng.uniform(800, 3000, n), rng.uniform(0.3, 1.0, n)], axis=1)


def _damage(hotspots: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = np.zeros_like(x)
    for hx, hy, sigma, weight in hotspots:
        d += weight * np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2 * sigma**2))
    return np.clip(d, 0, 1)


def _copy(table: str, columns: list[str], rows: object) -> None:
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _tiles(project: Project, grid: Grid, spec: GridSpec, hotspots: np.ndarray, rng: np.random.Generator) -> int:
    """Every cell a tile; 80 % judged, labelled by how damaged their district is; votes and status to match."""
    cols, rows = spec.cols, spec.rows
    col, row = np.meshgrid(np.arange(cols), np.arange(rows))
    col, row = col.ravel(), row.ravel()
    stride, size, px = spec.stride, spec.tile_size, spec.pixel_size
    minx = spec.origin_x + col * stride * px
    maxy = spec.origin_y - row * stride * px
    maxx, miny = minx + size * px, maxy - size * px
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    corners_x = np.stack([minx, maxx, maxx, minx], axis=1).ravel()
    corners_y = np.stack([miny, miny, maxy, maxy], axis=1).ravel()
    lon, lat = to_wgs84.transform(corners_x, corners_y)
    lon, lat = lon.reshape(-1, 4), lat.reshape(-1, 4)
    damage = _damage(hotspots, (minx + maxx) / 2, (miny + maxy) / 2)
    judged = rng.random(len(col)) < 0.8
    votes = np.where(judged, rng.integers(2, REDUNDANCY + 1, len(col)), rng.integers(0, 2, len(col)))
    status = np.where(votes >= REDUNDANCY, "retired", "open")
    _copy(Tile._meta.db_table,
          ["grid_id", "col", "row", "x_off", "y_off", "size", "minx", "miny", "maxx", "maxy", "west", "south",
           "east", "north", "vote_count", "status", "priority"],
          ((grid.pk, int(c), int(r), int(c) * stride, int(r) * stride, size, float(a), float(b), float(cc),
            float(d), float(lo.min()), float(la.min()), float(lo.max()), float(la.max()), int(v), s, 0)
           for c, r, a, b, cc, d, lo, la, v, s in zip(col, row, minx, miny, maxx, maxy, lon, lat, votes, status)))
    ids = dict(((c, r), pk) for pk, c, r in Tile.objects.filter(grid=grid).values_list("pk", "col", "row"))
    keys = ["destroyed", "damaged", "no_damage", "cant_tell"]
    u = rng.random(len(col))
    label = np.select([u < damage * 0.6, u < damage * 0.9, u < 0.97], [0, 1, 2], 3)
    confidence = np.clip(rng.beta(6, 1.5, len(col)), 0.3, 0.999)
    agreement = np.clip(rng.beta(5, 1.8, len(col)), 0.25, 1.0)
    now = datetime.now(UTC)
    chosen = np.flatnonzero(judged)

    def consensus_rows():
        for i in chosen:
            n = int(votes[i])
            top = max(1, round(n * agreement[i]))
            counts = {keys[label[i]]: top}
            if n > top:
                counts[keys[(label[i] + 1) % 3]] = n - top
            yield (ids[(int(col[i]), int(row[i]))], project.pk, keys[label[i]], float(confidence[i]),
                   float(agreement[i]), _json(counts), n, n, "bench", now)

    _copy(TileConsensus._meta.db_table, ["tile_id", "project_id", "label", "confidence", "agreement", "counts",
                                         "n_votes", "n_decisive", "method", "updated_at"], consensus_rows())
    return len(chosen)


def _json(counts: dict[str, int]) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in counts.items()) + "}"


def _buildings(project: Project, spec: GridSpec, hotspots: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Destroyed buildings, most of them in the hot spots, with their evidence and destruction windows."""
    pick = rng.choice(len(hotspots), count, p=hotspots[:, 3] / hotspots[:, 3].sum())
    x = rng.normal(hotspots[pick, 0], hotspots[pick, 2])
    y = rng.normal(hotspots[pick, 1], hotspots[pick, 2])
    right, bottom = spec.origin_x + spec.width * spec.pixel_size, spec.origin_y - spec.height * spec.pixel_size
    x, y = np.clip(x, spec.origin_x + 1, right - 1), np.clip(y, bottom + 1, spec.origin_y - 1)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    confidence = rng.beta(4, 1.6, count)
    early = rng.random(count) < 0.3  # destroyed before the first date: no date it shows intact
    now = datetime.now(UTC)
    rows = ((project.pk, float(a), float(b), float(lo), float(la), float(c), float(rng.uniform(0.5, 5)),
             int(rng.integers(1, 6)), int(rng.integers(0, 4)), False, None if e else DATES[0],
             DATES[0] if e else DATES[1], float(rng.uniform(0.5, 1)), "[]", "[]", "[]", now)
            for a, b, lo, la, c, e in zip(x, y, lon, lat, confidence, early))
    _copy(Building._meta.db_table,
          ["project_id", "ground_x", "ground_y", "lon", "lat", "confidence", "uncertainty_m", "n_support", "n_oppose",
           "is_gold", "last_intact", "first_destroyed", "window_confidence", "classification_ids",
           "opposing_classification_ids", "mark_ids", "updated_at"], rows)


def _imagery(project: Project, size_px: int, overviews: bool) -> list[dict]:
    """The demo scene (before and after) as two ready layers; 0.5 m pixels, uint8 RGB, with overviews unless not."""
    folder = Path(settings.IMAGERY_ROOT) / "bench"
    scene = write_demo_scene(out_dir=folder, size_px=size_px)
    layers = []
    for when, path in zip(DATES, (scene.before, scene.after)):
        if overviews:
            ensure_overviews(str(path))  # as the tiling job leaves the files (imagery/jobs.py)
        with rasterio.open(path) as src:
            bounds, width, height = list(src.bounds), src.width, src.height
        layer = ImageryLayer.objects.create(
            project=project, date=when, source="generated demo scene", crs=CRS, bounds=bounds,
            bounds_wgs84=list(transform_bounds(CRS, "EPSG:4326", *bounds)), resolution=0.5, width=width, height=height,
            band_count=3, dtype="uint8", display={"bands": [1, 2, 3], "alpha": None, "stretch": None},
            status=ImageryLayer.Status.READY)
        LayerFile.objects.create(layer=layer, position=0, path=str(path.relative_to(settings.IMAGERY_ROOT)),
                                 original_name=path.name, sha256=f"{layer.pk:064d}", size_bytes=path.stat().st_size)
        layers.append(xyz_layer(layer).to_json())
    return layers


def _coordinators(project: Project, count: int) -> list[str]:
    user_model = get_user_model()
    password = make_password(None)  # unusable: these accounts only ever use their token
    user_model.objects.bulk_create([user_model(username=f"bench-coordinator-{i:03d}", password=password)
                                    for i in range(count)])
    users = list(user_model.objects.filter(username__startswith="bench-coordinator-").order_by("username"))
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Membership.Role.COORDINATOR)
                                    for u in users])
    tokens = [Token(key=Token.generate_key(), user=u) for u in users]
    Token.objects.bulk_create(tokens)
    return [t.key for t in tokens]
