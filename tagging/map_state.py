"""What the map's grouped cells are computed from: the state of every tile and building of a project, as
numpy arrays in each web process's memory, published through the Django cache.

Grouping a city-wide view by SQL reads every tile of the project (~1 s for 200,000 tiles, bench.map), and
the grouping changes with the zoom. Instead one query per table loads the project's tiles (column, row,
status, votes, consensus) onto grid-shaped arrays and its buildings into columns, and a grouped view sums
those arrays: tile cells of k x k tiles come from a pyramid of per-cell sums (level 2k is level k summed
2 x 2), built once per state and filter, so a request costs the cells in view (at most a few hundred),
never the tiles under them.

Freshness. A state is built (i) at the end of every consensus run (``ensure_map_state_after_run``, in the
worker), so a finished run shows at once, and (ii) when a request finds the published state unchecked for
STATE_SECONDS: that request still answers from it, and one background thread (one for all processes: a
cache lock) checks the project's watermark (latest run, latest vote, latest tile: three indexed queries)
and builds the next state only when it moved, or when the state is STATE_MAX_SECONDS old (a vote whose
live consensus update landed after the watermark was read). Building reads every tile (~1.3 s for 200,000
tiles, most of it holding the worker's GIL), so an idle project costs nothing and an active one a build
per STATE_SECONDS. Votes between runs (a tile's vote count and its live consensus) therefore reach the
grouped cells within about STATE_SECONDS; tiles and buildings at street zoom are read fresh by SQL.

The published state carries a version (the latest finished run's id and a random part); each request reads
the version (one cache read) and adopts a newer state when its own copy is older.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import Max

from imagery.grid import GridSpec
from imagery.models import Grid, Tile
from tagging.models import Building, Classification, ConsensusRun, Project

if TYPE_CHECKING:
    from tagging.map_layers import BuildingFilter, TileFilter

STATE_SECONDS = 30.0  # a state unchecked for this long is checked (and rebuilt if changed) in the background
STATE_MAX_SECONDS = 300.0  # and rebuilt whatever the check says when this old
STATE_TIMEOUT = 24 * 3600  # how long the cache keeps a published state nobody refreshes
LOCK_SECONDS = 120
PYRAMIDS_KEPT = 6  # (filter, redundancy) pyramids kept per state, least recently used dropped
MEMOS_KEPT = 24  # (filter, colour, cell size) memos of cell features kept per state
MEMO_ENTRIES = 100_000  # features in one memo (~40 MB at most) before it starts again
CONTESTED_AGREEMENT = 0.6
CONTESTED_CONFIDENCE = 0.7
NO_DAY = np.iinfo(np.int32).min  # a date column that is empty
log = logging.getLogger(__name__)

# Rows of a tile level: tiles, with a consensus, votes, votes towards retirement, confidence sum and count,
# agreement sum and count, contested; then one row per answer key.
N, JUDGED, VOTES, DONE, CONF_SUM, CONF_N, AGREE_SUM, AGREE_N, CONTESTED = range(9)
LABELS = 9
# Rows of a building level: buildings, lon sum, lat sum, confidence sum, support sum (the highest confidence
# is a level of its own: maxima, not sums).
B_N, B_LON, B_LAT, B_CONF, B_SUPPORT = range(5)


@dataclass
class MapState:
    """A project's tiles on its grid (arrays of rows x cols) and its buildings (columns), at one moment."""

    project_id: int
    grid_id: int
    spec: GridSpec
    version: str
    watermark: tuple[int, int, int]  # latest finished run, latest vote, latest tile when the rows were read
    built_at: float
    labels: tuple[str, ...]  # the consensus labels found; ``label`` indexes them, -1 without a consensus
    present: np.ndarray  # bool: a tile exists in that grid cell
    retired: np.ndarray  # bool
    votes: np.ndarray  # int32
    label: np.ndarray  # int16
    confidence: np.ndarray  # float32, NaN without a consensus
    agreement: np.ndarray  # float32, NaN without one
    b_x: np.ndarray  # buildings: ground metres in the grid's CRS
    b_y: np.ndarray
    b_lon: np.ndarray
    b_lat: np.ndarray
    b_confidence: np.ndarray
    b_support: np.ndarray
    b_first_destroyed: np.ndarray  # int32 proleptic ordinals, NO_DAY when empty
    b_last_intact: np.ndarray
    _pyramids: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _memos: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # the cache gets the arrays, never what this process derived
        return {**self.__dict__, "_pyramids": OrderedDict(), "_memos": OrderedDict()}

    @property
    def run_id(self) -> int:
        return self.watermark[0]

    @property
    def age_s(self) -> float:
        return time.time() - self.built_at

    def pyramid(self, key: Hashable, base: Callable[[], list[Any]]) -> list[Any]:
        """The levels of a pyramid, built on demand and kept (a few per state, least recently used dropped)."""
        levels = self._pyramids.get(key)
        if levels is None:
            levels = base()
            self._pyramids[key] = levels
            while len(self._pyramids) > PYRAMIDS_KEPT:
                self._pyramids.popitem(last=False)
        else:
            self._pyramids.move_to_end(key)
        return levels

    def memo(self, key: Hashable) -> dict[Any, Any]:
        """A dict for what is derived from this state under ``key`` (a cell's feature text, for one): a few
        kept, least recently used dropped, each emptied past MEMO_ENTRIES."""
        found = self._memos.get(key)
        if found is None or len(found) > MEMO_ENTRIES:
            found = self._memos[key] = {}
            while len(self._memos) > MEMOS_KEPT:
                self._memos.popitem(last=False)
        else:
            self._memos.move_to_end(key)
        return found


# --- Building a state ----------------------------------------------------------------------------------------------

def fetch_rows(query: Any) -> list[tuple]:
    """The rows of a values_list() query straight from the cursor, without Django's per-value converters."""
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def read_watermark(project_id: int, grid_id: int) -> tuple[int, int, int]:
    """What a state's rows depend on: the latest finished run, vote and tile (their ids; 0 for none)."""
    run = (ConsensusRun.objects.filter(project_id=project_id, status=ConsensusRun.Status.DONE)
           .order_by("-id").values_list("id", flat=True).first())
    vote = Classification.objects.filter(project_id=project_id).aggregate(last=Max("id"))["last"]
    tile = Tile.objects.filter(grid_id=grid_id).aggregate(last=Max("id"))["last"]
    return run or 0, vote or 0, tile or 0


def build_map_state(*, project: Project, grid: Grid) -> MapState:
    """Load the project's tiles and buildings into a new state (two queries after the watermark's three)."""
    watermark = read_watermark(project.pk, grid.pk)  # read first: a change while reading shows next time
    spec = grid.spec()
    rows = fetch_rows(Tile.objects.filter(grid=grid).order_by().values_list(
        "col", "row", "status", "vote_count", "consensus__label", "consensus__confidence", "consensus__agreement"))
    shape = (spec.rows, spec.cols)
    present, retired = np.zeros(shape, bool), np.zeros(shape, bool)
    votes, label = np.zeros(shape, np.int32), np.full(shape, -1, np.int16)
    confidence, agreement = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    labels: tuple[str, ...] = ()
    if rows:
        col, row, status, count, names, conf, agree = zip(*rows)
        where = (np.array(row, np.int64), np.array(col, np.int64))
        labels = tuple(sorted({name for name in names if name is not None}))
        code = {name: i for i, name in enumerate(labels)}
        present[where] = True
        retired[where] = np.array(status, dtype=object) == Tile.Status.RETIRED
        votes[where] = count
        label[where] = [code.get(name, -1) for name in names]
        confidence[where] = np.array(conf, dtype=float)  # None becomes NaN
        agreement[where] = np.array(agree, dtype=float)
    b = fetch_rows(Building.objects.filter(project=project).order_by().values_list(
        "ground_x", "ground_y", "lon", "lat", "confidence", "n_support", "first_destroyed", "last_intact"))
    bx, by, blon, blat, bconf, bsupport, first, last = zip(*b) if b else ((),) * 8
    return MapState(project.pk, grid.pk, spec, f"{watermark[0]}-{uuid.uuid4().hex[:12]}", watermark, time.time(),
                    labels,
                    present, retired, votes, label, confidence, agreement,
                    np.array(bx, float), np.array(by, float), np.array(blon, float), np.array(blat, float),
                    np.array(bconf, float), np.array(bsupport, np.int64), days(first), days(last))


def days(values: tuple) -> np.ndarray:
    return np.array([NO_DAY if v is None else v.toordinal() for v in values], np.int32)


# --- Publishing and finding it ---------------------------------------------------------------------------------------

_memory: dict[int, MapState] = {}  # this process's copies, by project


def version_key(project_id: int) -> str:
    return f"map:state-version:{project_id}"


def state_key(project_id: int) -> str:
    return f"map:state:{project_id}"


def publish(state: MapState) -> MapState:
    """Share the state with every process, unless a later consensus run's state is already there."""
    known = cache.get(version_key(state.project_id))
    if known is not None and known[1] > state.run_id:
        return state  # built from rows older than the published run's: keep that one
    cache.set(state_key(state.project_id), state, timeout=STATE_TIMEOUT)
    mark_checked(state)
    _memory[state.project_id] = state
    return state


def mark_checked(state: MapState) -> None:
    """The published version record: (version, run id, when its watermark was last found current)."""
    cache.set(version_key(state.project_id), (state.version, state.run_id, time.time()), timeout=STATE_TIMEOUT)


def current_map_state(*, project: Project, grid: Grid) -> MapState:
    """The project's latest published state (built now when there is none); an old one is served and rebuilt
    in the background by the one request that takes the lock."""
    published = cache.get(version_key(project.pk))
    state = _memory.get(project.pk)
    if published is None or state is None or state.version != published[0] or state.grid_id != grid.pk:
        shared = cache.get(state_key(project.pk)) if published is not None else None
        if shared is None or shared.grid_id != grid.pk:
            shared = publish(build_map_state(project=project, grid=grid))
        _memory[project.pk] = state = shared
    checked = published[2] if published is not None and published[0] == state.version else state.built_at
    if time.time() - checked > STATE_SECONDS and cache.add(lock_key(project.pk), 1, timeout=LOCK_SECONDS):
        refresh_later(lambda: rebuild(project.pk, unless_current=state))
    return state


def lock_key(project_id: int) -> str:
    return f"map:state-lock:{project_id}"


def rebuild(project_id: int, *, unless_current: MapState | None = None) -> MapState | None:
    """Build and publish the project's state now, or only mark ``unless_current`` checked when its watermark
    still holds and it is under STATE_MAX_SECONDS old; frees the refresh lock."""
    try:
        project = Project.objects.filter(pk=project_id).first()
        grid = Grid.objects.filter(project_id=project_id).first()
        if project is None or grid is None:
            return None
        current = unless_current
        if (current is not None and current.grid_id == grid.pk and current.age_s < STATE_MAX_SECONDS
                and read_watermark(project_id, grid.pk) == current.watermark):
            mark_checked(current)
            return current
        return publish(build_map_state(project=project, grid=grid))
    finally:
        cache.delete(lock_key(project_id))


def ensure_map_state_after_run(*, project: Project) -> None:
    """Publish the project's map state after a consensus run, so the map shows the run at once.

    Never raises: the run is done whatever happens here, and the map builds a state itself when it finds
    none (or an old one).
    """
    try:
        rebuild(project.pk)
    except Exception:
        log.exception("the map state of project %s was not rebuilt after its consensus run", project.pk)


def refresh_later(work: Callable[[], object]) -> None:
    """Run work in a thread of its own, with its own database connection (closed after)."""
    def run() -> None:
        try:
            work()
        except Exception:
            log.exception("refreshing the map state failed")
        finally:
            connection.close()

    threading.Thread(target=run, name="map-state-refresh", daemon=True).start()


# --- Tiles grouped into cells ----------------------------------------------------------------------------------------

def halve(level: np.ndarray, reduce: Callable = np.add.reduce) -> np.ndarray:
    """The next level: 2 x 2 cells of this one reduced into one (the last axes are rows and columns)."""
    *lead, rows, cols = level.shape
    padded = np.zeros((*lead, rows + rows % 2, cols + cols % 2), level.dtype)
    padded[..., :rows, :cols] = level
    blocks = padded.reshape(*lead, padded.shape[-2] // 2, 2, padded.shape[-1] // 2, 2)
    return reduce(reduce(blocks, axis=-1), axis=-2)


def tile_level(state: MapState, selection: TileFilter, keys: tuple[str, ...], redundancy: int,
               k: int) -> np.ndarray:
    """Per k x k cell (k a power of two, at least 2): the sums of the level rows above; shape (rows, R, C)."""
    def base() -> list[Any]:
        return [tile_sums(state, selection, keys, redundancy)]

    levels = state.pyramid(("tiles", selection, keys, redundancy), base)
    depth = int(k).bit_length() - 1  # level 0 is single tiles
    while len(levels) <= depth:
        levels.append(halve(levels[-1]))
    return levels[depth]


def tile_sums(state: MapState, selection: TileFilter, keys: tuple[str, ...], redundancy: int) -> np.ndarray:
    """The level of single tiles: what each grid cell adds to its group, under the selection."""
    judged_all = state.label >= 0
    conf, agree = state.confidence, state.agreement
    # NaN compares false, as NULL does in SQL: a tile without a consensus is never contested or in range.
    contested = judged_all & ((agree < CONTESTED_AGREEMENT) | (conf < CONTESTED_CONFIDENCE))
    counted = state.present.copy()
    if selection.answers:
        wanted = [state.labels.index(a) for a in selection.answers if a in state.labels]
        counted &= np.isin(state.label, wanted)
    if selection.min_confidence is not None:
        counted &= conf >= selection.min_confidence
    if selection.max_confidence is not None:
        counted &= conf <= selection.max_confidence
    if selection.contested:
        counted &= contested
    judged = counted & judged_all
    done = np.where(state.retired, redundancy, np.minimum(state.votes, redundancy))
    codes = [state.labels.index(key) if key in state.labels else -2 for key in keys]
    rows = [counted, judged, np.where(counted, state.votes, 0), np.where(counted, done, 0),
            np.where(judged & ~np.isnan(conf), conf, 0), judged & ~np.isnan(conf),
            np.where(judged & ~np.isnan(agree), agree, 0), judged & ~np.isnan(agree), counted & contested,
            *(counted & (state.label == code) for code in codes)]
    return np.stack([r.astype(np.float64) for r in rows])


# --- Buildings grouped into cells -------------------------------------------------------------------------------------

def building_mask(state: MapState, selection: BuildingFilter) -> np.ndarray:
    """The buildings the selection keeps (an empty date excludes, as NULL does in SQL)."""
    keep = state.b_confidence >= selection.min_confidence
    if selection.max_confidence is not None:
        keep &= state.b_confidence <= selection.max_confidence
    if selection.date_from:
        keep &= (state.b_first_destroyed != NO_DAY) & (state.b_first_destroyed >= selection.date_from.toordinal())
    if selection.date_to:
        keep &= (state.b_first_destroyed != NO_DAY) & ((state.b_last_intact == NO_DAY)
                                                      | (state.b_last_intact < selection.date_to.toordinal()))
    return keep


def buildings_in(state: MapState, selection: BuildingFilter, bbox: tuple[float, float, float, float]) -> int:
    w, s, e, n = bbox
    lon, lat = state.b_lon, state.b_lat
    return int(np.count_nonzero(building_mask(state, selection) & (lon >= w) & (lon <= e) & (lat >= s)
                                & (lat <= n)))


def building_level(state: MapState, selection: BuildingFilter, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per k x k tile cell: (sums of the rows above, shape (5, R, C); highest confidence, shape (R, C))."""
    def base() -> list[Any]:
        return [building_sums(state, selection)]

    levels = state.pyramid(("buildings", selection), base)
    depth = int(k).bit_length() - 1
    while len(levels) <= depth:
        sums, top = levels[-1]
        levels.append((halve(sums), halve(top, np.maximum.reduce)))
    return levels[depth]


def building_sums(state: MapState, selection: BuildingFilter) -> tuple[np.ndarray, np.ndarray]:
    """Each building in the tile cell its ground point falls in (the last column and row own the grid's rest)."""
    spec = state.spec
    side = spec.stride * spec.pixel_size
    x, y = state.b_x, state.b_y
    inside = ((x >= spec.origin_x) & (x < spec.origin_x + spec.width * spec.pixel_size)
              & (y <= spec.origin_y) & (y > spec.origin_y - spec.height * spec.pixel_size))
    keep = building_mask(state, selection) & inside
    gc = np.minimum(np.floor((x[keep] - spec.origin_x) / side).astype(np.int64), spec.cols - 1)
    gr = np.minimum(np.floor((spec.origin_y - y[keep]) / side).astype(np.int64), spec.rows - 1)
    cell = gr * spec.cols + gc
    size = spec.rows * spec.cols
    sums = np.stack([np.bincount(cell, weights=w, minlength=size) for w in (
        np.ones(len(cell)), state.b_lon[keep], state.b_lat[keep], state.b_confidence[keep],
        state.b_support[keep].astype(float))]).reshape(5, spec.rows, spec.cols)
    top = np.full(size, -np.inf)
    np.maximum.at(top, cell, state.b_confidence[keep])
    return sums, top.reshape(spec.rows, spec.cols)
