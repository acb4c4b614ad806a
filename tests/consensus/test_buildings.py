"""Buildings from point marks against a simulated crowd with known truth: pure computation, no database."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from tagging.consensus.buildings import BuildingConsensus, Buildings, compute_buildings, link_clicks
from tagging.consensus.simulate import (
    CANT_TELL,
    CARELESS,
    GOOD,
    POOR_CROWD,
    Crowd,
    CrowdSpec,
    expected_calibration_error,
    match_f1,
    match_points,
    simulate_crowd,
)

MATCH_RADIUS_M = 5.0


@cache
def crowd(seed: int, poor: bool) -> Crowd:
    extra = POOR_CROWD if poor else {}
    return simulate_crowd(spec=CrowdSpec(seed=seed, n_cols=50, n_rows=50, n_volunteers=300, gold_rate=0.05, **extra))


@cache
def consensus(seed: int, poor: bool) -> BuildingConsensus:
    c = crowd(seed, poor)
    return compute_buildings(
        cls_volunteer=c.vote_volunteer, cls_bbox=c.vote_bbox, click_cls=c.click_cls, click_xy=c.click_xy,
        n_volunteers=c.n_volunteers, cls_abstained=c.vote_answer == CANT_TELL, cls_view=c.vote_tile,
        gold_xy=c.building_xy[c.gold_building_mask], gold_bbox=c.gold_bbox,
    )


def outside_gold(c: Crowd, xy: np.ndarray) -> np.ndarray:
    return ~c.in_gold_tiles(xy)


def dbscan_best_f1(c: Crowd) -> tuple[float, int]:
    """DBSCAN (what point reducers do) at eps = 5 m, with its best min_samples: its best showing."""
    try:
        from sklearn.cluster import DBSCAN
    except ImportError as error:  # a test requirement: fail, never skip
        raise AssertionError("scikit-learn is required by the consensus tests (requirements-consensus.txt)") from error
    truth = c.building_xy[~c.gold_building_mask]
    best = (0.0, 0)
    for min_samples in (1, 2, 3, 4):
        label = DBSCAN(eps=MATCH_RADIUS_M, min_samples=min_samples).fit_predict(c.click_xy)
        kept = label >= 0
        size = np.bincount(label[kept])
        centre = np.stack([np.bincount(label[kept], c.click_xy[kept, i]) / size for i in (0, 1)], axis=1)
        f1 = match_f1(found_xy=centre[outside_gold(c, centre)], true_xy=truth, radius_m=MATCH_RADIUS_M)[2]
        best = max(best, (f1, min_samples))
    return best


@pytest.mark.parametrize("poor", [False, True])
def test_buildings_beat_dbscan_on_f1(poor: bool) -> None:
    c = crowd(0, poor)
    buildings = consensus(0, poor).buildings
    found = (buildings.confidence >= 0.5) & outside_gold(c, buildings.xy)
    precision, recall, ours = match_f1(found_xy=buildings.xy[found], true_xy=c.building_xy[~c.gold_building_mask],
                                       radius_m=MATCH_RADIUS_M)
    dbscan, min_samples = dbscan_best_f1(c)
    print(f"\nbuilding F1 ({'poor' if poor else 'ordinary'} crowd): ours {ours:.3f} (P {precision:.3f}, "
          f"R {recall:.3f}), DBSCAN {dbscan:.3f} (min_samples={min_samples})")
    assert ours > dbscan + 0.05


@cache
def project_scale(seed: int, poor: bool) -> tuple[Crowd, BuildingConsensus]:
    """10,000 tiles with 500 gold tiles, 1,200 volunteers doing as much each as in `crowd`."""
    extra = POOR_CROWD if poor else {}
    c = simulate_crowd(spec=CrowdSpec(seed=seed, n_cols=100, n_rows=100, n_volunteers=1200, gold_rate=0.05, **extra))
    return c, compute_buildings(
        cls_volunteer=c.vote_volunteer, cls_bbox=c.vote_bbox, click_cls=c.click_cls, click_xy=c.click_xy,
        n_volunteers=c.n_volunteers, cls_abstained=c.vote_answer == CANT_TELL, cls_view=c.vote_tile,
        gold_xy=c.building_xy[c.gold_building_mask], gold_bbox=c.gold_bbox,
    )


def building_ece(c: Crowd, buildings: Buildings) -> float:
    ordinary = outside_gold(c, buildings.xy) & (buildings.n_support > 0)
    real = match_points(found_xy=buildings.xy[ordinary], true_xy=c.building_xy, radius_m=MATCH_RADIUS_M)
    return expected_calibration_error(confidence=buildings.confidence[ordinary], correct=real)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("poor", [False, True])
def test_building_confidence_is_calibrated(poor: bool, seed: int) -> None:
    c, result = project_scale(seed, poor)
    ece = building_ece(c, result.buildings)
    print(f"\nbuilding ECE ({'poor' if poor else 'ordinary'} crowd, 10,000 tiles, seed {seed}): {ece:.4f}")
    assert ece < 0.05


@pytest.mark.parametrize("poor", [False, True])
def test_building_confidence_with_scarce_gold_is_rougher_but_close(poor: bool) -> None:
    # 125 gold tiles fit the calibration on a couple of hundred candidates: across seeds the
    # ECE then runs 0.02-0.06, against 0.01-0.04 with 500 gold tiles.
    c = crowd(0, poor)
    ece = building_ece(c, consensus(0, poor).buildings)
    print(f"\nbuilding ECE ({'poor' if poor else 'ordinary'} crowd, 2,500 tiles): {ece:.4f}")
    assert ece < 0.08


def test_careless_clickers_count_for_little() -> None:
    c = crowd(0, poor=True)
    volunteers = consensus(0, True).volunteers
    active = volunteers.n_seen >= 30
    good = np.median(volunteers.weight[active & (c.volunteer_kind == GOOD)])
    careless = np.median(volunteers.weight[active & (c.volunteer_kind == CARELESS)])
    print(f"\nmedian click weight log(hit/false): good {good:.2f}, careless {careless:.2f}")
    assert careless < 0 < good


def test_a_building_on_a_tile_overlap_is_one_building() -> None:
    # Two tiles overlapping by 32 m; the building at x = 240 m lies in both.
    tiles = np.array([[0.0, 0.0, 256.0, 256.0], [224.0, 0.0, 480.0, 256.0]])
    cls_tile = np.repeat([0, 1], 3)
    rng = np.random.default_rng(4)
    click_xy = np.array([240.0, 100.0]) + rng.normal(0.0, 2.0, (6, 2))
    result = compute_buildings(cls_volunteer=np.arange(6), cls_bbox=tiles[cls_tile], click_cls=np.arange(6),
                               click_xy=click_xy, n_volunteers=6)
    assert len(result.buildings.xy) == 1
    assert result.buildings.n_support.tolist() == [6]
    assert np.hypot(*(result.buildings.xy[0] - [240.0, 100.0])) < 3.0


def test_two_clicks_of_one_classification_never_share_a_building() -> None:
    candidate = link_clicks(click_xy=np.array([[10.0, 10.0], [11.0, 10.0], [10.5, 11.0]]),
                            click_cls=np.array([0, 0, 1]), radius_m=6.0)
    assert candidate[0] != candidate[1]
    assert candidate[2] in (candidate[0], candidate[1])


def test_a_volunteer_who_saw_the_spot_and_did_not_mark_it_counts_against() -> None:
    tile = np.array([[0.0, 0.0, 256.0, 256.0]])
    result = compute_buildings(cls_volunteer=np.arange(5), cls_bbox=tile[[0] * 5], click_cls=np.array([0, 1]),
                               click_xy=np.array([[100.0, 100.0], [101.0, 100.0]]), n_volunteers=5)
    assert result.buildings.n_oppose.tolist() == [3]
    assert result.buildings.evidence_volunteer.tolist() == [0, 1, 2, 3, 4]
    assert result.buildings.evidence_clicked.tolist() == [True, True, False, False, False]


def test_more_opponents_mean_less_confidence() -> None:
    b = consensus(0, False).buildings
    two = (b.n_support == 2) & ~b.is_gold
    by_oppose = [b.confidence[two & (b.n_oppose == k)].mean() for k in range(4)]
    print(f"\nmean confidence of 2-mark candidates by opponents 0..3: {np.round(by_oppose, 2).tolist()}")
    assert by_oppose[0] > by_oppose[1] - 0.02
    assert by_oppose[1] > by_oppose[2] > by_oppose[3]


def test_an_abstaining_classification_neither_supports_nor_opposes() -> None:
    tile = np.array([[0.0, 0.0, 256.0, 256.0]])
    result = compute_buildings(cls_volunteer=np.arange(4), cls_bbox=tile[[0] * 4], click_cls=np.array([0, 1]),
                               click_xy=np.array([[50.0, 50.0], [50.5, 50.0]]), n_volunteers=4,
                               cls_abstained=np.array([False, False, True, False]))
    assert result.buildings.n_support.tolist() == [2]
    assert result.buildings.n_oppose.tolist() == [1]


def test_a_mark_near_the_tile_edge_does_not_count_the_edge_as_seen() -> None:
    # The building sits 1 m inside tile 1's edge: its volunteer may have seen only half of it.
    tiles = np.array([[0.0, 0.0, 256.0, 256.0], [101.0, 0.0, 357.0, 256.0]])
    result = compute_buildings(cls_volunteer=np.array([0, 1]), cls_bbox=tiles, click_cls=np.array([0]),
                               click_xy=np.array([[102.0, 50.0]]), n_volunteers=2, edge_margin_m=2.0)
    assert result.buildings.n_oppose.tolist() == [0]


def test_gold_buildings_anchor_the_estimate() -> None:
    tile = np.array([[0.0, 0.0, 256.0, 256.0]])
    click_xy = np.array([[50.0, 50.0], [150.0, 150.0]])
    result = compute_buildings(cls_volunteer=np.array([0, 1]), cls_bbox=tile[[0, 0]], click_cls=np.array([0, 1]),
                               click_xy=click_xy, n_volunteers=2, gold_bbox=tile,
                               gold_xy=np.array([[50.5, 50.0], [200.0, 200.0]]))
    b = result.buildings
    assert len(b.xy) == 3  # two clicked candidates, and the gold building nobody marked
    assert b.confidence.tolist() == [1.0, 0.0, 1.0]
    assert b.is_gold.all()
    assert b.xy[2].tolist() == [200.0, 200.0]
    assert b.n_oppose[2] == 2


def test_the_centre_and_its_uncertainty_are_in_ground_metres() -> None:
    tile = np.array([[0.0, 0.0, 256.0, 256.0]])
    offsets = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    result = compute_buildings(cls_volunteer=np.arange(4), cls_bbox=tile[[0] * 4], click_cls=np.arange(4),
                               click_xy=np.array([120.0, 80.0]) + offsets, n_volunteers=4)
    np.testing.assert_allclose(result.buildings.xy[0], [120.0, 80.0])
    assert 0.5 < result.buildings.uncertainty_m[0] < 2.0


def test_every_click_belongs_to_a_building() -> None:
    c = crowd(1, poor=False)
    buildings = consensus(1, False).buildings
    assert len(buildings.click_building) == len(c.click_cls)
    clicks = np.bincount(buildings.click_building, minlength=len(buildings.xy))
    # A volunteer who marked a building on two overlapping tiles supports it once.
    assert ((buildings.n_support <= clicks) & ((buildings.n_support > 0) == (clicks > 0))).all()


def test_it_rejects_a_click_of_an_unknown_classification() -> None:
    with pytest.raises(ValueError, match="click_cls"):
        compute_buildings(cls_volunteer=np.array([0]), cls_bbox=np.array([[0.0, 0.0, 1.0, 1.0]]),
                          click_cls=np.array([3]), click_xy=np.array([[0.5, 0.5]]), n_volunteers=1)
