"""A crowd simulator with known ground truth, for the tests and the benchmark.

Pure numpy. Everything is in ground metres (x east, y north) on a regular
tile grid with overlap, as the project grid lays tiles out: tile (col, row)
covers [col * stride, col * stride + tile_m) in x, the same in y, with
stride = tile_m - overlap_m.

The crowd: volunteers of varying skill, careless ones who answer and click at
random, a few who always say "no damage", long-tailed activity (a few
volunteers do most of the votes), an abstention answer, click jitter, missed
buildings, clicks on decoys (rubble-like things that are not destroyed
buildings), stray clicks, and gold tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DESTROYED, DAMAGED, NO_DAMAGE, CANT_TELL = 0, 1, 2, 3
N_ANSWERS = 4
GOOD, CARELESS, ALWAYS_NO = 0, 1, 2

# Where a good volunteer's wrong answer goes: row = true label, columns =
# answer. Destroyed and damaged are confused more than destroyed and intact.
_ERROR_SPREAD = np.array([[0.0, 0.7, 0.3], [0.4, 0.0, 0.6], [0.3, 0.7, 0.0]])


@dataclass(frozen=True)
class CrowdSpec:
    n_cols: int = 40
    n_rows: int = 40
    tile_m: float = 256.0
    overlap_m: float = 32.0
    n_volunteers: int = 200
    redundancy: int = 5
    activity_sigma: float = 1.5  # lognormal spread of how much each volunteer does
    share_careless: float = 0.15
    share_always_no: float = 0.05
    skill_mean: float = 0.8  # chance that a good volunteer gives the true answer
    skill_concentration: float = 12.0
    abstain_rate: float = 0.05
    site_spacing_m: float = 20.0  # building sites lie on a jittered lattice
    district_m: float = 1000.0  # damage comes in hot spots of this size
    destroyed_per_tile: float = 0.5  # mean destroyed buildings per tile area
    decoys_per_tile: float = 0.3
    damaged_tile_rate: float = 0.3
    hit_rate_mean: float = 0.75
    decoy_click_rate: float = 0.2
    stray_clicks_per_view: float = 0.05
    careless_clicks_per_view: float = 1.0
    jitter_m: float = 2.0
    n_dates: int = 1
    date_accuracy: float = 0.8
    gold_rate: float = 0.03
    seed: int = 0

    @property
    def stride_m(self) -> float:
        return self.tile_m - self.overlap_m


POOR_CROWD = dict(skill_mean=0.62, share_careless=0.3, share_always_no=0.1)


@dataclass(frozen=True)
class Crowd:
    spec: CrowdSpec
    tile_bbox: np.ndarray  # (n_tiles, 4) xmin, ymin, xmax, ymax in ground metres
    tile_label: np.ndarray  # true label per tile, never CANT_TELL
    volunteer_kind: np.ndarray
    volunteer_skill: np.ndarray
    volunteer_hit_rate: np.ndarray
    vote_tile: np.ndarray  # one vote = one classification
    vote_volunteer: np.ndarray
    vote_answer: np.ndarray
    click_cls: np.ndarray  # index of the vote (classification) that made the click
    click_xy: np.ndarray
    click_date: np.ndarray  # date index from which the mark shows destruction
    click_building: np.ndarray  # true building clicked, -1 for decoys and strays
    building_xy: np.ndarray
    building_date: np.ndarray  # first date index on which the building is destroyed
    decoy_xy: np.ndarray
    gold_tiles: np.ndarray

    @property
    def n_tiles(self) -> int:
        return len(self.tile_label)

    @property
    def n_volunteers(self) -> int:
        return len(self.volunteer_kind)

    @property
    def vote_bbox(self) -> np.ndarray:
        return self.tile_bbox[self.vote_tile]

    @property
    def gold_bbox(self) -> np.ndarray:
        return self.tile_bbox[self.gold_tiles]

    @property
    def gold_building_mask(self) -> np.ndarray:
        return self.in_gold_tiles(self.building_xy)

    def in_gold_tiles(self, xy: np.ndarray) -> np.ndarray:
        """Which points (ground metres) lie inside a gold tile."""
        _, inside = _expand(*_membership(xy, self.spec), self.gold_tiles)
        mask = np.zeros(len(xy), bool)
        mask[inside] = True
        return mask


def simulate_crowd(*, spec: CrowdSpec) -> Crowd:
    """Draw one crowd and its ground truth; the same spec gives the same crowd."""
    rng = np.random.default_rng(spec.seed)
    tile_bbox = _tile_boxes(spec)
    building_xy, decoy_xy = _buildings(spec, rng)
    tile_building = _membership(building_xy, spec)
    tile_decoy = _membership(decoy_xy, spec)
    tile_label = _tile_labels(spec, rng, tile_building)
    kind, skill, hit = _volunteers(spec, rng)
    vote_tile, vote_volunteer = _assign_votes(spec, rng)
    answer = _answers(spec, rng, tile_label[vote_tile], kind[vote_volunteer], skill[vote_volunteer])
    n_dates = max(spec.n_dates, 1)
    building_date = rng.integers(1 if n_dates > 1 else 0, n_dates, len(building_xy))
    clicks = _clicks(spec, rng, vote_tile, vote_volunteer, answer, kind, hit,
                     tile_bbox, tile_building, tile_decoy, building_xy, decoy_xy, building_date)
    gold = np.sort(rng.choice(len(tile_label), int(round(spec.gold_rate * len(tile_label))), replace=False))
    return Crowd(spec, tile_bbox, tile_label, kind, skill, hit, vote_tile, vote_volunteer, answer,
                 *clicks, building_xy, building_date, decoy_xy, gold)


def _tile_boxes(spec: CrowdSpec) -> np.ndarray:
    col, row = np.meshgrid(np.arange(spec.n_cols), np.arange(spec.n_rows), indexing="ij")
    x0 = col.ravel() * spec.stride_m
    y0 = row.ravel() * spec.stride_m
    return np.stack([x0, y0, x0 + spec.tile_m, y0 + spec.tile_m], axis=1).astype(float)


def _extent(spec: CrowdSpec) -> tuple[float, float]:
    return ((spec.n_cols - 1) * spec.stride_m + spec.tile_m,
            (spec.n_rows - 1) * spec.stride_m + spec.tile_m)


def _buildings(spec: CrowdSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Destroyed buildings clustered in hot districts, decoys spread evenly, on distinct sites."""
    width, height = _extent(spec)
    nx, ny = int(width // spec.site_spacing_m), int(height // spec.site_spacing_m)
    tile_area = spec.tile_m**2
    area = width * height
    dx, dy = int(np.ceil(width / spec.district_m)), int(np.ceil(height / spec.district_m))
    heat = rng.gamma(0.4, 1 / 0.4, dx * dy)
    n_destroyed = rng.poisson(heat * spec.destroyed_per_tile * spec.district_m**2 / tile_area)
    district = np.repeat(np.arange(dx * dy), n_destroyed)
    per_site = spec.district_m / spec.site_spacing_m
    sx = ((district // dy) * per_site + rng.random(len(district)) * per_site).astype(np.int64)
    sy = ((district % dy) * per_site + rng.random(len(district)) * per_site).astype(np.int64)
    keep = (sx < nx) & (sy < ny)
    destroyed_site = _sorted_unique(sx[keep] * ny + sy[keep])
    n_decoys = rng.poisson(spec.decoys_per_tile * area / tile_area)
    decoy_site = _sorted_unique(rng.integers(0, nx * ny, n_decoys))
    decoy_site = decoy_site[~np.isin(decoy_site, destroyed_site)]
    return _site_xy(destroyed_site, ny, spec, rng), _site_xy(decoy_site, ny, spec, rng)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.4's hash-based unique is far slower on millions of int64."""
    values = np.sort(values)
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _site_xy(site: np.ndarray, ny: int, spec: CrowdSpec, rng: np.random.Generator) -> np.ndarray:
    # Jitter within the cell keeps neighbouring buildings at least ~12 m apart.
    centre = np.stack([site // ny, site % ny], axis=1) + 0.5
    offset = rng.uniform(-0.2, 0.2, (len(site), 2))
    return (centre + offset) * spec.site_spacing_m


def _membership(xy: np.ndarray, spec: CrowdSpec) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, item) of the points inside each tile; a point lies in up to 4 tiles."""
    tiles, items = [], []
    for dc in (0, 1):
        for dr in (0, 1):
            col = np.floor(xy[:, 0] / spec.stride_m).astype(np.int64) - dc
            row = np.floor(xy[:, 1] / spec.stride_m).astype(np.int64) - dr
            ok = (col >= 0) & (col < spec.n_cols) & (row >= 0) & (row < spec.n_rows)
            ok &= (xy[:, 0] < col * spec.stride_m + spec.tile_m) & (xy[:, 1] < row * spec.stride_m + spec.tile_m)
            tiles.append(col[ok] * spec.n_rows + row[ok])
            items.append(np.flatnonzero(ok))
    tile, item = np.concatenate(tiles), np.concatenate(items)
    order = np.argsort(tile, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(tile, minlength=spec.n_cols * spec.n_rows))])
    return indptr, item[order]


def _tile_labels(spec: CrowdSpec, rng: np.random.Generator,
                 tile_building: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    n_tiles = spec.n_cols * spec.n_rows
    has_destroyed = np.diff(tile_building[0]) > 0
    damaged = rng.random(n_tiles) < spec.damaged_tile_rate
    return np.where(has_destroyed, DESTROYED, np.where(damaged, DAMAGED, NO_DAMAGE))


def _volunteers(spec: CrowdSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = spec.n_volunteers
    u = rng.random(n)
    kind = np.where(u < spec.share_careless, CARELESS,
                    np.where(u < spec.share_careless + spec.share_always_no, ALWAYS_NO, GOOD))
    c = spec.skill_concentration
    skill = rng.beta(spec.skill_mean * c, (1 - spec.skill_mean) * c, n)
    hit = rng.beta(spec.hit_rate_mean * c, (1 - spec.hit_rate_mean) * c, n)
    return kind, skill, hit


def _assign_votes(spec: CrowdSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`redundancy` draws per tile from long-tailed activity; repeats of a volunteer on a tile dropped."""
    n_tiles = spec.n_cols * spec.n_rows
    activity = rng.lognormal(0.0, spec.activity_sigma, spec.n_volunteers)
    tile = np.repeat(np.arange(n_tiles), spec.redundancy)
    volunteer = rng.choice(spec.n_volunteers, len(tile), p=activity / activity.sum())
    key = _sorted_unique(tile.astype(np.int64) * spec.n_volunteers + volunteer)
    return key // spec.n_volunteers, key % spec.n_volunteers


def _answers(spec: CrowdSpec, rng: np.random.Generator, truth: np.ndarray,
             kind: np.ndarray, skill: np.ndarray) -> np.ndarray:
    n = len(truth)
    cum = np.cumsum(_ERROR_SPREAD[truth], axis=1)
    wrong = (rng.random(n)[:, None] < cum).argmax(axis=1)
    good = np.where(rng.random(n) < skill, truth, wrong)
    good = np.where(rng.random(n) < spec.abstain_rate, CANT_TELL, good)
    careless = rng.integers(0, N_ANSWERS, n)
    return np.select([kind == CARELESS, kind == ALWAYS_NO], [careless, NO_DAMAGE], good)


def _expand(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position i in rows, every item of CSR row rows[i]: (position, item) pairs."""
    counts = indptr[rows + 1] - indptr[rows]
    pos = np.repeat(np.arange(len(rows)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return pos, items[indptr[rows][pos] + within]


def _clicks(spec: CrowdSpec, rng: np.random.Generator, vote_tile: np.ndarray, vote_volunteer: np.ndarray,
            answer: np.ndarray, kind: np.ndarray, hit: np.ndarray, tile_bbox: np.ndarray,
            tile_building: tuple[np.ndarray, np.ndarray], tile_decoy: tuple[np.ndarray, np.ndarray],
            building_xy: np.ndarray, decoy_xy: np.ndarray,
            building_date: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clicks of the classifications that answered "destroyed": hits, decoys and strays, jittered."""
    marking = np.flatnonzero(answer == DESTROYED)
    vkind = kind[vote_volunteer[marking]]
    good = marking[vkind == GOOD]
    pos, b = _expand(*tile_building, vote_tile[good])
    took = rng.random(len(b)) < hit[vote_volunteer[good[pos]]]
    real_cls, real_b = good[pos[took]], b[took]
    pos, d = _expand(*tile_decoy, vote_tile[good])
    took = rng.random(len(d)) < spec.decoy_click_rate
    decoy_cls, decoy_pts = good[pos[took]], decoy_xy[d[took]]
    n_stray = rng.poisson(np.where(vkind == GOOD, spec.stray_clicks_per_view, spec.careless_clicks_per_view))
    stray_cls = np.repeat(marking, n_stray)
    box = tile_bbox[vote_tile[stray_cls]]
    stray_pts = box[:, :2] + rng.random((len(stray_cls), 2)) * (box[:, 2:] - box[:, :2])
    cls = np.concatenate([real_cls, decoy_cls, stray_cls])
    xy = np.concatenate([building_xy[real_b], decoy_pts, stray_pts])
    xy = xy + rng.normal(0.0, spec.jitter_m, xy.shape)
    box = tile_bbox[vote_tile[cls]]
    xy = np.clip(xy, box[:, :2], box[:, 2:] - 1e-6)
    source = np.concatenate([real_b, np.full(len(cls) - len(real_b), -1)])
    date = _click_dates(spec, rng, source, building_date, kind[vote_volunteer[cls]])
    order = np.argsort(cls, kind="stable")
    return cls[order], xy[order], date[order], source[order]


def _click_dates(spec: CrowdSpec, rng: np.random.Generator, source: np.ndarray,
                 building_date: np.ndarray, kind: np.ndarray) -> np.ndarray:
    n_dates = max(spec.n_dates, 1)
    truth = np.where(source >= 0, building_date[np.maximum(source, 0)], rng.integers(0, n_dates, len(source)))
    off = np.where(rng.random(len(source)) < spec.date_accuracy, 0, rng.choice([-1, 1], len(source)))
    date = np.clip(truth + off, 0, n_dates - 1)
    return np.where(kind == GOOD, date, rng.integers(0, n_dates, len(source)))


def expected_calibration_error(*, confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    conf = np.bincount(which, confidence, minlength=n_bins)
    hits = np.bincount(which, correct.astype(float), minlength=n_bins)
    return float(np.abs(hits - conf).sum() / max(len(confidence), 1))


def match_points(*, found_xy: np.ndarray, true_xy: np.ndarray, radius_m: float) -> np.ndarray:
    """Per found point, whether it is matched one-to-one (nearest pairs first) to a true point within radius_m."""
    from scipy.spatial import cKDTree

    matched = np.zeros(len(found_xy), bool)
    if len(found_xy) == 0 or len(true_xy) == 0:
        return matched
    k = min(4, len(true_xy))
    dist, idx = cKDTree(true_xy).query(found_xy, k=k, distance_upper_bound=radius_m)
    dist, idx = dist.reshape(len(found_xy), k).ravel(), idx.reshape(len(found_xy), k).ravel()
    ok = np.isfinite(dist)
    order = np.argsort(dist[ok], kind="stable")
    found_of, true_of = np.repeat(np.arange(len(found_xy)), k)[ok][order], idx[ok][order]
    used_true = np.zeros(len(true_xy), bool)
    for f, t in zip(found_of.tolist(), true_of.tolist()):
        if not matched[f] and not used_true[t]:
            matched[f] = used_true[t] = True
    return matched


def match_f1(*, found_xy: np.ndarray, true_xy: np.ndarray, radius_m: float) -> tuple[float, float, float]:
    """Precision, recall and F1 of a one-to-one matching within radius_m (ground metres)."""
    if len(found_xy) == 0 or len(true_xy) == 0:
        return 0.0, 0.0, 0.0
    tp = match_points(found_xy=found_xy, true_xy=true_xy, radius_m=radius_m).sum()
    return float(tp / len(found_xy)), float(tp / len(true_xy)), float(2 * tp / (len(found_xy) + len(true_xy)))
