"""Time the consensus against crowd-kit's DawidSkene, a numpy majority vote and scikit-learn DBSCAN.

    python -m bench.consensus                 # 1,000,000 votes, 200,000 tiles, 3,000 volunteers, ~500,000 clicks
    python -m bench.consensus --scale 0.1     # a tenth of that, for a quick check

Everything runs on one simulated crowd in the same process, so the ratios
compare like with like. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tagging.consensus.buildings import compute_buildings
from tagging.consensus.labels import compute_label_consensus, compute_majority_vote, estimate_tile_posterior
from tagging.consensus.simulate import CANT_TELL, N_ANSWERS, Crowd, CrowdSpec, match_f1, simulate_crowd

DBSCAN_EPS_M = 5.0
DESTROYED_PER_TILE = 0.95  # gives about 0.5 clicks per vote, as the brief's 500,000 per 1,000,000


def main() -> None:
    args = _arguments()
    crowd = _crowd(args)
    print(f"crowd: {len(crowd.vote_tile):,} votes on {crowd.n_tiles:,} tiles by {crowd.n_volunteers:,} volunteers, "
          f"{len(crowd.click_cls):,} clicks, {len(crowd.gold_tiles):,} gold tiles")
    labels_s, ours = _timed(lambda: _labels(crowd))
    crowdkit_s, theirs = _timed(lambda: _crowdkit(crowd))
    majority_s, majority = _timed(lambda: compute_majority_vote(
        tile_idx=crowd.vote_tile, answer_idx=crowd.vote_answer, n_tiles=crowd.n_tiles, n_classes=N_ANSWERS,
        abstain=CANT_TELL).label)
    per_vote_ms = _per_vote_ms(crowd, ours.model)
    buildings_s, buildings = _timed(lambda: _buildings(crowd))
    dbscan_s, dbscan_xy = _timed(lambda: _dbscan(crowd))
    _report_accuracy(crowd, ours.tiles.label, theirs, majority, buildings, dbscan_xy)
    print(f"tile labels: ours {labels_s:.2f} s ({ours.n_iter} EM rounds), crowd-kit DawidSkene {crowdkit_s:.2f} s, "
          f"numpy majority vote {majority_s:.3f} s")
    print(f"buildings: ours {buildings_s:.2f} s, DBSCAN {dbscan_s:.2f} s; per-vote update {per_vote_ms:.3f} ms")
    print(f"labels_s={labels_s:.3f} crowdkit_ds_s={crowdkit_s:.3f} ratio_vs_crowdkit={crowdkit_s / labels_s:.1f} "
          f"buildings_s={buildings_s:.3f} dbscan_s={dbscan_s:.3f} ratio_vs_dbscan={dbscan_s / buildings_s:.2f} "
          f"per_vote_ms={per_vote_ms:.3f}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.consensus", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply votes, tiles and volunteers")
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--tiles", type=int, default=200_000)
    parser.add_argument("--volunteers", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def _crowd(args: argparse.Namespace) -> Crowd:
    tiles = max(int(args.tiles * args.scale), 100)
    side = math.isqrt(tiles)
    redundancy = max(round(args.votes / args.tiles), 1)
    volunteers = max(int(args.volunteers * args.scale), 30)
    spec = CrowdSpec(n_cols=side, n_rows=math.ceil(tiles / side), n_volunteers=volunteers, redundancy=redundancy,
                     destroyed_per_tile=DESTROYED_PER_TILE, seed=args.seed)
    return simulate_crowd(spec=spec)


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def _labels(crowd: Crowd) -> Any:
    return compute_label_consensus(
        tile_idx=crowd.vote_tile, volunteer_idx=crowd.vote_volunteer, answer_idx=crowd.vote_answer,
        n_tiles=crowd.n_tiles, n_volunteers=crowd.n_volunteers, n_classes=N_ANSWERS, abstain=CANT_TELL,
        gold_tile_idx=crowd.gold_tiles, gold_label_idx=crowd.tile_label[crowd.gold_tiles])


def _crowdkit(crowd: Crowd) -> np.ndarray:
    """crowd-kit DawidSkene on the same votes (abstentions left out, as ours does) with the same gold."""
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError as error:
        raise SystemExit("bench.consensus needs crowd-kit: pip install --no-deps crowd-kit==1.4.2 "
                         "and the rest of requirements-consensus.txt") from error
    decisive = crowd.vote_answer != CANT_TELL
    frame = pd.DataFrame({"task": crowd.vote_tile[decisive], "worker": crowd.vote_volunteer[decisive],
                          "label": crowd.vote_answer[decisive]})
    gold = pd.Series(crowd.tile_label[crowd.gold_tiles], index=crowd.gold_tiles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 deprecations inside crowd-kit 1.4.2
        fitted = DawidSkene(n_iter=100).fit(frame, true_labels=gold)
    labels = np.full(crowd.n_tiles, -1)
    labels[fitted.labels_.index.to_numpy()] = fitted.labels_.to_numpy()
    return labels


def _per_vote_ms(crowd: Crowd, model: Any, n: int = 2000) -> float:
    """One new vote on a tile whose earlier votes the model was fitted on: the worker's cheap update."""
    order = np.argsort(crowd.vote_tile, kind="stable")
    starts = np.searchsorted(crowd.vote_tile[order], np.arange(crowd.n_tiles + 1))
    tiles = np.random.default_rng(0).choice(crowd.n_tiles, n)
    started = time.perf_counter()
    for tile in tiles:
        votes = order[starts[tile]:starts[tile + 1]]
        counted = np.arange(len(votes)) < len(votes) - 1
        estimate_tile_posterior(model=model, volunteer_idx=crowd.vote_volunteer[votes],
                                answer_idx=crowd.vote_answer[votes], counted=counted)
    return (time.perf_counter() - started) / n * 1000


def _buildings(crowd: Crowd) -> Any:
    return compute_buildings(
        cls_volunteer=crowd.vote_volunteer, cls_bbox=crowd.vote_bbox, click_cls=crowd.click_cls,
        click_xy=crowd.click_xy, n_volunteers=crowd.n_volunteers, cls_abstained=crowd.vote_answer == CANT_TELL,
        cls_view=crowd.vote_tile, gold_xy=crowd.building_xy[crowd.gold_building_mask], gold_bbox=crowd.gold_bbox)


def _dbscan(crowd: Crowd) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    label = DBSCAN(eps=DBSCAN_EPS_M, min_samples=2).fit_predict(crowd.click_xy)
    kept = label >= 0
    size = np.bincount(label[kept])
    return np.stack([np.bincount(label[kept], crowd.click_xy[kept, i]) / size for i in (0, 1)], axis=1)


def _report_accuracy(crowd: Crowd, ours: np.ndarray, crowdkit: np.ndarray, majority: np.ndarray,
                     buildings: Any, dbscan_xy: np.ndarray) -> None:
    ordinary = np.ones(crowd.n_tiles, bool)
    ordinary[crowd.gold_tiles] = False
    accuracy = [(labels == crowd.tile_label)[ordinary].mean() for labels in (ours, crowdkit, majority)]
    print("tile accuracy (non-gold): ours {:.4f}, crowd-kit DS {:.4f}, majority {:.4f}".format(*accuracy))
    found = buildings.buildings.xy[buildings.buildings.confidence >= 0.5]
    truth = crowd.building_xy[~crowd.gold_building_mask]
    f1 = [match_f1(found_xy=xy[~crowd.in_gold_tiles(xy)], true_xy=truth, radius_m=DBSCAN_EPS_M)[2]
          for xy in (found, dbscan_xy)]
    print("building F1 (outside gold tiles): ours {:.3f}, DBSCAN(eps=5 m, min_samples=2) {:.3f}".format(*f1))


if __name__ == "__main__":
    main()
