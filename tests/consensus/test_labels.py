"""Tile labels against a simulated crowd with known truth: pure computation, no database."""

from __future__ import annotations

import time
import warnings
from functools import cache

import numpy as np
import pytest

from tagging.consensus.labels import (
    LabelConsensus,
    compute_label_consensus,
    compute_majority_vote,
    estimate_tile_posterior,
)
from tagging.consensus.simulate import (
    ALWAYS_NO,
    CANT_TELL,
    CARELESS,
    DAMAGED,
    DESTROYED,
    GOOD,
    N_ANSWERS,
    NO_DAMAGE,
    POOR_CROWD,
    Crowd,
    CrowdSpec,
    expected_calibration_error,
    simulate_crowd,
)


@cache
def crowd(seed: int, poor: bool) -> Crowd:
    extra = POOR_CROWD if poor else {}
    return simulate_crowd(spec=CrowdSpec(seed=seed, n_cols=60, n_rows=60, n_volunteers=300, gold_rate=0.05, **extra))


@cache
def consensus(seed: int, poor: bool) -> LabelConsensus:
    c = crowd(seed, poor)
    return compute_label_consensus(
        tile_idx=c.vote_tile, volunteer_idx=c.vote_volunteer, answer_idx=c.vote_answer,
        n_tiles=c.n_tiles, n_volunteers=c.n_volunteers, n_classes=N_ANSWERS, abstain=CANT_TELL,
        gold_tile_idx=c.gold_tiles, gold_label_idx=c.tile_label[c.gold_tiles],
    )


def not_gold(c: Crowd) -> np.ndarray:
    mask = np.ones(c.n_tiles, bool)
    mask[c.gold_tiles] = False
    return mask


def crowdkit_labels(c: Crowd) -> np.ndarray:
    """crowd-kit's DawidSkene with the same gold and without abstentions (its fairest footing)."""
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError as error:  # a test requirement: fail, never skip
        raise AssertionError(
            "crowd-kit is required by the consensus tests: "
            "pip install --no-deps crowd-kit==1.4.2 and requirements-consensus.txt") from error
    decisive = c.vote_answer != CANT_TELL
    frame = pd.DataFrame({"task": c.vote_tile[decisive], "worker": c.vote_volunteer[decisive],
                          "label": c.vote_answer[decisive]})
    gold = pd.Series(c.tile_label[c.gold_tiles], index=c.gold_tiles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crowd-kit 1.4.2 uses pandas arguments that pandas 3 deprecates
        fitted = DawidSkene(n_iter=100).fit(frame, true_labels=gold)
    labels = np.full(c.n_tiles, -1)
    labels[fitted.labels_.index.to_numpy()] = fitted.labels_.to_numpy()
    return labels


@pytest.mark.parametrize("seed", [0, 1])
def test_reliability_weighting_beats_majority_vote_and_crowdkit_on_a_poor_crowd(seed: int) -> None:
    c = crowd(seed, poor=True)
    mask = not_gold(c)
    ours = (consensus(seed, True).tiles.label == c.tile_label)[mask].mean()
    majority = compute_majority_vote(tile_idx=c.vote_tile, answer_idx=c.vote_answer, n_tiles=c.n_tiles,
                                     n_classes=N_ANSWERS, abstain=CANT_TELL)
    mv = (majority.label == c.tile_label)[mask].mean()
    ds = (crowdkit_labels(c) == c.tile_label)[mask].mean()
    print(f"\ntile accuracy, poor crowd seed {seed}: ours {ours:.4f}, crowd-kit DS {ds:.4f}, majority {mv:.4f}")
    assert ours > ds + 0.01
    assert ours > mv + 0.05


@pytest.mark.parametrize("poor", [True, False])
def test_confidence_is_a_calibrated_probability(poor: bool) -> None:
    c = crowd(0, poor)
    tiles = consensus(0, poor).tiles
    mask = not_gold(c)
    ece = expected_calibration_error(confidence=tiles.confidence[mask], correct=(tiles.label == c.tile_label)[mask])
    print(f"\ntile ECE ({'poor' if poor else 'ordinary'} crowd): {ece:.4f}")
    assert ece < 0.05


def test_careless_and_always_no_damage_volunteers_get_low_reliability() -> None:
    c = crowd(0, poor=True)
    volunteers = consensus(0, True).volunteers
    active = volunteers.n_votes >= 30
    good = np.median(volunteers.reliability[active & (c.volunteer_kind == GOOD)])
    careless = np.median(volunteers.reliability[active & (c.volunteer_kind == CARELESS)])
    always_no = np.median(volunteers.reliability[active & (c.volunteer_kind == ALWAYS_NO)])
    print(f"\nmedian reliability: good {good:.2f}, careless {careless:.2f}, always 'no damage' {always_no:.2f}")
    assert careless < 0.2 and always_no < 0.2
    assert good > 2 * max(careless, always_no)


def test_reliability_counts_the_gold_tiles_it_rests_on() -> None:
    c = crowd(0, poor=False)
    volunteers = consensus(0, False).volunteers
    on_gold = np.isin(c.vote_tile, c.gold_tiles) & (c.vote_answer != CANT_TELL)
    assert np.array_equal(volunteers.n_gold, np.bincount(c.vote_volunteer[on_gold], minlength=c.n_volunteers))


def test_gold_tiles_are_clamped_to_their_answer() -> None:
    tile = np.array([0, 0, 0, 1, 1, 1])
    volunteer = np.array([0, 1, 2, 0, 1, 2])
    answer = np.array([NO_DAMAGE] * 3 + [DESTROYED] * 3)
    result = compute_label_consensus(tile_idx=tile, volunteer_idx=volunteer, answer_idx=answer, n_tiles=2,
                                     n_volunteers=3, n_classes=N_ANSWERS, abstain=CANT_TELL,
                                     gold_tile_idx=np.array([0]), gold_label_idx=np.array([DESTROYED]))
    assert result.tiles.label[0] == DESTROYED
    assert result.tiles.confidence[0] == 1.0
    assert result.tiles.agreement[0] == 0.0


def test_an_abstention_is_not_a_vote() -> None:
    c = crowd(2, poor=False)
    kwargs = dict(n_tiles=c.n_tiles, n_volunteers=c.n_volunteers, n_classes=N_ANSWERS, abstain=CANT_TELL,
                  gold_tile_idx=c.gold_tiles, gold_label_idx=c.tile_label[c.gold_tiles])
    decisive = c.vote_answer != CANT_TELL
    without = compute_label_consensus(tile_idx=c.vote_tile[decisive], volunteer_idx=c.vote_volunteer[decisive],
                                      answer_idx=c.vote_answer[decisive], **kwargs)
    with_them = compute_label_consensus(tile_idx=c.vote_tile, volunteer_idx=c.vote_volunteer,
                                        answer_idx=c.vote_answer, **kwargs)
    np.testing.assert_allclose(with_them.tiles.posterior, without.tiles.posterior)
    assert (with_them.tiles.posterior[:, CANT_TELL] == 0).all()
    abstentions = np.bincount(c.vote_tile[~decisive], minlength=c.n_tiles)
    assert np.array_equal(with_them.tiles.counts[:, CANT_TELL], abstentions)
    assert np.array_equal(with_them.tiles.n_decisive, with_them.tiles.counts.sum(axis=1) - abstentions)


def test_agreement_is_the_share_of_decisive_votes_for_the_label() -> None:
    tile = np.zeros(5, dtype=int)
    answer = np.array([DESTROYED, DESTROYED, DAMAGED, CANT_TELL, CANT_TELL])
    result = compute_label_consensus(tile_idx=tile, volunteer_idx=np.arange(5), answer_idx=answer, n_tiles=1,
                                     n_volunteers=5, n_classes=N_ANSWERS, abstain=CANT_TELL)
    assert result.tiles.label[0] == DESTROYED
    assert result.tiles.agreement[0] == pytest.approx(2 / 3)
    assert result.tiles.counts[0].tolist() == [2, 1, 0, 2]


def test_per_vote_update_agrees_with_the_full_posterior_and_is_fast() -> None:
    c = crowd(0, poor=True)
    result = consensus(0, True)
    order = np.argsort(c.vote_tile, kind="stable")
    starts = np.searchsorted(c.vote_tile[order], np.arange(c.n_tiles + 1))
    gold = set(c.gold_tiles.tolist())
    checked = [t for t in range(0, c.n_tiles, 7) if t not in gold]
    started = time.perf_counter()
    for t in checked:
        votes = order[starts[t]:starts[t + 1]]
        posterior = estimate_tile_posterior(model=result.model, volunteer_idx=c.vote_volunteer[votes],
                                            answer_idx=c.vote_answer[votes], counted=np.ones(len(votes), bool))
        np.testing.assert_allclose(posterior, result.tiles.posterior[t], atol=1e-9)
    per_call_ms = (time.perf_counter() - started) / len(checked) * 1000
    print(f"\nper-vote update: {per_call_ms:.3f} ms")
    assert per_call_ms < 5


def test_a_volunteer_the_model_has_not_met_counts_as_an_average_volunteer() -> None:
    model = consensus(0, False).model
    stranger = estimate_tile_posterior(model=model, volunteer_idx=np.array([10_000]), answer_idx=np.array([DESTROYED]))
    none = np.array([], dtype=int)
    nobody = estimate_tile_posterior(model=model, volunteer_idx=none, answer_idx=none)
    assert stranger[DESTROYED] > nobody[DESTROYED]
    assert stranger.sum() == pytest.approx(1.0)


def test_a_warm_start_reaches_the_same_labels_sooner() -> None:
    c = crowd(1, poor=False)
    cold = consensus(1, False)
    warm = compute_label_consensus(
        tile_idx=c.vote_tile, volunteer_idx=c.vote_volunteer, answer_idx=c.vote_answer, n_tiles=c.n_tiles,
        n_volunteers=c.n_volunteers, n_classes=N_ANSWERS, abstain=CANT_TELL, gold_tile_idx=c.gold_tiles,
        gold_label_idx=c.tile_label[c.gold_tiles], warm_start=cold.model)
    assert warm.n_iter < cold.n_iter
    assert (warm.tiles.label == cold.tiles.label).mean() > 0.995


def test_majority_vote_ignores_abstentions_and_breaks_ties_towards_the_lower_answer() -> None:
    tile = np.array([0, 0, 0, 0, 1, 1])
    answer = np.array([CANT_TELL, CANT_TELL, NO_DAMAGE, DAMAGED, CANT_TELL, CANT_TELL])
    result = compute_majority_vote(tile_idx=tile, answer_idx=answer, n_tiles=2, n_classes=N_ANSWERS, abstain=CANT_TELL)
    assert result.label[0] == DAMAGED
    assert result.agreement[0] == 0.5
    assert result.n_decisive.tolist() == [2, 0]
    assert np.isnan(result.agreement[1])


@pytest.mark.parametrize(("field", "value"), [("tile_idx", 5), ("volunteer_idx", -1), ("answer_idx", N_ANSWERS)])
def test_it_rejects_out_of_range_indices(field: str, value: int) -> None:
    arrays = {"tile_idx": np.array([0]), "volunteer_idx": np.array([0]), "answer_idx": np.array([0])}
    arrays[field] = np.array([value])
    with pytest.raises(ValueError, match=field):
        compute_label_consensus(**arrays, n_tiles=1, n_volunteers=1, n_classes=N_ANSWERS, abstain=CANT_TELL)


def test_it_rejects_an_abstention_as_a_gold_answer() -> None:
    with pytest.raises(ValueError, match="gold"):
        compute_label_consensus(tile_idx=np.array([0]), volunteer_idx=np.array([0]), answer_idx=np.array([0]),
                                n_tiles=1, n_volunteers=1, n_classes=N_ANSWERS, abstain=CANT_TELL,
                                gold_tile_idx=np.array([0]), gold_label_idx=np.array([CANT_TELL]))
