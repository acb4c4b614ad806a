"""The coordinators' map overlays: the tiles and buildings in view as GeoJSON, grouped into cells when too many.

    GET /api/v1/projects/<slug>/map/tiles.geojson?bbox=w,s,e,n&zoom=z&color=answer|confidence|agreement|progress
        &answer=destroyed,damaged&min_confidence=0.5&max_confidence=1&contested=1
    GET /api/v1/projects/<slug>/map/buildings.geojson?bbox=w,s,e,n&zoom=z&min_confidence=0.5
        &date_from=2017-05-01&date_to=2017-10-20

For a project's coordinators, managers and admins; a volunteer gets 403, someone who cannot see the
project 404. The bbox is in WGS84 degrees (the whole grid when left out); only what is in it comes back.

Tiles. A tile's polygon is the part of its cell that no later tile starts in (stride x stride grid
pixels from its top-left corner, the whole rest of the grid for the last column and row), projected
to WGS84: the polygons tile the plane without the 64 px overlaps, and follow the grid's rotation
against north. When the bbox holds more than MAX_TILES grid cells, tiles are grouped into cells of
k x k tiles (k a power of two, so that at most MAX_CELLS cells are in view, and no cell is smaller
than MIN_CELL_PX screen pixels at ``zoom``) by SQL aggregation, and the answer says
``"aggregated": true, "cell_tiles": k``. A cell tells its tile count, how many have a consensus, votes,
progress, tiles per label (and the most frequent one), mean confidence and agreement, and how many
are contested.

Buildings come as points while at most MAX_BUILDINGS are in view, else as clusters (count, mean
position, mean and highest confidence) over the same k x k tile cells.

Grouped cells are computed and cached in blocks of BLOCK x BLOCK cells for CACHE_SECONDS (the
shared Django cache: Redis in production), so a city-wide view costs one SQL aggregation per block
and half a minute, not one per request and coordinator; a stale block is served as it is while one
background thread recomputes it. Cells are therefore up to about CACHE_SECONDS old; tiles and
buildings at street zoom (not grouped) are always fresh. The coordinator's access and the grid are
cached per user for ACCESS_SECONDS. Answers over GZIP_OVER bytes are gzipped when the client accepts
it; the link to who said what is a template in the collection's properties (``votes_url``, with
``{id}``), not repeated in every feature.

Filters: ``answer`` (consensus labels, comma-separated), ``min_confidence``/``max_confidence`` (0-1, of
the tile's label or of the building), ``contested=1`` (agreement below CONTESTED_AGREEMENT or
confidence below CONTESTED_CONFIDENCE), and for buildings ``date_from``/``date_to``: buildings that
may have been destroyed in that window (first date destroyed on or after date_from, last date
intact before date_to). A tile filter leaves out the tiles without a consensus yet.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Avg, Case, Count, F, IntegerField, Max, Q, QuerySet, Sum, TextField, Value, When
from django.db.models.functions import Cast, Floor, Least
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from pyproj import Transformer
from rest_framework.request import Request
from rest_framework.views import APIView

from config.errors import InvalidInput
from imagery.grid import GridSpec
from imagery.models import Grid, Tile
from tagging.access import access_project
from tagging.models import Building, Project

# Sizes that keep an overlay request near 10-20 ms of CPU (bench.map): at most ~1,500 features, ~60 KB gzipped.
MAX_TILES = 1500  # grid cells in the bbox above which tiles are grouped
MAX_CELLS = 800  # grouped cells in the bbox, at most (a 1366 x 768 screen: cells of ~40 px)
MIN_CELL_PX = 16  # a drawn cell is at least this many screen pixels wide at the request's zoom
MAX_BUILDINGS = 1500  # building points in the bbox above which they are clustered
MAX_BUILDING_CELLS = 500
GZIP_OVER = 2048  # bytes: bigger answers are gzipped for clients that accept it (they compress ~8 times)
TILE_VOTES = "/api/v1/tiles/{id}/classifications/"
BUILDING_VOTES = "/api/v1/buildings/{id}/classifications/"
BLOCK = 8  # grouped cells are computed and cached BLOCK x BLOCK at a time
CACHE_SECONDS = 30.0
ACCESS_SECONDS = 60
CONTESTED_AGREEMENT = 0.6
CONTESTED_CONFIDENCE = 0.7
COLOURS = ("answer", "confidence", "agreement", "progress")
GEOJSON = "application/geo+json"
log = logging.getLogger(__name__)

Bbox = tuple[float, float, float, float]
Block = tuple[int, int]
Cell = tuple[float, float, float, float, int, str]  # west, south, east, north, count, feature JSON


# --- Input --------------------------------------------------------------------------------------------------------

def parse_bbox(text: str | None) -> Bbox | None:
    """west,south,east,north in degrees, clamped to the world; None when not given."""
    if not text:
        return None
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidInput("bbox must be west,south,east,north in degrees.", fields={"bbox": ["invalid"]}) from exc
    west, east = max(west, -180.0), min(east, 180.0)
    south, north = max(south, -90.0), min(north, 90.0)
    if not (west <= east and south <= north) or not all(map(math.isfinite, (west, south, east, north))):
        raise InvalidInput("bbox must have west <= east and south <= north.", fields={"bbox": ["invalid"]})
    return west, south, east, north


def parse_unit(params: Any, name: str) -> float | None:
    text = params.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{name} must be a number from 0 to 1, not '{text}'.", fields={name: ["out of range"]})
    return value


def parse_zoom(params: Any) -> int | None:
    text = params.get("zoom")
    if text in (None, ""):
        return None
    try:
        return min(max(int(float(text)), 0), 30)
    except ValueError as exc:
        raise InvalidInput(f"zoom must be a number, not '{text}'.", fields={"zoom": ["invalid"]}) from exc


def parse_date(params: Any, name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date such as 2017-10-20.", fields={name: ["invalid"]}) from exc


def parse_flag(params: Any, name: str) -> bool:
    return params.get(name, "").lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TileFilter:
    answers: tuple[str, ...] = ()
    min_confidence: float | None = None
    max_confidence: float | None = None
    contested: bool = False

    @classmethod
    def from_params(cls, params: Any, project: Project) -> TileFilter:
        answers = tuple(sorted({a for a in params.get("answer", "").split(",") if a}))
        unknown = [a for a in answers if a not in project.answer_keys]
        if unknown:
            raise InvalidInput(f"answer must be among {', '.join(project.answer_keys)}; not {', '.join(unknown)}.",
                               fields={"answer": ["invalid choice"]})
        return cls(answers, parse_unit(params, "min_confidence"), parse_unit(params, "max_confidence"),
                   parse_flag(params, "contested"))

    @property
    def active(self) -> bool:
        return bool(self.answers or self.contested or self.min_confidence is not None
                    or self.max_confidence is not None)

    def q(self) -> Q:
        q = Q()
        if self.answers:
            q &= Q(consensus__label__in=self.answers)
        if self.min_confidence is not None:
            q &= Q(consensus__confidence__gte=self.min_confidence)
        if self.max_confidence is not None:
            q &= Q(consensus__confidence__lte=self.max_confidence)
        if self.contested:
            q &= contested_q("consensus__")
        return q


def contested_q(prefix: str = "") -> Q:
    return Q(**{f"{prefix}agreement__lt": CONTESTED_AGREEMENT}) | Q(**{f"{prefix}confidence__lt": CONTESTED_CONFIDENCE})


def is_contested(confidence: float | None, agreement: float | None) -> bool:
    return confidence is not None and (confidence < CONTESTED_CONFIDENCE
                                       or (agreement is not None and agreement < CONTESTED_AGREEMENT))


@dataclass(frozen=True)
class BuildingFilter:
    min_confidence: float = 0.5
    max_confidence: float | None = None
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_params(cls, params: Any) -> BuildingFilter:
        low = parse_unit(params, "min_confidence")
        date_from, date_to = parse_date(params, "date_from"), parse_date(params, "date_to")
        if date_from and date_to and date_from > date_to:
            raise InvalidInput("date_from must not be after date_to.", fields={"date_from": ["after date_to"]})
        return cls(0.5 if low is None else low, parse_unit(params, "max_confidence"), date_from, date_to)

    def q(self) -> Q:
        q = Q(confidence__gte=self.min_confidence)
        if self.max_confidence is not None:
            q &= Q(confidence__lte=self.max_confidence)
        if self.date_from:
            q &= Q(first_destroyed__gte=self.date_from)
        if self.date_to:
            q &= Q(first_destroyed__isnull=False) & (Q(last_intact__isnull=True) | Q(last_intact__lt=self.date_to))
        return q


# --- Grid geometry ------------------------------------------------------------------------------------------------

_local = threading.local()


def transformer(crs: str) -> Transformer:
    """grid CRS -> WGS84 (lon, lat), one per thread and CRS."""
    known = _local.__dict__.setdefault("transformers", {})
    if crs not in known:
        known[crs] = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return known[crs]


@lru_cache(maxsize=64)
def grid_extent(spec: GridSpec) -> Bbox:
    """The grid's bounds in WGS84, from its outline (32 points an edge)."""
    t = np.linspace(0.0, 1.0, 33)
    x0, x1 = spec.origin_x, spec.origin_x + spec.width * spec.pixel_size
    y1, y0 = spec.origin_y, spec.origin_y - spec.height * spec.pixel_size
    xs = np.concatenate([x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + t * (y1 - y0), np.full_like(t, y1), y1 - t * (y1 - y0)])
    lon, lat = transformer(spec.crs).transform(xs, ys)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def clip(a: Bbox, b: Bbox) -> Bbox | None:
    west, south, east, north = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (west, south, east, north) if west <= east and south <= north else None


def cells_in(spec: GridSpec, bbox: Bbox) -> tuple[range, range]:
    """The grid columns and rows whose cells intersect the bbox (already clipped to the grid's extent)."""
    t = np.linspace(0.0, 1.0, 9)
    w, s, e, n = bbox
    lon = np.concatenate([w + t * (e - w), np.full_like(t, e), e - t * (e - w), np.full_like(t, w)])
    lat = np.concatenate([np.full_like(t, s), s + t * (n - s), np.full_like(t, n), n - t * (n - s)])
    xs, ys = transformer(spec.crs).transform(lon, lat, direction="INVERSE")
    return spec.cells_touching((float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))


RING = {digits: "[[" + ",".join([f"[%.{digits}f,%.{digits}f]"] * 5) + "]]" for digits in (5, 6)}


def own_rings(spec: GridSpec, col0: np.ndarray, col1: np.ndarray, row0: np.ndarray, row1: np.ndarray, *,
              digits: int = 6) -> tuple[list[str], np.ndarray]:
    """GeoJSON rings (text) and WGS84 boxes of the areas that columns [col0, col1) x rows [row0, row1) own.

    A tile owns stride x stride pixels from its corner; the last column and row own the rest of the grid.
    6 decimals of a degree are 0.1 m, 5 are 1 m (enough for grouped cells).
    """
    stride = spec.stride
    px0 = col0 * stride
    px1 = np.where(col1 < spec.cols, col1 * stride, spec.width)
    py0 = row0 * stride
    py1 = np.where(row1 < spec.rows, row1 * stride, spec.height)
    left, right = spec.origin_x + px0 * spec.pixel_size, spec.origin_x + px1 * spec.pixel_size
    top, bottom = spec.origin_y - py0 * spec.pixel_size, spec.origin_y - py1 * spec.pixel_size
    # Counter-clockwise (RFC 7946): south-west, south-east, north-east, north-west.
    xs = np.stack([left, right, right, left], axis=1).ravel()
    ys = np.stack([bottom, bottom, top, top], axis=1).ravel()
    lon, lat = transformer(spec.crs).transform(xs, ys)
    lon, lat = lon.reshape(-1, 4), lat.reshape(-1, 4)
    boxes = np.stack([lon.min(axis=1), lat.min(axis=1), lon.max(axis=1), lat.max(axis=1)], axis=1)
    closed = np.concatenate([np.stack([lon, lat], axis=2).reshape(-1, 8), lon[:, :1], lat[:, :1]], axis=1)
    ring = RING[digits]
    return [ring % tuple(corners) for corners in closed.tolist()], boxes


def cell_size(spec: GridSpec, cols: range, rows: range, zoom: int | None, bbox: Bbox, *,
              most: int, threshold: int) -> int:
    """Tiles per cell side: 1 when at most ``threshold`` cells are in view, else the power of two that brings
    them to at most ``most``, and no cell under MIN_CELL_PX screen pixels at ``zoom``."""
    cells = len(cols) * len(rows)
    k = 1
    if cells > threshold:
        k = 2 ** max(0, math.ceil(math.log2(math.sqrt(cells / most))))
    if zoom is not None:
        latitude = (bbox[1] + bbox[3]) / 2
        metres_per_px = 40_075_016.686 * math.cos(math.radians(latitude)) / (256 * 2**zoom)
        tile_px = spec.stride * spec.pixel_size / max(metres_per_px, 1e-9)
        if tile_px * k < MIN_CELL_PX:
            k = max(k, 2 ** math.ceil(math.log2(MIN_CELL_PX / tile_px)))
    return k


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def collection(properties: dict[str, Any], features: Iterable[str]) -> str:
    return ('{"type":"FeatureCollection","properties":' + dumps(properties) + ',"features":['
            + ",".join(features) + "]}")


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@contextmanager
def hot_rows() -> Iterator[None]:
    """A transaction in which PostgreSQL plans for rows that are in memory (random_page_cost 1.1, as on SSDs).

    With the default (4), joining a few thousand tiles to their consensus hashes the whole consensus table:
    120 ms for 3,000 tiles of a 200,000-tile project, against 14 ms by index (bench.map). Setting it on the
    server (postgresql.conf) makes this unnecessary.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL random_page_cost = 1.1")
        yield


def fetch_dicts(query: QuerySet) -> list[dict[str, Any]]:
    """The rows of a values() query, straight from the cursor: Django's per-value converters cost 8 µs a row, a
    third of the time of grouping 3,000 cells, and these columns (counts, sums, averages) need none."""
    sql, params = query.query.sql_with_params()
    names = [*query.query.values_select, *query.query.annotation_select]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [dict(zip(names, row)) for row in cursor.fetchall()]


# --- The block cache ----------------------------------------------------------------------------------------------

def cached_blocks(prefix: str, blocks: list[Block], compute: Callable[[list[Block]], dict[Block, list[Cell]]]
                  ) -> list[Cell]:
    """The cells of the blocks: from the cache where there, missing blocks computed now (one call) and cached.

    A stale block is served as it is, and recomputed in the background by the one request that takes its
    lock: at city zoom a recomputation aggregates the whole project (~250 ms on 200,000 tiles), which no
    coordinator should wait for twice a minute. (Filling a whole level in the background at its first miss
    was tried: at 2 x 2 tiles that is 50,000 cells of Python, and every request in the worker paid for it.)
    """
    keys = {block: block_key(prefix, block) for block in blocks}
    found = cache.get_many(list(keys.values()))
    now = time.time()
    cells: list[Cell] = []
    missing: list[Block] = []
    stale: list[Block] = []
    for block, key in keys.items():
        entry = found.get(key)
        if entry is None:
            missing.append(block)
            continue
        cells.extend(entry[1])
        if entry[0] < now and cache.add(key + ":lock", 1, timeout=60):
            stale.append(block)
    if missing:
        fresh = store_blocks(prefix, missing, compute)
        for block in missing:
            cells.extend(fresh.get(block, []))
    if stale:
        refresh_later(lambda: store_blocks(prefix, stale, compute))
    return cells


CACHE_TIMEOUT = int(max(CACHE_SECONDS, 30.0) * 20)  # blocks are kept well past stale, to be served meanwhile


def block_key(prefix: str, block: Block) -> str:
    return f"{prefix}:{block[0]}:{block[1]}"


def store_blocks(prefix: str, blocks: list[Block],
                 compute: Callable[[list[Block]], dict[Block, list[Cell]]]) -> dict[Block, list[Cell]]:
    fresh = compute(blocks)
    cache.set_many({block_key(prefix, b): (time.time() + CACHE_SECONDS, fresh.get(b, [])) for b in blocks},
                   timeout=CACHE_TIMEOUT)
    cache.delete_many([block_key(prefix, b) + ":lock" for b in blocks])
    return fresh


def refresh_later(work: Callable[[], object]) -> None:
    """Run work in a thread of its own, with its own database connection (closed after)."""
    def run() -> None:
        try:
            work()
        except Exception:
            log.exception("refreshing the map's cells failed")
        finally:
            connection.close()

    threading.Thread(target=run, name="map-cells-refresh", daemon=True).start()


def blocks_over(cols: range, rows: range, k: int) -> list[Block]:
    """The blocks of k x k-tile cells that cover the columns and rows."""
    bx0, bx1 = cols.start // k // BLOCK, (cols.stop - 1) // k // BLOCK
    by0, by1 = rows.start // k // BLOCK, (rows.stop - 1) // k // BLOCK
    return [(bx, by) for by in range(by0, by1 + 1) for bx in range(bx0, bx1 + 1)]


def block_span(blocks: list[Block], k: int) -> tuple[int, int, int, int]:
    """First and last column and row of the tiles in the blocks' bounding rectangle."""
    side = BLOCK * k
    return (min(b[0] for b in blocks) * side, (max(b[0] for b in blocks) + 1) * side - 1,
            min(b[1] for b in blocks) * side, (max(b[1] for b in blocks) + 1) * side - 1)


def in_bbox(cells: Iterable[Cell], bbox: Bbox) -> list[Cell]:
    w, s, e, n = bbox
    return [c for c in cells if c[0] <= e and c[2] >= w and c[1] <= n and c[3] >= s]


def filter_key(*parts: Any) -> str:
    return hashlib.sha1(dumps(parts).encode(), usedforsecurity=False).hexdigest()[:16]


# --- Tiles --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What was asked: the project and its grid, the bbox, zoom and colour."""

    project: Project
    grid: Grid
    spec: GridSpec
    bbox: Bbox
    cols: range
    rows: range
    zoom: int | None
    color: str


def tiles_in_view(view: View, filt: TileFilter) -> str:
    """The tiles (or grouped cells) in view as a GeoJSON FeatureCollection text."""
    project, redundancy = view.project, view.project.redundancy
    properties: dict[str, Any] = {"kind": "tiles", "color": view.color, "redundancy": redundancy,
                                  "votes_url": TILE_VOTES,
                                  "contested_below": {"agreement": CONTESTED_AGREEMENT,
                                                      "confidence": CONTESTED_CONFIDENCE}}
    if not view.cols or not view.rows:
        return collection({**properties, "aggregated": False, "cell_tiles": 1, "count": 0, "tiles": 0}, [])
    k = cell_size(view.spec, view.cols, view.rows, view.zoom, view.bbox, most=MAX_CELLS, threshold=MAX_TILES)
    if k == 1:
        features = tile_features(view, filt)
        return collection({**properties, "aggregated": False, "cell_tiles": 1, "count": len(features),
                           "tiles": len(features)}, features)
    prefix = f"map:tiles:{project.pk}:{k}:{filter_key(filt, view.color, redundancy, project.answer_keys)}"
    cells = in_bbox(cached_blocks(prefix, blocks_over(view.cols, view.rows, k),
                                  lambda todo: tile_cells(view, filt, k, todo)),
                    view.bbox)
    return collection({**properties, "aggregated": True, "cell_tiles": k, "count": len(cells),
                       "tiles": sum(c[4] for c in cells), "max_age_s": CACHE_SECONDS}, (c[5] for c in cells))


TILE_FEATURE = ('{"type":"Feature","id":%d,"geometry":{"type":"Polygon","coordinates":%s},"properties":{"id":%d,'
                '"col":%d,"row":%d,"status":"%s","votes":%d,"label":%s,"confidence":%s,"agreement":%s,"counts":%s,'
                '"contested":%s,"progress":%s,"value":%s}}')


def number(value: float | None) -> str:
    return "null" if value is None else f"{value:.3f}"


@lru_cache(maxsize=256)
def text(value: str | None) -> str:
    return json.dumps(value)


def tile_features(view: View, filt: TileFilter) -> list[str]:
    """Each tile in view as GeoJSON text; formatted by hand, as this is the street-zoom hot path (~1,000 tiles)."""
    w, s, e, n = view.bbox
    tiles = Tile.objects.filter(grid=view.grid, col__gte=view.cols.start, col__lt=view.cols.stop,
                                row__gte=view.rows.start, row__lt=view.rows.stop,
                                west__lte=e, east__gte=w, south__lte=n, north__gte=s)
    if filt.active:
        tiles = tiles.filter(filt.q())
    with hot_rows():  # one join, planned by index (an IN list of 1,000 ids costs 15 ms in Django and psycopg)
        rows = list(tiles.order_by().annotate(counts=Cast("consensus__counts", TextField())).values_list(
            "pk", "col", "row", "status", "vote_count", "consensus__label", "consensus__confidence",
            "consensus__agreement", "counts"))  # the counts' JSON text goes out as stored, unparsed
    if not rows:
        return []
    col = np.array([r[1] for r in rows])
    row = np.array([r[2] for r in rows])
    rings, _ = own_rings(view.spec, col, col + 1, row, row + 1)
    redundancy = view.project.redundancy
    features = []
    value_of = {"answer": 0, "confidence": 1, "agreement": 2, "progress": 4}[view.color]
    for (pk, c, r, status, votes, label, confidence, agreement, counts), ring in zip(rows, rings):
        progress = 1.0 if status == Tile.Status.RETIRED else min(votes, redundancy) / redundancy
        values = (text(label), number(confidence), number(agreement), counts or "{}", number(progress))
        features.append(TILE_FEATURE % (
            pk, ring, pk, c, r, status, votes, values[0], values[1], values[2], values[3],
            "true" if is_contested(confidence, agreement) else "false", values[4], values[value_of]))
    return features


def tile_cells(view: View, filt: TileFilter, k: int, todo: list[Block]) -> dict[Block, list[Cell]]:
    """Group the tiles of the blocks into k x k cells by SQL; build each cell's feature."""
    c0, c1, r0, r1 = block_span(todo, k)
    keys = view.project.answer_keys
    redundancy = view.project.redundancy
    tiles = Tile.objects.filter(grid=view.grid, col__gte=c0, col__lte=c1, row__gte=r0, row__lte=r1)
    if filt.active:
        tiles = tiles.filter(filt.q())
    done = Case(When(status=Tile.Status.RETIRED, then=Value(redundancy)),
                default=Least(F("vote_count"), Value(redundancy), output_field=IntegerField()),
                output_field=IntegerField())
    with hot_rows():
        rows = fetch_dicts(tiles.order_by().annotate(gc=F("col") / k, gr=F("row") / k).values("gc", "gr").annotate(
            n=Count("pk"), judged=Count("consensus"), votes=Sum("vote_count"), done=Sum(done),
            confidence=Avg("consensus__confidence"), agreement=Avg("consensus__agreement"),
            contested=Count("pk", filter=contested_q("consensus__")),
            **{f"label_{i}": Count("pk", filter=Q(consensus__label=key)) for i, key in enumerate(keys)}))
    wanted = set(todo)
    rows = [r for r in rows if (r["gc"] // BLOCK, r["gr"] // BLOCK) in wanted]
    if not rows:
        return {}
    gc = np.array([r["gc"] for r in rows])
    gr = np.array([r["gr"] for r in rows])
    rings, boxes = own_rings(view.spec, gc * k, np.minimum((gc + 1) * k, view.spec.cols), gr * k,
                             np.minimum((gr + 1) * k, view.spec.rows), digits=5)
    cells: dict[Block, list[Cell]] = {}
    value_of = {"answer": 0, "confidence": 1, "agreement": 2, "progress": 3}[view.color]
    for r, ring, box in zip(rows, rings, boxes.tolist()):
        labels = {key: r[f"label_{i}"] for i, key in enumerate(keys) if r[f"label_{i}"]}
        top = max(labels, key=labels.__getitem__) if labels else None
        progress = (r["done"] or 0) / (r["n"] * redundancy)
        values = (text(top), number(r["confidence"]), number(r["agreement"]), number(progress))
        feature = CELL_FEATURE % (
            k, r["gc"], r["gr"], ring, r["gc"], r["gr"], r["n"], r["judged"], r["votes"] or 0, values[3], values[0],
            number(labels[top] / r["judged"]) if top else "null",
            ",".join(f"{text(key)}:{n}" for key, n in labels.items()), values[1], values[2], r["contested"],
            values[value_of])
        cells.setdefault((r["gc"] // BLOCK, r["gr"] // BLOCK), []).append((*box, r["n"], feature))
    return cells


CELL_FEATURE = ('{"type":"Feature","id":"c%d-%d-%d","geometry":{"type":"Polygon","coordinates":%s},"properties":'
                '{"cell":[%d,%d],"tiles":%d,"judged":%d,"votes":%d,"progress":%s,"label":%s,"label_share":%s,'
                '"labels":{%s},"confidence":%s,"agreement":%s,"contested":%d,"value":%s}}')


# --- Buildings ----------------------------------------------------------------------------------------------------

BUILDING_FIELDS = ("pk", "lon", "lat", "confidence", "uncertainty_m", "n_support", "n_oppose", "is_gold",
                   "last_intact", "first_destroyed", "window_confidence")


def buildings_in_view(view: View, filt: BuildingFilter) -> str:
    properties: dict[str, Any] = {"kind": "buildings", "min_confidence": filt.min_confidence,
                                  "votes_url": BUILDING_VOTES}
    w, s, e, n = view.bbox
    found = building_rows(view.project, filt).filter(lon__gte=w, lon__lte=e, lat__gte=s, lat__lte=n)
    # Count up to the limit first (no ORDER BY: it stops there): a city-wide view never fetches its points.
    if found[:MAX_BUILDINGS + 1].count() <= MAX_BUILDINGS or not (view.cols and view.rows):
        rows = sorted(found.values_list(*BUILDING_FIELDS)[:MAX_BUILDINGS], key=lambda r: r[3])  # surest on top
        features = [building_feature(r) for r in rows]
        return collection({**properties, "aggregated": False, "count": len(features), "buildings": len(features)},
                          features)
    k = cell_size(view.spec, view.cols, view.rows, view.zoom, view.bbox, most=MAX_BUILDING_CELLS, threshold=0)
    prefix = f"map:buildings:{view.project.pk}:{k}:{filter_key(filt)}"
    cells = in_bbox(cached_blocks(prefix, blocks_over(view.cols, view.rows, k),
                                  lambda todo: building_cells(view, filt, k, todo)),
                    view.bbox)
    return collection({**properties, "aggregated": True, "cell_tiles": k, "count": len(cells),
                       "buildings": sum(c[4] for c in cells), "max_age_s": CACHE_SECONDS}, (c[5] for c in cells))


def building_rows(project: Project, filt: BuildingFilter) -> QuerySet[Building]:
    return Building.objects.filter(project=project).filter(filt.q()).order_by()


BUILDING_FEATURE = ('{"type":"Feature","id":%d,"geometry":{"type":"Point","coordinates":[%.6f,%.6f]},"properties":'
                    '{"id":%d,"confidence":%s,"uncertainty_m":%.1f,"support":%d,"oppose":%d,"is_gold":%s,'
                    '"last_intact":%s,"first_destroyed":%s,"window_confidence":%s}}')


def building_feature(r: tuple) -> str:
    pk, lon, lat, confidence, uncertainty, support, oppose, gold, last_intact, first_destroyed, window = r
    return BUILDING_FEATURE % (pk, lon, lat, pk, number(confidence), uncertainty, support, oppose,
                               "true" if gold else "false", day(last_intact), day(first_destroyed), number(window))


def day(value: date | None) -> str:
    return "null" if value is None else f'"{value.isoformat()}"'


def building_cells(view: View, filt: BuildingFilter, k: int, todo: list[Block]) -> dict[Block, list[Cell]]:
    """Cluster the buildings of the blocks by the k x k tile cell their ground point falls in."""
    spec = view.spec
    side = spec.stride * spec.pixel_size * k  # ground metres of a cell
    c0, c1, r0, r1 = block_span(todo, k)
    x0, y0 = spec.origin_x + c0 * spec.stride * spec.pixel_size, spec.origin_y - r0 * spec.stride * spec.pixel_size
    x1 = spec.origin_x + (c1 + 1) * spec.stride * spec.pixel_size
    y1 = spec.origin_y - (r1 + 1) * spec.stride * spec.pixel_size
    rows = fetch_dicts(building_rows(view.project, filt).filter(
        ground_x__gte=x0, ground_x__lt=x1, ground_y__lte=y0, ground_y__gt=y1).annotate(
        gc=Floor((F("ground_x") - spec.origin_x) / side),
        gr=Floor((spec.origin_y - F("ground_y")) / side)).values("gc", "gr").annotate(
        n=Count("pk"), mean_lon=Avg("lon"), mean_lat=Avg("lat"), mean=Avg("confidence"), top=Max("confidence"),
        support=Sum("n_support")))
    wanted = set(todo)
    cells: dict[Block, list[Cell]] = {}
    for r in rows:
        gc, gr = int(r["gc"]), int(r["gr"])
        block = (gc // BLOCK, gr // BLOCK)
        if block not in wanted:
            continue
        props = {"cell": [gc, gr], "buildings": r["n"], "confidence": rounded(r["mean"]),
                 "max_confidence": rounded(r["top"]), "support": r["support"] or 0}
        lon, lat = r["mean_lon"], r["mean_lat"]
        feature = ('{"type":"Feature","id":"b' + f"{k}-{gc}-{gr}" + '","geometry":{"type":"Point","coordinates":['
                   + f"{lon:.6f},{lat:.6f}" + ']},"properties":' + dumps(props) + "}")
        cells.setdefault(block, []).append((lon, lat, lon, lat, r["n"], feature))
    return cells


# --- Endpoints ----------------------------------------------------------------------------------------------------

def access_map(user: Any, slug: str) -> tuple[Project, Grid | None]:
    """The project (and its grid) if the user coordinates it; access_project's errors otherwise.

    A granted access is cached for ACCESS_SECONDS per user and project: the overlays are asked for after every
    move of the map, and the check costs five queries. Taking someone's role away therefore takes up to
    ACCESS_SECONDS to reach the overlays.
    """
    key = f"map:access:{user.pk}:{slug}"
    found = cache.get(key)
    if found is not None:
        return found
    project = access_project(user, slug, coordinate=True)
    entry = (project, Grid.objects.filter(project=project).first())
    cache.set(key, entry, ACCESS_SECONDS)
    return entry


def map_view(request: Request, slug: str) -> View | None:
    """The coordinator's project and what is in view; None when the project has no grid or the bbox misses it."""
    project, grid = access_map(request.user, slug)
    params = request.query_params
    color = params.get("color") or "answer"
    if color not in COLOURS:
        raise InvalidInput(f"color must be one of {', '.join(COLOURS)}.", fields={"color": ["invalid choice"]})
    bbox = parse_bbox(params.get("bbox"))
    zoom = parse_zoom(params)
    if grid is None:
        return None
    spec = grid.spec()
    extent = grid_extent(spec)
    bbox = clip(bbox or extent, extent)
    if bbox is None:
        return None
    cols, rows = cells_in(spec, bbox)
    return View(project, grid, spec, bbox, cols, rows, zoom, color)


COMMON = [OpenApiParameter("bbox", str, description="west,south,east,north in WGS84 degrees (default: the grid)"),
          OpenApiParameter("zoom", int, description="The map's zoom: cells stay at least a few pixels wide.")]


def geojson_response(request: Request, text: str) -> HttpResponse:
    """The collection, gzipped (fast level) when big and accepted: a city-wide answer goes from ~300 to ~40 KB.

    The answers hold no secret, so compressing them is safe from BREACH-style attacks.
    """
    data = text.encode()
    response = HttpResponse(content_type=GEOJSON)
    if len(data) > GZIP_OVER and "gzip" in request.headers.get("Accept-Encoding", ""):
        data = gzip.compress(data, compresslevel=1, mtime=0)
        response["Content-Encoding"] = "gzip"
    response.content = data
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


class MapTiles(APIView):
    @extend_schema(operation_id="map_tiles", parameters=[
        *COMMON,
        OpenApiParameter("color", str, enum=list(COLOURS), description="What each feature's 'value' is."),
        OpenApiParameter("answer", str, description="Consensus labels, comma-separated."),
        OpenApiParameter("min_confidence", float), OpenApiParameter("max_confidence", float),
        OpenApiParameter("contested", bool, description=f"Agreement under {CONTESTED_AGREEMENT} or confidence under "
                                                        f"{CONTESTED_CONFIDENCE}."),
    ], responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> HttpResponse:
        """The tiles in view with their consensus, or k x k cells of them when the view holds too many."""
        view = map_view(request, slug)
        if view is None:
            return geojson_response(request, collection({"kind": "tiles", "aggregated": False, "count": 0,
                                                         "tiles": 0}, []))
        filt = TileFilter.from_params(request.query_params, view.project)
        return geojson_response(request, tiles_in_view(view, filt))


class MapBuildings(APIView):
    @extend_schema(operation_id="map_buildings", parameters=[
        *COMMON,
        OpenApiParameter("min_confidence", float, description="Default 0.5."),
        OpenApiParameter("max_confidence", float),
        OpenApiParameter("date_from", OpenApiTypes.DATE, description="Destroyed on or after this date (first "
                                                                     "date destroyed)."),
        OpenApiParameter("date_to", OpenApiTypes.DATE, description="Still intact before this date (last date "
                                                                   "intact)."),
    ], responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> HttpResponse:
        """Destroyed buildings in view as points, or clusters over k x k tile cells when too many."""
        view = map_view(request, slug)
        filt = BuildingFilter.from_params(request.query_params)
        if view is None:
            return geojson_response(request, collection({"kind": "buildings", "aggregated": False, "count": 0,
                                                "buildings": 0}, []))
        return geojson_response(request, buildings_in_view(view, filt))
