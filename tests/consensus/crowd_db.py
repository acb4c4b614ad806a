"""A simulated crowd (tagging.consensus.simulate) written to the database as a project's tiles, votes and gold.

The simulator lays tiles of 256 m with a 32 m overlap, x east and y north from 0; the project grid
here has 0.5 m pixels, 512 px tiles and 64 px overlap (the same 256 m and 224 m stride), rows
growing south. Crowd tile (col, row) is grid tile (col, n_rows - 1 - row), and a crowd point
(x, y) is the ground point (ORIGIN_X + x, BASE_Y + y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from pyproj import Transformer

from imagery.grid import GridSpec
from imagery.models import Grid, ImageryLayer, Tile
from tagging.consensus.simulate import Crowd, CrowdSpec, simulate_crowd
from tagging.models import Classification, GoldAnswer, Mark, Project
from tagging.projects import create_project

KEYS = ["destroyed", "damaged", "no_damage", "cant_tell"]  # the simulator's answer indices, in order
ORIGIN_X, ORIGIN_Y, PIXEL = 500_000.0, 3_980_000.0, 0.5
CRS = "EPSG:32637"


@dataclass(frozen=True)
class CrowdProject:
    project: Project
    crowd: Crowd
    tile_ids: np.ndarray  # grid tile id per crowd tile index
    users: list  # user per crowd volunteer index
    base_y: float

    def ground(self, xy: np.ndarray) -> np.ndarray:
        return np.stack([ORIGIN_X + xy[:, 0], self.base_y + xy[:, 1]], axis=1)

    @property
    def non_gold(self) -> np.ndarray:
        mask = np.ones(self.crowd.n_tiles, bool)
        mask[self.crowd.gold_tiles] = False
        return mask


def crowd_project(spec: CrowdSpec, *, slug: str = "sim", dates: tuple[str, ...] = ("2017-06-01",),
                  with_votes: bool = True, **options: object) -> CrowdProject:
    """An active project holding the simulated crowd's tiles, gold answers and (with_votes) votes and marks."""
    crowd = simulate_crowd(spec=spec)
    project = create_project(slug=slug, name=slug.title(), status=Project.Status.ACTIVE,
                             redundancy=spec.redundancy, **options)  # type: ignore[arg-type]
    grid_spec = GridSpec(CRS, ORIGIN_X, ORIGIN_Y, PIXEL, 448 * spec.n_cols + 64, 448 * spec.n_rows + 64)
    grid = Grid.objects.create(project=project, crs=CRS, origin_x=ORIGIN_X, origin_y=ORIGIN_Y, pixel_size=PIXEL,
                               width=grid_spec.width, height=grid_spec.height)
    layers = [ImageryLayer.objects.create(project=project, date=d, crs=CRS, bounds=[0, 0, 1, 1],
                                          bounds_wgs84=[0, 0, 1, 1], resolution=PIXEL, width=grid_spec.width,
                                          height=grid_spec.height, band_count=3, dtype="uint8", status="ready")
              for d in dates]
    tile_ids = _tiles(grid, grid_spec, spec)
    base_y = ORIGIN_Y - (spec.n_rows - 1) * 224.0 - 256.0
    users = _volunteers(crowd.n_volunteers, slug)
    made = CrowdProject(project, crowd, tile_ids, users, base_y)
    gold = set(crowd.gold_tiles.tolist())
    Tile.objects.filter(pk__in=tile_ids[crowd.gold_tiles].tolist()).update(status=Tile.Status.GOLD)
    GoldAnswer.objects.bulk_create([
        GoldAnswer(tile_id=int(tile_ids[t]), answer=KEYS[crowd.tile_label[t]], marks=_gold_marks(made, t))
        for t in sorted(gold)])
    if with_votes:
        _votes(made, layers, gold)
    return made


def _tiles(grid: Grid, spec: GridSpec, crowd_spec: CrowdSpec) -> np.ndarray:
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    tiles = []
    for col in range(crowd_spec.n_cols):
        for crowd_row in range(crowd_spec.n_rows):
            row = crowd_spec.n_rows - 1 - crowd_row
            x_off, y_off, size, _ = spec.cell_window(col, row)
            minx, miny, maxx, maxy = spec.cell_bounds(col, row)
            west, south = to_wgs84.transform(minx, miny)
            east, north = to_wgs84.transform(maxx, maxy)
            tiles.append(Tile(grid=grid, col=col, row=row, x_off=x_off, y_off=y_off, size=size, minx=minx, miny=miny,
                              maxx=maxx, maxy=maxy, west=west, south=south, east=east, north=north))
    Tile.objects.bulk_create(tiles, batch_size=500)
    ids = dict(((col, row), pk) for col, row, pk in Tile.objects.filter(grid=grid).values_list("col", "row", "id"))
    return np.array([ids[(col, crowd_spec.n_rows - 1 - r)] for col in range(crowd_spec.n_cols)
                     for r in range(crowd_spec.n_rows)], dtype=np.int64)


def _volunteers(n: int, slug: str) -> list:
    user_model = get_user_model()
    user_model.objects.bulk_create([user_model(username=f"{slug}-v{i:03d}", password="!") for i in range(n)])
    by_name = {u.username: u for u in user_model.objects.filter(username__startswith=f"{slug}-v")}
    return [by_name[f"{slug}-v{i:03d}"] for i in range(n)]


def tile_pixels(made: CrowdProject, crowd_tile: int, xy: np.ndarray) -> np.ndarray:
    """Crowd points (metres) as pixels of the given crowd tile: x from its left edge, y down from its top."""
    box = made.crowd.tile_bbox[crowd_tile]
    return np.stack([(xy[:, 0] - box[0]) / PIXEL, (box[3] - xy[:, 1]) / PIXEL], axis=1)


def _gold_marks(made: CrowdProject, tile: int) -> list[list[float]]:
    box = made.crowd.tile_bbox[tile]
    xy = made.crowd.building_xy
    inside = (xy[:, 0] >= box[0]) & (xy[:, 0] < box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] < box[3])
    return np.round(tile_pixels(made, tile, xy[inside]), 2).tolist()


def _votes(made: CrowdProject, layers: list[ImageryLayer], gold: set[int]) -> None:
    crowd = made.crowd
    by_date = sorted(layers, key=lambda layer: str(layer.date))  # the simulator's date index is chronological
    classifications = [
        Classification(project=made.project, tile_id=int(made.tile_ids[t]), volunteer=made.users[v],
                       answer=KEYS[a], seconds=10.0, is_gold=t in gold)
        for t, v, a in zip(crowd.vote_tile.tolist(), crowd.vote_volunteer.tolist(), crowd.vote_answer.tolist())]
    Classification.objects.bulk_create(classifications, batch_size=500)
    ids = np.array([c.pk for c in classifications], dtype=np.int64)
    ground = made.ground(crowd.click_xy)
    tile_of_click = crowd.vote_tile[crowd.click_cls]
    marks = []
    for k, (cls, tile) in enumerate(zip(crowd.click_cls.tolist(), tile_of_click.tolist())):
        x, y = tile_pixels(made, tile, crowd.click_xy[k:k + 1])[0]
        layer = by_date[int(crowd.click_date[k])] if len(layers) > 1 else None
        marks.append(Mark(classification_id=int(ids[cls]), x=float(x), y=float(y), ground_x=float(ground[k, 0]),
                          ground_y=float(ground[k, 1]), layer=layer))
    Mark.objects.bulk_create(marks, batch_size=500)
    counts = np.bincount(crowd.vote_tile, minlength=crowd.n_tiles)
    for n in np.unique(counts).tolist():
        Tile.objects.filter(pk__in=made.tile_ids[counts == n].tolist()).update(vote_count=n)
