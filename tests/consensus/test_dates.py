"""Destruction date windows against a simulated crowd with known truth: pure computation, no database."""

from __future__ import annotations

import numpy as np
import pytest

from tagging.consensus.dates import compute_date_windows
from tagging.consensus.simulate import POOR_CROWD, CrowdSpec, expected_calibration_error, simulate_crowd

N_DATES = 5


@pytest.mark.parametrize("poor", [False, True])
def test_date_windows_beat_the_most_common_date(poor: bool) -> None:
    c = simulate_crowd(spec=CrowdSpec(seed=3, n_cols=50, n_rows=50, n_volunteers=300, n_dates=N_DATES,
                                      **(POOR_CROWD if poor else {})))
    real = c.click_building >= 0
    building, volunteer, date = c.click_building[real], c.vote_volunteer[c.click_cls[real]], c.click_date[real]
    result = compute_date_windows(mark_building=building, mark_volunteer=volunteer, mark_date=date,
                                  n_buildings=len(c.building_xy), n_volunteers=c.n_volunteers, n_dates=N_DATES)
    marked = result.n_marks > 0
    right = (result.first_destroyed == c.building_date)[marked]
    tally = np.zeros((len(c.building_xy), N_DATES + 1))
    np.add.at(tally, (building, date), 1)
    mode = (tally.argmax(axis=1) == c.building_date)[marked].mean()
    ece = expected_calibration_error(confidence=result.confidence[marked], correct=right)
    print(f"\ndate window accuracy ({'poor' if poor else 'ordinary'} crowd): ours {right.mean():.3f}, "
          f"most common date {mode:.3f}, ECE {ece:.3f}")
    assert right.mean() > mode
    assert ece < 0.08


def test_reliable_volunteers_outweigh_a_careless_majority() -> None:
    building = np.zeros(5, dtype=int)
    volunteer = np.arange(5)
    date = np.array([2, 2, 4, 4, 4])
    reliability = np.array([0.95, 0.95, 0.3, 0.3, 0.3])
    result = compute_date_windows(mark_building=building, mark_volunteer=volunteer, mark_date=date, n_buildings=1,
                                  n_volunteers=5, n_dates=N_DATES, prior_accuracy=reliability, prior_strength=50.0)
    assert result.first_destroyed[0] == 2
    assert result.last_intact[0] == 1


def test_a_window_says_last_date_intact_and_first_date_destroyed() -> None:
    result = compute_date_windows(mark_building=np.zeros(3, dtype=int), mark_volunteer=np.arange(3),
                                  mark_date=np.array([0, 0, 0]), n_buildings=2, n_volunteers=3, n_dates=N_DATES)
    assert result.first_destroyed[0] == 0 and result.last_intact[0] == -1  # destroyed on the first image
    assert result.n_marks.tolist() == [3, 0]
    assert result.posterior[1].sum() == pytest.approx(1.0)


def test_never_destroyed_is_the_window_after_the_last_date() -> None:
    result = compute_date_windows(mark_building=np.zeros(3, dtype=int), mark_volunteer=np.arange(3),
                                  mark_date=np.full(3, N_DATES), n_buildings=1, n_volunteers=3, n_dates=N_DATES)
    assert result.first_destroyed[0] == N_DATES
    assert result.last_intact[0] == N_DATES - 1


def test_gold_dates_are_clamped() -> None:
    result = compute_date_windows(mark_building=np.zeros(3, dtype=int), mark_volunteer=np.arange(3),
                                  mark_date=np.array([1, 1, 1]), n_buildings=1, n_volunteers=3, n_dates=N_DATES,
                                  gold_building_idx=np.array([0]), gold_date_idx=np.array([3]))
    assert result.first_destroyed[0] == 3
    assert result.confidence[0] == 1.0


def test_one_volunteer_marking_a_building_twice_counts_once() -> None:
    once = compute_date_windows(mark_building=np.zeros(3, dtype=int), mark_volunteer=np.array([0, 1, 2]),
                                mark_date=np.array([1, 3, 3]), n_buildings=1, n_volunteers=3, n_dates=N_DATES)
    twice = compute_date_windows(mark_building=np.zeros(4, dtype=int), mark_volunteer=np.array([0, 1, 2, 2]),
                                 mark_date=np.array([1, 3, 3, 3]), n_buildings=1, n_volunteers=3, n_dates=N_DATES)
    np.testing.assert_allclose(twice.posterior, once.posterior)
    assert twice.n_marks.tolist() == [3]


def test_it_rejects_a_date_beyond_never_destroyed() -> None:
    with pytest.raises(ValueError, match="mark_date"):
        compute_date_windows(mark_building=np.array([0]), mark_volunteer=np.array([0]),
                             mark_date=np.array([N_DATES + 1]), n_buildings=1, n_volunteers=1, n_dates=N_DATES)
