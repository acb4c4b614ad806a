"""What stands behind each building: the classifications that marked it, those that saw it and did not,
its marks; and which building of the previous run a new one is. Numpy only, vectorised over all buildings.

Separate from tagging.consensus (which knows nothing of database ids) because it maps the pure
estimate's indices back to classification and mark ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from imagery.grid import GridSpec
from tagging.consensus.buildings import BuildingConsensus

if TYPE_CHECKING:
    from tagging.consensus_store import ProjectVotes


@dataclass(frozen=True)
class BuildingEvidence:
    """Per kept building (in the order of `keep`): sorted ids."""

    supporting: list[list[int]]  # classifications with a mark on it
    opposing: list[list[int]]  # classifications of volunteers who saw it (not abstaining) and did not mark it
    marks: list[list[int]]


def building_evidence(*, buildings: BuildingConsensus, keep: np.ndarray, votes: ProjectVotes, marks_cls: np.ndarray,
                      mark_ids: np.ndarray, grid: GridSpec, edge_margin_m: float) -> BuildingEvidence:
    """The classification and mark ids behind the buildings `keep` (candidate indices).

    A classification saw a building when its tile's footprint, shrunk by edge_margin_m, holds the
    building's centre: the rule the estimate counts opponents by.
    """
    b = buildings.buildings
    position = np.full(len(b.xy), -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    click_pos = position[b.click_building]
    kept = click_pos >= 0
    supporting = _grouped(click_pos[kept], votes.cls_id[marks_cls[kept]], len(keep))
    marks = _grouped(click_pos[kept], mark_ids[kept], len(keep))
    support_keys = np.sort(b.click_building * votes.n_volunteers + votes.volunteer[marks_cls])
    opposing = _opposing(b.xy[keep], keep, support_keys, votes, grid, edge_margin_m)
    return BuildingEvidence(supporting, opposing, marks)


def _grouped(group: np.ndarray, values: np.ndarray, n_groups: int) -> list[list[int]]:
    """Sorted unique non-negative values per group 0..n_groups-1."""
    span = int(values.max()) + 1 if len(values) else 1
    key = np.sort(group.astype(np.int64) * span + values)  # sorting beats numpy 2.4's hashing np.unique here
    keep = np.ones(len(key), bool)
    keep[1:] = key[1:] != key[:-1]
    key = key[keep]
    bounds = np.searchsorted(key // span, np.arange(n_groups + 1)).tolist()
    flat = (key % span).tolist()
    return [flat[bounds[i]:bounds[i + 1]] for i in range(n_groups)]


def _opposing(xy: np.ndarray, candidate: np.ndarray, support_keys: np.ndarray, votes: ProjectVotes, grid: GridSpec,
              margin: float) -> list[list[int]]:
    building, tile = _tiles_holding(xy, votes, grid, margin)
    # Every classification on those tiles: the votes sorted by tile, as CSR.
    order = np.argsort(votes.tile, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(votes.tile, minlength=len(votes.tile_ids)))])
    count = indptr[tile + 1] - indptr[tile]
    pair = np.repeat(np.arange(len(tile)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    vote = order[indptr[tile][pair] + offset]
    building = building[pair]
    seeing = votes.answer[vote] != (votes.abstain if votes.abstain is not None else -1)
    key = candidate[building] * votes.n_volunteers + votes.volunteer[vote]
    against = seeing & ~np.isin(key, support_keys)
    return _grouped(building[against], votes.cls_id[vote[against]], len(xy))


def _tiles_holding(xy: np.ndarray, votes: ProjectVotes, grid: GridSpec,
                   margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(building, tile index) pairs with the building inside the tile's footprint shrunk by margin.

    Tile (col, row) starts stride pixels after (col - 1, row - 1) and the overlap is under half a
    tile, so a point lies in at most the 2 x 2 cells at and before its stride cell.
    """
    if not len(xy) or not len(votes.tile_ids):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    stride_m = grid.stride * grid.pixel_size
    base_col = np.floor((xy[:, 0] - grid.origin_x) / stride_m).astype(np.int64)
    base_row = np.floor((grid.origin_y - xy[:, 1]) / stride_m).astype(np.int64)
    n_rows = int(votes.tile_row.max()) + 2
    cell_key = votes.tile_col * n_rows + votes.tile_row
    by_key = np.argsort(cell_key, kind="stable")
    buildings, tiles = [], []
    for dc in (0, 1):
        for dr in (0, 1):
            col, row = base_col - dc, base_row - dr
            valid = (col >= 0) & (row >= 0) & (row < n_rows - 1)
            key = col * n_rows + row
            at = np.minimum(np.searchsorted(cell_key[by_key], key), len(by_key) - 1)
            tile = by_key[at]
            valid &= cell_key[tile] == key
            box = votes.tile_bbox[tile]
            valid &= ((xy[:, 0] >= box[:, 0] + margin) & (xy[:, 0] < box[:, 2] - margin)
                      & (xy[:, 1] >= box[:, 1] + margin) & (xy[:, 1] < box[:, 3] - margin))
            buildings.append(np.flatnonzero(valid))
            tiles.append(tile[valid])
    return np.concatenate(buildings), np.concatenate(tiles)


def match_to_previous(*, new_xy: np.ndarray, old_xy: np.ndarray, old_ids: np.ndarray, radius_m: float) -> np.ndarray:
    """Per new building, the id of the old building it is (0 for none): mutual nearest neighbours within radius_m.

    Mutual nearest neighbours pair each old building with at most one new one, so ids stay
    unique, and a building found again where it was keeps the id reviews refer to.
    """
    ids = np.zeros(len(new_xy), dtype=np.int64)
    if not len(new_xy) or not len(old_xy):
        return ids
    distance, nearest_old = cKDTree(old_xy).query(new_xy, distance_upper_bound=radius_m)
    _, nearest_new = cKDTree(new_xy).query(old_xy, distance_upper_bound=radius_m)
    close = np.flatnonzero(np.isfinite(distance))
    mutual = close[nearest_new[nearest_old[close]] == close]
    ids[mutual] = old_ids[nearest_old[mutual]]
    return ids
